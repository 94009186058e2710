"""From MOTChallenge-style sequences (one folder per camera) to your own cameras' layout, atomically.

`ingest` checks every camera's frames and track file before it decodes anything, writes the crops, the manifest
and ingest.json into a hidden temporary sibling of the output folder, and renames it into place only when all
is written: an interrupted or failed ingest leaves no output folder the loader would read.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import os
import shutil
import sys
import uuid
from typing import Callable, Iterator, Sequence

from acan_tf.data.datasets.cameras import MANIFEST_COLUMNS, MIN_CAMERAS, PROVENANCE_COLUMNS
from acan_tf.data.datasets.layout import subfolder_names
from acan_tf.data.ingest.errors import IngestError
from acan_tf.data.ingest.filters import Crop, Filters, Selection, select
from acan_tf.data.ingest.frames import ImageFolder, VideoFile, camera_frames
from acan_tf.data.ingest.tracks import read_tracks
from acan_tf.io import write_json

DEFAULT_TRACKS = os.path.join("gt", "gt.txt")
MANIFEST = "manifest.csv"
SUMMARY = "ingest.json"
SPLIT = "train"  # a tracker's ids are local ids: ingested crops are training data
JPEG_QUALITY = 95
CAMERA_PLACEHOLDER = "{camera}"


@dataclasses.dataclass(frozen=True)
class CameraPlan:
    """One camera's frames, track file and selected crops, checked before anything is written."""

    name: str
    frames: ImageFolder | VideoFile
    track_file: str
    selection: Selection

    @property
    def num_crops(self) -> int:
        """How many crops the camera will write."""
        return sum(len(crops) for crops in self.selection.tracks.values())


def track_file_path(input_dir: str, camera: str, tracks: str) -> str:
    """The track file of `camera`: `tracks` with {camera} replaced, relative to the camera's folder unless absolute."""
    return os.path.join(input_dir, camera, tracks.replace(CAMERA_PLACEHOLDER, camera))


def plan_camera(input_dir: str, camera: str, tracks: str, filters: Filters) -> CameraPlan:
    """A camera's plan: its frames found, its track file read and checked against them, its boxes filtered."""
    frames = camera_frames(os.path.join(input_dir, camera))
    track_file = track_file_path(input_dir, camera, tracks)
    boxes = read_tracks(track_file)
    for box in boxes:
        if not frames.has(box.frame):
            raise IngestError(f"{track_file}, line {box.line}: frame {box.frame} is not among the frames of "
                              f"{frames.describe()}; expected the track file of this camera's sequence")
    return CameraPlan(camera, frames, track_file, select(boxes, frames.size, filters, track_file))


def plan(input_dir: str, tracks: str, filters: Filters, say: Callable[[str], None]) -> list[CameraPlan]:
    """Every camera's plan, cameras with too few tracks dropped (and said); fewer than two cameras is an IngestError."""
    if not os.path.isdir(input_dir):
        raise IngestError(f"--input={input_dir} is not a directory; expected one folder per camera "
                          f"(<camera>/img1/000001.jpg ... and <camera>/{DEFAULT_TRACKS})")
    cameras = subfolder_names(input_dir)
    if len(cameras) < MIN_CAMERAS:
        raise IngestError(f"--input={input_dir} holds {len(cameras)} camera folder(s); expected at least "
                          f"{MIN_CAMERAS}, one per camera, named as the camera")
    plans = []
    for camera in cameras:
        camera_plan = plan_camera(input_dir, camera, tracks, filters)
        kept = len(camera_plan.selection.tracks)
        if kept < filters.min_ids_per_camera:
            say(f"camera {camera}: dropped, {kept} track(s) kept by the filters, fewer than "
                f"--min_ids_per_camera={filters.min_ids_per_camera}")
            continue
        if kept == 1:
            say(f"camera {camera}: kept with a single local id (--min_ids_per_camera=1); training drops a camera "
                "with fewer identities than its --min_ids_per_camera")
        plans.append(camera_plan)
    if len(plans) < MIN_CAMERAS:
        raise IngestError(f"--input={input_dir}: {len(plans)} camera(s) keep tracks after the filters; expected at "
                          f"least {MIN_CAMERAS} (loosen the filters or add cameras)")
    return plans


def ingest(input_dir: str, output_dir: str, filters: Filters, tracks: str = DEFAULT_TRACKS,
           say: Callable[[str], None] = print, progress: bool = True) -> dict:
    """Writes the crops of every camera's tracks to `output_dir`/train/<camera>/<track id>/; returns the summary."""
    input_dir, output_dir = os.path.abspath(input_dir), os.path.abspath(output_dir)
    if os.path.exists(output_dir) and (not os.path.isdir(output_dir) or os.listdir(output_dir)):
        raise IngestError(f"--output={output_dir} already exists and is not an empty folder; choose a new one "
                          "(nothing is ever written over)")
    if os.path.commonpath([input_dir, output_dir]) == input_dir:
        raise IngestError(f"--output={output_dir} lies inside --input={input_dir}; choose a folder outside it")
    plans = plan(input_dir, tracks, filters, say)
    total = sum(camera_plan.num_crops for camera_plan in plans)
    with _staging(output_dir) as staging:
        rows, bar = [], _Progress(total, enabled=progress)
        for camera_plan in plans:
            rows += _write_camera(camera_plan, input_dir, staging, bar)
        bar.close()
        _write_manifest(os.path.join(staging, MANIFEST), rows)
        summary = _summary(input_dir, tracks, filters, plans)
        write_json(os.path.join(staging, SUMMARY), summary)
    for line in summary_lines(summary):
        say(line)
    return summary


def _write_camera(camera_plan: CameraPlan, input_dir: str, output_dir: str, bar: _Progress) -> list[list[str]]:
    """Writes one camera's crops into `output_dir`, decoding each needed frame once; returns their manifest rows."""
    by_frame: dict[int, list[Crop]] = {}
    for crops in camera_plan.selection.tracks.values():
        for crop in crops:
            by_frame.setdefault(crop.frame, []).append(crop)
    rows = []
    for frame, image in camera_plan.frames.read(list(by_frame)):
        for crop in by_frame[frame]:
            relative = os.path.join(SPLIT, camera_plan.name, crop.track, f"{crop.frame:06d}.jpg")
            path = os.path.join(output_dir, relative)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            image.crop((crop.left, crop.top, crop.right, crop.bottom)).save(path, format="JPEG",
                                                                            quality=JPEG_QUALITY)
            source = os.path.relpath(camera_plan.frames.source(frame), input_dir)
            rows.append([relative, camera_plan.name, crop.track, source, str(frame), str(crop.left), str(crop.top),
                         str(crop.right - crop.left), str(crop.bottom - crop.top)])
            bar.advance(camera_plan.name)
    return rows


def _write_manifest(path: str, rows: Sequence[Sequence[str]]) -> None:
    """The manifest: one row per crop, sorted by path, readable by --dataset=cameras."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_COLUMNS + PROVENANCE_COLUMNS)
        writer.writerows(sorted(rows))


def _summary(input_dir: str, tracks: str, filters: Filters, plans: Sequence[CameraPlan]) -> dict:
    """ingest.json: the input, the filters, and per camera what was kept and what was dropped, by reason."""
    return {
        "input": input_dir,
        "tracks": tracks,
        "filters": dataclasses.asdict(filters),
        "cameras": {
            camera_plan.name: {
                "frames": camera_plan.frames.describe(),
                "track_file": camera_plan.track_file,
                "tracks_in_file": camera_plan.selection.num_tracks,
                "tracks_kept": len(camera_plan.selection.tracks),
                "crops": camera_plan.num_crops,
                "dropped": dict(camera_plan.selection.dropped),
            }
            for camera_plan in plans
        },
    }


def summary_lines(summary: dict) -> list[str]:
    """What the ingest kept and dropped, one line per camera."""
    lines = []
    for camera, figures in summary["cameras"].items():
        drops = ", ".join(f"{count} {reason}" for reason, count in figures["dropped"].items() if count)
        lines.append(f"camera {camera}: {figures['tracks_kept']} of {figures['tracks_in_file']} tracks kept, "
                     f"{figures['crops']} crops; dropped: {drops or 'nothing'}")
    return lines


@contextlib.contextmanager
def _staging(output_dir: str) -> Iterator[str]:
    """A hidden sibling folder renamed to `output_dir` if the block succeeds, removed whatever happens."""
    parent, name = os.path.split(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.ingest-{uuid.uuid4().hex}")
    os.makedirs(staging)
    try:
        yield staging
        if os.path.isdir(output_dir):
            os.rmdir(output_dir)  # the empty folder the user named (anything else was refused above)
        os.rename(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Progress:
    """A one-line progress count of the crops written, on stderr."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = total, 0, enabled and total > 0
        self.every = max(1, total // 100)

    def advance(self, camera: str) -> None:
        """One more crop written."""
        self.done += 1
        if self.enabled and (self.done % self.every == 0 or self.done == self.total):
            print(f"\rwriting crops: {self.done}/{self.total} ({100 * self.done // self.total}%), camera {camera}",
                  end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """Ends the progress line."""
        if self.enabled:
            print(file=sys.stderr, flush=True)
