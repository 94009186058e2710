"""Market-1501 (Zheng et al., ICCV 2015): 1,501 identities from 6 cameras."""

from __future__ import annotations

import re

from acan_tf.data.datasets.layout import find_dataset_dir
from acan_tf.data.datasets.market_layout import SPLIT_FOLDERS, load_market_layout
from acan_tf.data.records import ReIDDataset

FOLDER_NAMES = ("Market-1501-v15.09.15",)
NUM_CAMERAS = 6
NAME_PATTERN = re.compile(r"(?P<pid>-1|\d+)_c(?P<camera>\d+)s\d+_\d+_\d+\.jpg")
NAME_DESCRIPTION = "<pid>_c<camera>s<sequence>_<frame>_<box>.jpg, e.g. 0002_c1s1_000451_03.jpg (pid -1 = junk)"
LAYOUT = """\
Market-1501-v15.09.15/
|-- bounding_box_train/   0002_c1s1_000451_03.jpg ...
|-- query/                0001_c1s1_001051_00.jpg ...
`-- bounding_box_test/    0000_c1s1_000151_01.jpg ... (0000 = distractor, -1 = junk)"""


def load(root: str) -> ReIDDataset:
    """Market-1501 from its folder or the folder's parent."""
    dataset_dir = find_dataset_dir(root, FOLDER_NAMES, tuple(SPLIT_FOLDERS.values()), LAYOUT)
    return load_market_layout("market1501", dataset_dir, NAME_PATTERN, NAME_DESCRIPTION, NUM_CAMERAS, LAYOUT)
