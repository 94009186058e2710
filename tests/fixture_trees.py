"""Writers of tiny, layout-exact dataset trees for tests (no data files are committed).

Each writer creates `parent/<official folder name>/...` and returns that dataset folder. Images are
4x8 JPEGs whose colour encodes the person and the camera, so a model can learn something from them.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import scipy.io
from PIL import Image

IMAGE_SIZE = (4, 8)  # width, height
NON_IMAGE_FILES = ("Thumbs.db", ".DS_Store", "readme.txt")

MARKET_FILES = {
    "bounding_box_train": (
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000301_01.jpg",
        "0007_c3s3_000123_02.jpg",
        "-1_c1s1_000001_01.jpg",
    ),
    "query": ("0003_c1s1_001051_00.jpg", "0003_c6s2_000201_00.jpg", "-1_c2s1_000002_01.jpg"),
    "bounding_box_test": (
        "0003_c4s2_000301_02.jpg",
        "0000_c5s1_000151_01.jpg",
        "-1_c1s1_000401_03.jpg",
        "0003_c1s1_001051_01.jpg",
    ),
}
# A Market-1501 tree whose images come from cameras 1 and 2 only (of the layout's 6).
MARKET_TWO_CAMERAS = {
    "bounding_box_train": ("0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c2s3_000123_02.jpg"),
    "query": ("0003_c1s1_001051_00.jpg",),
    "bounding_box_test": ("0003_c2s2_000301_02.jpg",),
}
DUKE_FILES = {
    "bounding_box_train": ("0001_c2_f0046182.jpg", "0001_c8_f0000012.jpg", "0004_c1_f0050000.jpg"),
    "query": ("0005_c2_f0046985.jpg",),
    "bounding_box_test": ("0005_c7_f0001234.jpg", "0000_c3_f0000100.jpg"),
}
MSMT17_LISTS = {
    "train": (
        "0000/0000_000_01_0303morning_0015_0.jpg 0",
        "0000/0000_001_03_0303morning_0030_1.jpg 0",
        "0001/0001_000_15_0303noon_0100_0.jpg 1",
    ),
    "val": ("0001/0001_001_02_0303noon_0200_0.jpg 1",),
    "query": ("0000/0000_000_05_0303afternoon_0008_0.jpg 0",),
    "gallery": ("0000/0000_001_07_0303afternoon_0099_0.jpg 0", "0001/0001_000_05_0303noon_0005_1.jpg 1"),
}
# MSMT17 version -> (train image folder, test image folder).
MSMT17_IMAGE_FOLDERS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
# MARS tracklets as (pid, camera 1-based, number of frames); pid -1 is junk, 0 a distractor.
MARS_TRAIN = ((1, 1, 2), (1, 2, 3), (-1, 1, 1), (2, 3, 2))
MARS_TEST = ((3, 1, 2), (3, 4, 1), (0, 5, 2), (-1, 2, 1), (4, 6, 2), (4, 1, 1))
MARS_QUERY_ROWS = (0, 4)  # 0-based rows of MARS_TEST; the file stores them 1-based
# DukeMTMC-SI-Tracklet tracklets as (pid, tracklet folder, camera 1-based, frame numbers in writing order).
DUKE_SI_TRACKLETS = {
    "train": ((1, "0001", 6, (30824, 30823)), (1, "0005", 2, (99, 100, 98)), (9, "0002", 3, (5,))),
    "query": ((2, "C1T0003", 1, (4125,)),),
    "gallery": ((2, "C5T0007", 5, (10040, 10032)), (4, "C2T0011", 2, (7,))),
}


def write_image(path: Path, pid: int = 1, camera: int = 1) -> Path:
    """A tiny JPEG at `path` (parents created) coloured by person and camera."""
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = ((pid * 53) % 256, (pid * 97 + 60) % 256, (camera * 40) % 256)
    Image.new("RGB", IMAGE_SIZE, colour).save(path, format="JPEG")
    return path


def write_non_images(folder: Path) -> None:
    """The stray files real downloads carry (Thumbs.db, .DS_Store, a text file); parsers must ignore them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in NON_IMAGE_FILES:
        (folder / name).write_text("not an image")


def _write_split_folders(dataset_dir: Path, files: Mapping[str, Sequence[str]]) -> Path:
    """Images named like Market-1501 (`<pid>_c<camera>...`) in each split folder, plus stray files."""
    for folder, names in files.items():
        write_non_images(dataset_dir / folder)
        for name in names:
            pid, camera = name.split("_")[:2]
            write_image(dataset_dir / folder / name, int(pid), int(camera[1]))
    return dataset_dir


def write_market_tree(
    parent: Path, files: Mapping[str, Sequence[str]] = MARKET_FILES, folder: str = "Market-1501-v15.09.15"
) -> Path:
    """A Market-1501 tree: {split folder: image names}."""
    return _write_split_folders(parent / folder, files)


def write_duke_tree(
    parent: Path, files: Mapping[str, Sequence[str]] = DUKE_FILES, folder: str = "DukeMTMC-reID"
) -> Path:
    """A DukeMTMC-reID tree: {split folder: image names}."""
    return _write_split_folders(parent / folder, files)


def write_msmt17_tree(parent: Path, lists: Mapping[str, Sequence[str]] = MSMT17_LISTS, version: str = "V1") -> Path:
    """An MSMT17_V1 or _V2 tree: {train|val|query|gallery: list lines}, with every listed image written."""
    dataset_dir = parent / f"MSMT17_{version}"
    train_folder, test_folder = MSMT17_IMAGE_FOLDERS[version]
    for split, lines in lists.items():
        image_dir = dataset_dir / (train_folder if split in ("train", "val") else test_folder)
        image_dir.mkdir(parents=True, exist_ok=True)
        for line in lines:
            relative_path, pid = line.split()
            write_image(image_dir / relative_path, int(pid), int(Path(relative_path).name.split("_")[2]))
        (dataset_dir / f"list_{split}.txt").write_text("".join(line + "\n" for line in lines))
    return dataset_dir


def mars_frame_name(pid: int, camera: int, tracklet: int, frame: int) -> str:
    """A MARS frame name, e.g. 0001C1T0001F001.jpg; junk (pid -1) is written 00-1."""
    pid_text = "00-1" if pid == -1 else f"{pid:04d}"
    return f"{pid_text}C{camera}T{tracklet:04d}F{frame:03d}.jpg"


def write_mars_tree(
    parent: Path,
    train: Sequence[tuple[int, int, int]] = MARS_TRAIN,
    test: Sequence[tuple[int, int, int]] = MARS_TEST,
    query_rows: Sequence[int] = MARS_QUERY_ROWS,
    folder: str = "MARS",
) -> Path:
    """A MARS tree from (pid, camera, number of frames) tracklets and 0-based query rows of `test`."""
    dataset_dir = parent / folder
    info_dir = dataset_dir / "info"
    info_dir.mkdir(parents=True)
    for split, tracks in (("train", train), ("test", test)):
        write_non_images(dataset_dir / f"bbox_{split}")
        names, rows = [], []
        tracklet_numbers = itertools.count(1)
        for pid, camera, num_frames in tracks:
            tracklet = next(tracklet_numbers)
            start = len(names) + 1
            for frame in range(1, num_frames + 1):
                name = mars_frame_name(pid, camera, tracklet, frame)
                write_image(dataset_dir / f"bbox_{split}" / name[:4] / name, pid, camera)
                names.append(name)
            rows.append((start, len(names), pid, camera))
        (info_dir / f"{split}_name.txt").write_text("".join(name + "\n" for name in names))
        info = np.array(rows, dtype=np.int32).reshape(-1, 4)
        scipy.io.savemat(info_dir / f"tracks_{split}_info.mat", {f"track_{split}_info": info})
    query_idx = np.array([row + 1 for row in query_rows], dtype=np.int32)
    scipy.io.savemat(info_dir / "query_IDX.mat", {"query_IDX": query_idx})
    return dataset_dir


def write_duke_si_tree(
    parent: Path,
    tracklets: Mapping[str, Sequence[tuple[int, str, int, Sequence[int]]]] = DUKE_SI_TRACKLETS,
    folder: str = "DukeMTMC-SI-Tracklet",
) -> Path:
    """A DukeMTMC-SI-Tracklet tree: {split: (pid, tracklet folder, camera, frame numbers)}."""
    dataset_dir = parent / folder
    for split, split_tracklets in tracklets.items():
        write_non_images(dataset_dir / split)
        for pid, tracklet_folder, camera, frames in split_tracklets:
            tracklet_dir = dataset_dir / split / f"{pid:04d}" / tracklet_folder
            for frame in frames:
                write_image(tracklet_dir / f"c{camera}_{frame:06d}.jpg", pid, camera)
    return dataset_dir


def write_cameras_tree(root: Path, splits: Mapping[str, Mapping[str, Mapping[str, int]]]) -> Path:
    """Your own cameras' tree: {split: {camera: {identity folder: number of images}}}, images 0.jpg, 1.jpg, ..."""
    for split, cameras in splits.items():
        for camera_number, (camera, identities) in enumerate(sorted(cameras.items()), start=1):
            for pid, (identity, count) in enumerate(sorted(identities.items()), start=1):
                for index in range(count):
                    write_image(root / split / camera / identity / f"{index}.jpg", pid, camera_number)
    return root
