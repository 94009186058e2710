"""The Market-1501 folder layout (bounding_box_train/, query/, bounding_box_test/), also used by
DukeMTMC-reID and the synthetic benchmark: the person id and camera are read from each file name."""

from __future__ import annotations

import os
import re

from acan_tf.data.datasets.layout import camera_index, image_names, make_dataset, match_name, require_dir
from acan_tf.data.records import ImageRecord, ReIDDataset

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
# Market-1501's junk detections; they are dropped from every split. Pid 0 (distractors) is kept.
JUNK_PID = -1


def parse_split(
    folder: str, name_pattern: re.Pattern[str], name_description: str, num_cameras: int
) -> list[ImageRecord]:
    """Image records of one split folder; `name_pattern` has the groups `pid` and `camera` (1-based)."""
    records = []
    for name in image_names(folder):
        path = os.path.join(folder, name)
        match = match_name(name_pattern, name, path, name_description)
        pid = int(match["pid"])
        if pid != JUNK_PID:
            records.append(ImageRecord(path, pid, camera_index(int(match["camera"]), num_cameras, path)))
    return records


def load_market_layout(
    name: str,
    dataset_dir: str,
    name_pattern: re.Pattern[str],
    name_description: str,
    num_cameras: int,
    layout: str,
) -> ReIDDataset:
    """The three splits of a Market-style folder."""
    splits = {}
    for split, folder_name in SPLIT_FOLDERS.items():
        folder = require_dir(os.path.join(dataset_dir, folder_name), layout)
        splits[split] = (parse_split(folder, name_pattern, name_description, num_cameras), folder)
    return make_dataset(name, dataset_dir, splits, num_cameras)
