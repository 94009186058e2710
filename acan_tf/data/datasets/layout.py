"""What every parser shares: the error type, locating the dataset folder, listing images, ordering records."""

from __future__ import annotations

import os
import re
from typing import Iterable, Sequence

from acan_tf.data.records import Record, ReIDDataset, frame_paths
from acan_tf.errors import UserError

# Extensions of files that are images; anything else in an image folder (Thumbs.db, .txt) is ignored.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


class DatasetError(UserError, ValueError):
    """A dataset folder, list or annotation file that does not have the expected layout or content."""


def find_dataset_dir(root: str, folder_names: Sequence[str], markers: Sequence[str], layout: str) -> str:
    """The dataset folder: `root/<one of folder_names>` if present, else `root` itself if it holds a marker."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise DatasetError(f"dataset root {root} is not a directory; expected layout:\n{layout}")
    for folder_name in folder_names:
        candidate = os.path.join(root, folder_name)
        if os.path.isdir(candidate):
            return candidate
    if any(os.path.exists(os.path.join(root, marker)) for marker in markers):
        return root
    expected = " or ".join(os.path.join(root, name) for name in folder_names)
    raise DatasetError(
        f"no dataset found at {root}: expected {expected}, or {root} itself, laid out as:\n{layout}"
    )


def require_dir(path: str, layout: str) -> str:
    """`path` if it is a directory, else a DatasetError naming it and showing the expected layout."""
    if not os.path.isdir(path):
        raise DatasetError(f"missing folder {path}; expected layout:\n{layout}")
    return path


def require_file(path: str, layout: str) -> str:
    """`path` if it is a file, else a DatasetError naming it and showing the expected layout."""
    if not os.path.isfile(path):
        raise DatasetError(f"missing file {path}; expected layout:\n{layout}")
    return path


def is_image_name(name: str) -> bool:
    """Whether a file name is an image; hidden files (macOS `._*` forks, .DS_Store) never are."""
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def image_names(folder: str) -> list[str]:
    """Sorted names of the image files directly inside `folder`."""
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if entry.is_file() and is_image_name(entry.name))


def subfolder_names(folder: str) -> list[str]:
    """Sorted names of the non-hidden folders directly inside `folder`."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


def match_name(pattern: re.Pattern[str], name: str, where: str, description: str) -> re.Match[str]:
    """The match of `pattern` on `name`, else a DatasetError naming `where` and the expected pattern."""
    match = pattern.fullmatch(name)
    if match is None:
        raise DatasetError(f"{where}: name {name!r} does not match the expected pattern {description}")
    return match


def camera_index(camera: int, num_cameras: int, where: str) -> int:
    """The 0-based camid of a 1-based camera number, checked against the dataset's camera count."""
    if not 1 <= camera <= num_cameras:
        raise DatasetError(f"{where}: camera {camera} is not in 1..{num_cameras}")
    return camera - 1


def read_lines(path: str) -> list[str]:
    """The stripped lines of a text file, without trailing blank lines."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle]
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path} is not a text file: {error}") from error
    while lines and not lines[-1]:
        lines.pop()
    return lines


def sorted_records(records: Iterable[Record]) -> tuple[Record, ...]:
    """Records in a deterministic order: by path (first frame, then the rest), then pid and camid."""
    return tuple(sorted(records, key=lambda record: (frame_paths(record), record.pid, record.camid)))


def make_dataset(
    name: str,
    root: str,
    splits: dict[str, tuple[Sequence[Record], str]],
    num_cameras: int,
) -> ReIDDataset:
    """A ReIDDataset from {split: (records, folder or file they came from)}; no split may be empty."""
    for split, (records, source) in splits.items():
        if not records:
            raise DatasetError(f"the {split} split ({source}) holds no usable images or tracklets")
    train, query, gallery = (sorted_records(splits[split][0]) for split in ("train", "query", "gallery"))
    return ReIDDataset(name, root, train, query, gallery, num_cameras)
