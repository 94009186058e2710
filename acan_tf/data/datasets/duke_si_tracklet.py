"""DukeMTMC-SI-Tracklet (Li, Zhu and Gong, TPAMI 2019): 12,647 tracklets of 1,788 identities from 8 cameras."""

from __future__ import annotations

import os
import re

from acan_tf.data.datasets.layout import (
    DatasetError,
    camera_index,
    find_dataset_dir,
    image_names,
    make_dataset,
    match_name,
    require_dir,
    subfolder_names,
)
from acan_tf.data.records import ReIDDataset, TrackletRecord

FOLDER_NAMES = ("DukeMTMC-SI-Tracklet",)
NUM_CAMERAS = 8
SPLITS = ("train", "query", "gallery")
PID_PATTERN = re.compile(r"[0-9]+")
FRAME_PATTERN = re.compile(r"c(?P<camera>\d)_(?P<frame>\d+)\.jpg")
FRAME_DESCRIPTION = "c<camera>_<frame>.jpg, e.g. c6_030823.jpg"
LAYOUT = """\
DukeMTMC-SI-Tracklet/
|-- train/                0001/<tracklet>/c6_030823.jpg ...
|-- query/                0002/<prefix><tracklet>/c1_004125.jpg ...
`-- gallery/              0002/<prefix><tracklet>/c5_010032.jpg ..."""


def load(root: str) -> ReIDDataset:
    """DukeMTMC-SI-Tracklet from its folder or the folder's parent."""
    dataset_dir = find_dataset_dir(root, FOLDER_NAMES, SPLITS, LAYOUT)
    splits = {}
    for split in SPLITS:
        split_dir = require_dir(os.path.join(dataset_dir, split), LAYOUT)
        splits[split] = (_parse_split(split_dir), split_dir)
    return make_dataset("duke_si_tracklet", dataset_dir, splits, NUM_CAMERAS)


def _parse_split(split_dir: str) -> list[TrackletRecord]:
    """One tracklet per <pid>/<tracklet>/ folder, its frames in frame-number order."""
    tracklets = []
    for pid_name in subfolder_names(split_dir):
        pid_dir = os.path.join(split_dir, pid_name)
        if not PID_PATTERN.fullmatch(pid_name):
            raise DatasetError(f"{pid_dir}: identity folders must be named by a number, e.g. 0001")
        for tracklet_name in subfolder_names(pid_dir):
            tracklets.append(_parse_tracklet(os.path.join(pid_dir, tracklet_name), int(pid_name)))
    return tracklets


def _parse_tracklet(tracklet_dir: str, pid: int) -> TrackletRecord:
    """The tracklet of one folder; all its frames must come from one camera."""
    frames = []
    for name in image_names(tracklet_dir):
        match = match_name(FRAME_PATTERN, name, os.path.join(tracklet_dir, name), FRAME_DESCRIPTION)
        frames.append((int(match["frame"]), name, int(match["camera"])))
    if not frames:
        raise DatasetError(f"tracklet folder {tracklet_dir} holds no frames ({FRAME_DESCRIPTION})")
    cameras = sorted({camera for _, _, camera in frames})
    if len(cameras) != 1:
        raise DatasetError(f"tracklet folder {tracklet_dir} mixes cameras {cameras}; a tracklet has one camera")
    paths = tuple(os.path.join(tracklet_dir, name) for _, name, _ in sorted(frames))
    return TrackletRecord(paths, pid, camera_index(cameras[0], NUM_CAMERAS, tracklet_dir))
