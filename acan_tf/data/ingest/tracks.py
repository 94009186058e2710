"""MOTChallenge track files: `frame,id,left,top,width,height,conf,...`, 1-based frames.

The format of MOT16/17/20 ground truth and of the trackers users run (ByteTrack, BoT-SORT, StrongSORT, OC-SORT):
one box per line; columns after the confidence (class, visibility, world coordinates) are ignored.
"""

from __future__ import annotations

import dataclasses
import math

from acan_tf.data.ingest.errors import IngestError

FORMAT = "frame,id,left,top,width,height[,conf,...] with 1-based frames (MOTChallenge)"
NO_CONFIDENCE = -1.0  # what MOT files write when a box has no score; such boxes pass any confidence filter


@dataclasses.dataclass(frozen=True)
class Box:
    """One line of a track file: a tracked box in one frame, with the line it came from."""

    frame: int
    track: str
    left: float
    top: float
    width: float
    height: float
    confidence: float
    line: int


def read_tracks(path: str) -> list[Box]:
    """The boxes of a track file in line order; a malformed line or a repeated (frame, id) is an IngestError."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError as error:
        raise IngestError(f"missing track file {path}; expected {FORMAT}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise IngestError(f"{path} cannot be read as a text track file: {error}") from error
    boxes, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        box = _parse(line, f"{path}, line {number}", number)
        key = (box.frame, box.track)
        if key in seen:
            raise IngestError(f"{path}, line {number}: frame {box.frame} has id {box.track} again (first on line "
                              f"{seen[key]}); expected one box per id and frame")
        seen[key] = number
        boxes.append(box)
    if not boxes:
        raise IngestError(f"{path} holds no boxes; expected {FORMAT}")
    return boxes


def _parse(line: str, where: str, number: int) -> Box:
    """One track-file line as a Box, checked."""
    fields = [field.strip() for field in line.split(",")]
    if len(fields) < 6:
        raise IngestError(f"{where}: {len(fields)} fields ({line.strip()!r}); expected {FORMAT}")
    try:
        values = [float(field) for field in fields[:7]]
    except ValueError:
        raise IngestError(f"{where}: a field is not a number ({line.strip()!r}); expected {FORMAT}") from None
    frame, track, left, top, width, height = values[:6]
    if not all(math.isfinite(value) for value in values):
        raise IngestError(f"{where}: a field is not finite ({line.strip()!r}); expected {FORMAT}")
    if frame != int(frame) or frame < 1 or track != int(track):
        raise IngestError(f"{where}: frame {fields[0]} and id {fields[1]} must be integers, frames from 1; "
                          f"expected {FORMAT}")
    if width <= 0 or height <= 0:
        raise IngestError(f"{where}: box {width:g}x{height:g}; expected a positive width and height")
    confidence = values[6] if len(values) > 6 else NO_CONFIDENCE
    return Box(int(frame), str(int(track)), left, top, width, height, confidence, number)
