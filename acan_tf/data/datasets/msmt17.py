"""MSMT17 (Wei et al., CVPR 2018), V1 or V2: 4,101 identities from 15 cameras, splits given by list files."""

from __future__ import annotations

import os
import re

from acan_tf.data.datasets.layout import (
    DatasetError,
    camera_index,
    find_dataset_dir,
    make_dataset,
    match_name,
    read_lines,
    require_dir,
    require_file,
)
from acan_tf.data.records import ImageRecord, ReIDDataset

FOLDER_NAMES = ("MSMT17_V1", "MSMT17_V2")
NUM_CAMERAS = 15
# (train image folder, test image folder) of V1, then of V2.
IMAGE_FOLDERS = (("train", "test"), ("mask_train_v2", "mask_test_v2"))
NAME_PATTERN = re.compile(r"\d+_\d+_(?P<camera>\d+)_.+\.jpg")
NAME_DESCRIPTION = "<pid>_<index>_<camera>_<...>.jpg, e.g. 0000_000_01_0303morning_0015_0.jpg"
LIST_LINE = "'<pid folder>/<image name> <pid>', e.g. '0000/0000_000_01_0303morning_0015_0.jpg 0'"
LAYOUT = """\
MSMT17_V1/                (MSMT17_V2/: mask_train_v2/ and mask_test_v2/ instead of train/ and test/)
|-- train/                0000/0000_000_01_0303morning_0015_0.jpg ...
|-- test/                 0000/0000_000_01_0303morning_0008_0.jpg ...
|-- list_train.txt        0000/0000_000_01_0303morning_0015_0.jpg 0
|-- list_val.txt
|-- list_query.txt
`-- list_gallery.txt"""


def load(root: str, use_val_for_training: bool = True) -> ReIDDataset:
    """MSMT17 from its folder or the folder's parent; training uses list_train (+ list_val, as the paper)."""
    markers = ("list_train.txt",) + tuple(folder for pair in IMAGE_FOLDERS for folder in pair)
    dataset_dir = find_dataset_dir(root, FOLDER_NAMES, markers, LAYOUT)
    train_dir, test_dir = _image_folders(dataset_dir)
    train_lists = ("train", "val") if use_val_for_training else ("train",)
    train = [record for split in train_lists for record in _parse_list(dataset_dir, split, train_dir)]
    splits = {
        "train": (train, _list_path(dataset_dir, "train")),
        "query": (_parse_list(dataset_dir, "query", test_dir), _list_path(dataset_dir, "query")),
        "gallery": (_parse_list(dataset_dir, "gallery", test_dir), _list_path(dataset_dir, "gallery")),
    }
    return make_dataset("msmt17", dataset_dir, splits, NUM_CAMERAS)


def _image_folders(dataset_dir: str) -> tuple[str, str]:
    """The train and test image folders of whichever version is present (V1 first)."""
    for train_name, test_name in IMAGE_FOLDERS:
        train_dir = os.path.join(dataset_dir, train_name)
        if os.path.isdir(train_dir):
            return train_dir, require_dir(os.path.join(dataset_dir, test_name), LAYOUT)
    v1, v2 = (os.path.join(dataset_dir, train_name) for train_name, _ in IMAGE_FOLDERS)
    raise DatasetError(f"missing folder {v1} (V1) or {v2} (V2); expected layout:\n{LAYOUT}")


def _list_path(dataset_dir: str, split: str) -> str:
    """The list file of a split: list_train.txt, list_val.txt, list_query.txt or list_gallery.txt."""
    return os.path.join(dataset_dir, f"list_{split}.txt")


def _parse_list(dataset_dir: str, split: str, image_dir: str) -> list[ImageRecord]:
    """Image records of one list file, whose paths are relative to `image_dir`."""
    list_path = require_file(_list_path(dataset_dir, split), LAYOUT)
    records = []
    for line_number, line in enumerate(read_lines(list_path), start=1):
        where = f"{list_path}, line {line_number}"
        fields = line.split()
        if len(fields) != 2 or not re.fullmatch(r"-?\d+", fields[1]):
            raise DatasetError(f"{where}: expected {LIST_LINE}, got {line!r}")
        relative_path = os.path.normpath(fields[0])
        # A list must not make us read (or report on) files outside the dataset.
        if os.path.isabs(relative_path) or relative_path.split(os.sep)[0] == os.pardir:
            raise DatasetError(f"{where}: path {fields[0]!r} is outside the image folder {image_dir}")
        match = match_name(NAME_PATTERN, os.path.basename(relative_path), where, NAME_DESCRIPTION)
        camid = camera_index(int(match["camera"]), NUM_CAMERAS, where)
        records.append(ImageRecord(os.path.join(image_dir, relative_path), int(fields[1]), camid))
    return records
