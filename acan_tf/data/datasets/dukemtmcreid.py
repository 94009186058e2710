"""DukeMTMC-reID (Zheng et al., ICCV 2017): 1,404 identities plus distractors from 8 cameras."""

from __future__ import annotations

import re

from acan_tf.data.datasets.layout import find_dataset_dir
from acan_tf.data.datasets.market_layout import SPLIT_FOLDERS, load_market_layout
from acan_tf.data.records import ReIDDataset

FOLDER_NAMES = ("DukeMTMC-reID",)
NUM_CAMERAS = 8
NAME_PATTERN = re.compile(r"(?P<pid>-1|\d+)_c(?P<camera>\d+)_f\d+\.jpg")
NAME_DESCRIPTION = "<pid>_c<camera>_f<frame>.jpg, e.g. 0005_c2_f0046985.jpg"
LAYOUT = """\
DukeMTMC-reID/
|-- bounding_box_train/   0001_c2_f0046182.jpg ...
|-- query/                0005_c2_f0046985.jpg ...
`-- bounding_box_test/    0002_c1_f0044158.jpg ..."""


def load(root: str) -> ReIDDataset:
    """DukeMTMC-reID from its folder or the folder's parent."""
    dataset_dir = find_dataset_dir(root, FOLDER_NAMES, tuple(SPLIT_FOLDERS.values()), LAYOUT)
    return load_market_layout("dukemtmcreid", dataset_dir, NAME_PATTERN, NAME_DESCRIPTION, NUM_CAMERAS, LAYOUT)
