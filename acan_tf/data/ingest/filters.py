"""Which tracked boxes become crops: the filters a user controls, each with the reason it drops a box or a track.

Boxes are filtered one by one first (confidence, share inside the frame, height after clipping), then tracks
(length), then each kept track is thinned to frames spread evenly over it. docs/your_cameras.md explains each.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from acan_tf.data.ingest.errors import IngestError
from acan_tf.data.ingest.tracks import NO_CONFIDENCE, Box

# The reasons, in the order they apply; the summary counts boxes (or tracks, for SHORT_TRACK) per reason.
LOW_CONFIDENCE = "confidence below --min_confidence"
MOSTLY_OUTSIDE = "box mostly outside the frame (--min_visible)"
TOO_SMALL = "box lower than --min_box_height after clipping"
SHORT_TRACK = "track shorter than --min_track_length"
THINNED = "frame not among the --frames_per_track kept"
BOX_REASONS = (LOW_CONFIDENCE, MOSTLY_OUTSIDE, TOO_SMALL, THINNED)


@dataclasses.dataclass(frozen=True)
class Filters:
    """The settings of every filter (the ingest command's flags)."""

    min_confidence: float = 0.0
    min_visible: float = 0.5
    min_box_height: int = 32
    min_track_length: int = 4
    frames_per_track: int = 0  # 0: every frame
    min_ids_per_camera: int = 2

    def __post_init__(self) -> None:
        checks = (
            ("min_visible", 0.0 < self.min_visible <= 1.0, "a share in (0, 1]"),
            ("min_box_height", self.min_box_height >= 1, "an integer >= 1"),
            ("min_track_length", self.min_track_length >= 1, "an integer >= 1"),
            ("frames_per_track", self.frames_per_track >= 0, "an integer >= 0 (0: every frame)"),
            ("min_ids_per_camera", self.min_ids_per_camera >= 1, "an integer >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise IngestError(f"--{name}={getattr(self, name)}: expected {expected}")


@dataclasses.dataclass(frozen=True)
class Crop:
    """A kept box clipped to the frame, in whole pixels: [left, right) x [top, bottom)."""

    frame: int
    track: str
    left: int
    top: int
    right: int
    bottom: int


@dataclasses.dataclass(frozen=True)
class Selection:
    """A camera's kept crops per track (track ids in numeric order) and how many boxes / tracks each reason dropped."""

    tracks: dict[str, tuple[Crop, ...]]
    dropped: dict[str, int]
    num_tracks: int


def clip(box: Box, frame_size: tuple[int, int], where: str) -> tuple[Crop, float]:
    """The box clipped to the frame and the share of its area inside it; a box wholly outside is an IngestError."""
    width, height = frame_size
    left, top = max(0, round(box.left)), max(0, round(box.top))
    right, bottom = min(width, round(box.left + box.width)), min(height, round(box.top + box.height))
    if right <= left or bottom <= top:
        raise IngestError(f"{where}: box (left {box.left:g}, top {box.top:g}, {box.width:g}x{box.height:g}) lies "
                          f"entirely outside the {width}x{height} frame; expected boxes in frame pixels")
    visible = (right - left) * (bottom - top) / (box.width * box.height)
    return Crop(box.frame, box.track, left, top, right, bottom), min(1.0, visible)


def select(boxes: Sequence[Box], frame_size: tuple[int, int], filters: Filters, track_file: str) -> Selection:
    """The crops the filters keep from one camera's boxes, and the count of every drop by reason."""
    dropped = dict.fromkeys((*BOX_REASONS, SHORT_TRACK), 0)
    per_track: dict[str, list[Crop]] = {}
    for box in sorted(boxes, key=lambda b: (int(b.track), b.frame)):
        crop, visible = clip(box, frame_size, f"{track_file}, line {box.line}")
        if box.confidence != NO_CONFIDENCE and box.confidence < filters.min_confidence:
            reason = LOW_CONFIDENCE
        elif visible < filters.min_visible:
            reason = MOSTLY_OUTSIDE
        elif crop.bottom - crop.top < filters.min_box_height:
            reason = TOO_SMALL
        else:
            per_track.setdefault(box.track, []).append(crop)
            continue
        dropped[reason] += 1
    tracks = {}
    for track, crops in per_track.items():
        if len(crops) < filters.min_track_length:
            dropped[SHORT_TRACK] += 1
            continue
        kept = spread(len(crops), filters.frames_per_track)
        dropped[THINNED] += len(crops) - len(kept)
        tracks[track] = tuple(crops[index] for index in kept)
    return Selection(tracks, dropped, len({box.track for box in boxes}))


def spread(length: int, count: int) -> list[int]:
    """`count` indices of 0..length-1 spread evenly from the first to the last (all of them if count is 0 or more)."""
    if count == 0 or count >= length:
        return list(range(length))
    if count == 1:
        return [(length - 1) // 2]
    return sorted({int(math.floor(index + 0.5)) for index in np.linspace(0, length - 1, count)})
