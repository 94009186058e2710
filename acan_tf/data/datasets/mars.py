"""MARS (Zheng et al., ECCV 2016): 20,478 tracklets of 1,261 identities from 6 cameras."""

from __future__ import annotations

import os
import re

import numpy as np
import scipy.io

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
from acan_tf.data.records import ReIDDataset, TrackletRecord

FOLDER_NAMES = ("MARS", "mars")
NUM_CAMERAS = 6
JUNK_PID = -1
NAME_PATTERN = re.compile(r"(?P<pid>\d{4}|00-1)C(?P<camera>\d)T\d+F\d+\.jpg")
NAME_DESCRIPTION = "<pid>C<camera>T<tracklet>F<frame>.jpg, e.g. 0001C1T0001F001.jpg (pid 00-1 = junk)"
TRACK_COLUMNS = "[start, end, pid, camid]"
LAYOUT = """\
MARS/
|-- bbox_train/           0001/0001C1T0001F001.jpg ...
|-- bbox_test/            0000/0000C1T0001F001.jpg ...
`-- info/
    |-- train_name.txt          0001C1T0001F001.jpg (one frame name per line)
    |-- test_name.txt
    |-- tracks_train_info.mat   track_train_info: N x 4 rows [start, end, pid, camid], 1-based
    |-- tracks_test_info.mat    track_test_info
    `-- query_IDX.mat           query_IDX: 1-based rows of track_test_info"""


def load(root: str) -> ReIDDataset:
    """MARS from its folder or the folder's parent; query = the query_IDX tracklets, gallery = the rest."""
    dataset_dir = find_dataset_dir(root, FOLDER_NAMES, ("bbox_train", "bbox_test"), LAYOUT)
    info_dir = require_dir(os.path.join(dataset_dir, "info"), LAYOUT)
    train_tracks = _read_split(dataset_dir, "train")
    test_tracks = _read_split(dataset_dir, "test")
    query_path = os.path.join(info_dir, "query_IDX.mat")
    query_rows = _query_rows(_load_variable(query_path, "query_IDX"), len(test_tracks), query_path)
    query = [test_tracks[row] for row in query_rows]
    query_set = frozenset(query_rows)
    gallery = [track for row, track in enumerate(test_tracks) if row not in query_set]
    splits = {
        "train": (_kept(train_tracks), os.path.join(dataset_dir, "bbox_train")),
        "query": (_kept(query), query_path),
        "gallery": (_kept(gallery), os.path.join(dataset_dir, "bbox_test")),
    }
    return make_dataset("mars", dataset_dir, splits, NUM_CAMERAS)


def _kept(tracks: list[TrackletRecord]) -> list[TrackletRecord]:
    """The tracklets that are not junk (pid -1); distractors (pid 0) stay."""
    return [track for track in tracks if track.pid != JUNK_PID]


def _read_split(dataset_dir: str, split: str) -> list[TrackletRecord]:
    """Every tracklet of track_{split}_info, in row order, with its frames under bbox_{split}/."""
    image_dir = require_dir(os.path.join(dataset_dir, f"bbox_{split}"), LAYOUT)
    names_path = require_file(os.path.join(dataset_dir, "info", f"{split}_name.txt"), LAYOUT)
    names = read_lines(names_path)
    for line_number, name in enumerate(names, start=1):
        match_name(NAME_PATTERN, name, f"{names_path}, line {line_number}", NAME_DESCRIPTION)
    info_path = os.path.join(dataset_dir, "info", f"tracks_{split}_info.mat")
    info = _load_variable(info_path, f"track_{split}_info")
    if info.ndim != 2 or info.shape[1] != 4:
        raise DatasetError(
            f"{info_path}: track_{split}_info must be a 2-D array with 4 columns {TRACK_COLUMNS}, "
            f"got shape {info.shape}"
        )
    tracks = []
    for row_number, (start, end, pid, camera) in enumerate(_integers(info, info_path, f"track_{split}_info"), 1):
        where = f"{info_path}, row {row_number} of track_{split}_info"
        if not 1 <= start <= end <= len(names):
            raise DatasetError(
                f"{where}: frames {start}..{end} are not a 1-based range inside the {len(names)} names of {names_path}"
            )
        frame_names = names[start - 1 : end]
        if pid != JUNK_PID and len({(name[:4], name[5]) for name in frame_names}) != 1:
            raise DatasetError(f"{where}: frames {start}..{end} mix persons or cameras ({frame_names[0]} ...)")
        paths = tuple(os.path.join(image_dir, name[:4], name) for name in frame_names)
        tracks.append(TrackletRecord(paths, int(pid), camera_index(int(camera), NUM_CAMERAS, where)))
    return tracks


def _load_variable(path: str, variable: str) -> np.ndarray:
    """One variable of a .mat file, with errors naming the file."""
    require_file(path, LAYOUT)
    try:
        contents = scipy.io.loadmat(path)
    except (scipy.io.matlab.MatReadError, ValueError, OSError, TypeError, NotImplementedError) as error:
        raise DatasetError(f"{path} is not a readable .mat file: {error}") from error
    if variable not in contents:
        found = sorted(key for key in contents if not key.startswith("__"))
        raise DatasetError(f"{path} has no variable {variable!r} (found {found})")
    return contents[variable]


def _integers(array: np.ndarray, path: str, variable: str) -> np.ndarray:
    """`array` as int64 if it is numeric and integer-valued (MATLAB stores these as doubles)."""
    if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array) & (array == np.round(array))):
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(
            f"{path}: {variable} must hold integer values, got dtype {array.dtype} "
            f"(first values {array.ravel()[:3].tolist()})"
        )
    return array.astype(np.int64)


def _query_rows(query_idx: np.ndarray, num_test_tracks: int, path: str) -> list[int]:
    """0-based rows of track_test_info from query_IDX: a vector of distinct 1-based row indices."""
    if query_idx.ndim not in (1, 2) or query_idx.size != max(query_idx.shape, default=0):
        raise DatasetError(f"{path}: query_IDX must be a 1-D vector (or a 1 x N matrix), got shape {query_idx.shape}")
    rows = _integers(query_idx, path, "query_IDX").ravel()
    outside = rows[(rows < 1) | (rows > num_test_tracks)]
    if outside.size:
        raise DatasetError(
            f"{path}: query_IDX values must be 1-based rows in 1..{num_test_tracks} of track_test_info, "
            f"got {outside[:5].tolist()}"
        )
    if len(set(rows.tolist())) != rows.size:
        raise DatasetError(f"{path}: query_IDX repeats a row")
    return [int(row) - 1 for row in rows]
