"""Short multi-camera video sequences of the benchmark's pedestrians, with a tracker's MOT files and its usual faults.

Each camera films the benchmark's training people (the same identities and camera shifts as the image benchmark,
so its labelled test split evaluates what is trained on the sequences) walking across a background of that
camera's scene. A visit of a person to a camera is one track, written in MOTChallenge format to
`<camera>/gt/gt.txt` beside the frames `<camera>/img1/000001.jpg ...`, with a tracker's faults: some tracks are
broken in two inside one camera (one person, two local ids) and some short noisy tracks follow nobody in
particular. `<camera>/truth.csv` says which person each track id follows; ingest never reads it, only the
measurements of docs/results.md do.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
from PIL import Image

from acan_tf.data.records import ReIDDataset
from acan_tf.data.synthetic.cameras import CameraStyle, apply_camera, make_camera_styles
from acan_tf.data.synthetic.image import render
from acan_tf.data.synthetic.spec import SyntheticSpec
from acan_tf.data.synthetic.streams import IMAGE_DETAIL_STREAM, stream
from acan_tf.data.synthetic.tree import make_person

# Streams of their own (beyond the image benchmark's 0-3), so the sequences never change the benchmark's images.
# A visit's path, its fault and the noise draw from separate streams: adding faults never moves a person.
SEQUENCE_STREAM, TRACK_STREAM, WALK_STREAM, FAULT_STREAM, NOISE_STREAM = 10, 11, 12, 13, 14
TRUTH_FILE = "truth.csv"
NOISE_PERSON = -1  # truth.csv's person of a noisy track
JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class SequenceSpec:
    """What the sequences are made from: the benchmark, how many of its training people walk, and the faults.

    Each person walks through `benchmark.min_cameras_per_id` to `max_cameras_per_id` of its cameras.
    """

    benchmark: SyntheticSpec
    num_people: int = 40  # the benchmark's first training identities
    num_frames: int = 60
    track_length: tuple[int, int] = (6, 12)  # frames per visit (low, high)
    frame_tiles: tuple[int, int] = (2, 5)  # the frame is this many person boxes high and wide
    broken_share: float = 0.0  # share of visits whose track the tracker breaks in two
    noisy_tracks: int = 0  # short noisy tracks per camera
    seed: int = 0

    def __post_init__(self) -> None:
        low, high = self.track_length
        if not 1 <= self.num_people <= self.benchmark.num_train_ids:
            raise ValueError(f"SequenceSpec.num_people must be in 1..{self.benchmark.num_train_ids}, got "
                             f"{self.num_people}")
        if not 2 <= low <= high <= self.num_frames:
            raise ValueError(f"SequenceSpec.track_length must be (low, high) with 2 <= low <= high <= num_frames, "
                             f"got {self.track_length}")
        if not 0.0 <= self.broken_share <= 1.0 or self.noisy_tracks < 0:
            raise ValueError("SequenceSpec needs broken_share in [0, 1] and noisy_tracks >= 0")


@dataclasses.dataclass(frozen=True)
class Track:
    """One track id of one camera: the person it follows (NOISE_PERSON for noise) and its boxes per frame."""

    track_id: int
    person: int
    boxes: tuple[tuple[int, int, int], ...]  # (frame, left, top); every box is the benchmark's height x width


def plan_tracks(spec: SequenceSpec, camid: int) -> list[Track]:
    """The tracks camera `camid` records: one per visit (two if broken), then the noisy ones."""
    bench = spec.benchmark
    frame_height, frame_width = bench.height * spec.frame_tiles[0], bench.width * spec.frame_tiles[1]
    tracks: list[Track] = []
    for person in range(spec.num_people):
        walk = stream(spec.seed, WALK_STREAM, person)  # the same draw for every camera: where this person walks
        count = int(walk.integers(bench.min_cameras_per_id, bench.max_cameras_per_id + 1))
        if camid not in walk.choice(bench.num_cameras, size=count, replace=False):
            continue
        rng = stream(spec.seed, SEQUENCE_STREAM, camid, person)
        length = int(rng.integers(spec.track_length[0], spec.track_length[1] + 1))
        start = int(rng.integers(1, spec.num_frames - length + 2))
        top = int(rng.integers(0, frame_height - bench.height + 1))
        # Walking in or out of the picture: at least 60 % of every box inside the frame.
        x0, x1 = rng.uniform(-0.4 * bench.width, frame_width - 0.6 * bench.width, size=2)
        boxes = tuple((start + step, round(x0 + (x1 - x0) * step / max(1, length - 1)), top)
                      for step in range(length))
        fault = stream(spec.seed, FAULT_STREAM, camid, person)
        if length >= 4 and fault.uniform() < spec.broken_share:
            cut = int(fault.integers(2, length - 1))
            tracks += [Track(len(tracks) + 1, person, boxes[:cut]), Track(len(tracks) + 2, person, boxes[cut:])]
        else:
            tracks.append(Track(len(tracks) + 1, person, boxes))
    rng = stream(spec.seed, NOISE_STREAM, camid)
    for _ in range(spec.noisy_tracks):
        length = int(rng.integers(1, 4))
        start = int(rng.integers(1, spec.num_frames - length + 2))
        left = int(rng.integers(0, frame_width - bench.width + 1))
        top = int(rng.integers(0, frame_height - bench.height + 1))
        boxes = tuple((start + step, left + int(rng.integers(-3, 4)), top + int(rng.integers(-3, 4)))
                      for step in range(length))
        tracks.append(Track(len(tracks) + 1, NOISE_PERSON, boxes))
    return tracks


def _background(style: CameraStyle, spec: SequenceSpec, rng: np.random.Generator) -> np.ndarray:
    """The camera's static background: its scene seen through the camera, tile by tile."""
    bench = spec.benchmark
    rows = []
    for _ in range(spec.frame_tiles[0]):
        row = []
        for _ in range(spec.frame_tiles[1]):
            top = int(rng.integers(style.scene.shape[0] - bench.height + 1))
            left = int(rng.integers(style.scene.shape[1] - bench.width + 1))
            row.append(apply_camera(style.scene[top:top + bench.height, left:left + bench.width], style, rng))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def write_camera(folder: str, spec: SequenceSpec, camid: int) -> int:
    """Writes camera `camid`'s frames, gt/gt.txt and truth.csv into `folder`; returns the number of tracks."""
    bench = spec.benchmark
    styles = make_camera_styles(bench)
    scenes = [style.scene for style in styles]
    tracks = plan_tracks(spec, camid)
    background = _background(styles[camid], spec, stream(spec.seed, SEQUENCE_STREAM, camid))
    people = {track.person: make_person(bench, track.person) for track in tracks if track.person != NOISE_PERSON}
    by_frame: dict[int, list[tuple[Track, int, int]]] = {}
    for track in tracks:
        for frame, left, top in track.boxes:
            by_frame.setdefault(frame, []).append((track, left, top))
    os.makedirs(os.path.join(folder, "img1"))
    os.makedirs(os.path.join(folder, "gt"))
    for frame in range(1, spec.num_frames + 1):
        pixels = background.copy()
        for track, left, top in sorted(by_frame.get(frame, []), key=lambda entry: entry[2]):  # nearer ones on top
            if track.person == NOISE_PERSON:
                continue  # a noisy track boxes whatever is there
            rng = stream(spec.seed, TRACK_STREAM, camid, track.person, frame)  # faults change no pixel
            details = stream(bench.seed, IMAGE_DETAIL_STREAM, track.person, camid, frame)
            tile = render(people[track.person], styles[camid], scenes, bench, rng, details)
            _paste(pixels, tile, left, top)
        Image.fromarray(pixels).save(os.path.join(folder, "img1", f"{frame:06d}.jpg"), quality=JPEG_QUALITY)
    lines = sorted((frame, track.track_id, left, top) for track in tracks for frame, left, top in track.boxes)
    with open(os.path.join(folder, "gt", "gt.txt"), "w", encoding="utf-8") as handle:
        handle.writelines(f"{frame},{track_id},{left},{top},{bench.width},{bench.height},1,1,1\n"
                          for frame, track_id, left, top in lines)
    with open(os.path.join(folder, TRUTH_FILE), "w", encoding="utf-8") as handle:
        handle.write("track_id,person\n")
        handle.writelines(f"{track.track_id},{track.person}\n" for track in tracks)
    return len(tracks)


def write_sequences(directory: str, spec: SequenceSpec) -> list[str]:
    """Writes one MOT sequence folder per camera (`c1`, `c2`, ...) into `directory`; returns the camera names."""
    names = [camera_name(camid) for camid in range(spec.benchmark.num_cameras)]
    for camid, name in enumerate(names):
        write_camera(os.path.join(directory, name), spec, camid)
    return names


def camera_name(camid: int) -> str:
    """The folder name of camera `camid`'s sequence (and of its camera in the ingested layout)."""
    return f"c{camid + 1}"


def write_test_split(benchmark: ReIDDataset, root: str) -> None:
    """The benchmark's labelled query and gallery in your own cameras' layout under `root` (global ids as folders).

    Files are hard-linked where the file system allows (copied otherwise); camera k of the benchmark is
    `camera_name(k)`, as in the sequences, so an ingest of them plus this split evaluates on the benchmark's test.
    """
    for split, records in (("query", benchmark.query), ("gallery", benchmark.gallery)):
        for record in records:
            target = os.path.join(root, split, camera_name(record.camid), f"{record.pid:04d}",
                                  os.path.basename(record.path))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            try:
                os.link(record.path, target)
            except OSError:
                shutil.copyfile(record.path, target)


def _paste(frame: np.ndarray, tile: np.ndarray, left: int, top: int) -> None:
    """Pastes `tile` with its top-left corner at (left, top), clipped to the frame."""
    height, width = frame.shape[:2]
    x0, x1 = max(0, left), min(width, left + tile.shape[1])
    if x1 > x0:
        frame[top:top + tile.shape[0], x0:x1] = tile[:, x0 - left:x1 - left]
