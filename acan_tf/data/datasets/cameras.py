"""Your own cameras: crops in folders named by camera and identity, or the same listed in a CSV manifest.

A local id (the folder under a training camera) means "one person inside this camera" and nothing across cameras:
the records give every (camera, local id) its own pid, so two cameras' local ids never collide, whatever their
folder names. Query and gallery, when present, name GLOBAL ids (the same person has the same folder name in every
camera): they turn on retrieval metrics. Without them the dataset has no cross-camera labels at all.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Sequence

from acan_tf.data.datasets.layout import (
    DatasetError,
    image_names,
    is_image_name,
    sorted_records,
    subfolder_names,
)
from acan_tf.data.records import ImageRecord, Record, ReIDDataset, TrackletRecord

NAME = "cameras"
SPLITS = ("train", "query", "gallery")
EVALUATION_SPLITS = ("query", "gallery")
MIN_CAMERAS = 2  # the camera discriminator and the adversarial loss need at least two cameras
MANIFEST_COLUMNS = ("path", "camera", "local_id")
OPTIONAL_MANIFEST_COLUMNS = ("split", "global_id", "tracklet")
# Where an ingested crop came from (acan_tf.data.ingest writes them); the loader does not read them.
PROVENANCE_COLUMNS = ("source", "frame", "left", "top", "width", "height")
LAYOUT = """\
<root>/
|-- train/<camera>/<local id>/<images>             one person inside one camera (local ids mean nothing
|                                                   across cameras); for video <local id>/<tracklet>/<frames>
|-- query/<camera>/<global id>/<images>            optional, with gallery/: labelled cross-camera identities
`-- gallery/<camera>/<global id>/<images>          (the same global id names the same person in every camera)
or a CSV manifest (--data_root=<file>.csv) with the header path,camera,local_id[,split,global_id][,tracklet]:
paths relative to the manifest's folder; split is train (default), query or gallery; query and gallery rows
name the person by global_id."""


@dataclasses.dataclass(frozen=True)
class Item:
    """One image as a layout or manifest lists it: its split, camera, identity (folder name) and tracklet, if any."""

    split: str
    camera: str
    identity: str
    tracklet: str | None
    path: str


@dataclasses.dataclass(frozen=True)
class CameraScan:
    """Records of one split's folder: `camera_names[camid]` and `identities[pid]` = (camera name, identity folder)."""

    records: tuple[Record, ...]
    camera_names: tuple[str, ...]
    identities: tuple[tuple[str, str], ...]


def scan_cameras(folder: str) -> CameraScan:
    """The records of `folder/<camera>/<identity>/<images or tracklet folders>`, one split's folder.

    Returns a CameraScan: `records` sorted by path (ImageRecords, or TrackletRecords for tracklet folders), each
    with camid = index into `camera_names` (the camera folders, sorted) and pid = index into `identities`, the
    sorted (camera name, identity folder name) pairs, so an identity folder is one pid inside its camera only.
    """
    items = _scan_split(os.path.abspath(folder), "train")
    camera_names = tuple(sorted({item.camera for item in items}))
    identities = tuple(sorted({(item.camera, item.identity) for item in items}))
    records = _records(items, camera_names, {key: pid for pid, key in enumerate(identities)}, folder)
    return CameraScan(records, camera_names, identities)


def load(root: str) -> ReIDDataset:
    """Your own cameras from `root` (a folder with train/ and optionally query/ + gallery/) or a CSV manifest."""
    root = os.path.abspath(root)
    if os.path.isfile(root):
        return dataset_from_items(read_manifest(root), os.path.dirname(root), root)
    if not os.path.isdir(os.path.join(root, "train")):
        raise DatasetError(f"no train/ folder in {root} (and it is not a CSV manifest); expected layout:\n{LAYOUT}")
    present = [split for split in EVALUATION_SPLITS if os.path.isdir(os.path.join(root, split))]
    if len(present) == 1:
        raise DatasetError(f"{root} has {present[0]}/ without {set(EVALUATION_SPLITS).difference(present).pop()}/; "
                           f"retrieval needs both (or neither, to train without cross-camera labels)")
    items = [item for split in ("train", *present) for item in _scan_split(os.path.join(root, split), split)]
    return dataset_from_items(items, root, root)


def dataset_from_items(items: Sequence[Item], root: str, source: str) -> ReIDDataset:
    """The dataset of listed items: cameras sorted by name, pids per (camera, local id) in train, per global id else."""
    train = [item for item in items if item.split == "train"]
    if not train:
        raise DatasetError(f"{source}: the train split holds no images; expected layout:\n{LAYOUT}")
    train_cameras = sorted({item.camera for item in train})
    if len(train_cameras) < MIN_CAMERAS:
        raise DatasetError(f"{source}: the train split has {len(train_cameras)} camera ({', '.join(train_cameras)}); "
                           f"camera alignment needs at least {MIN_CAMERAS}")
    evaluated = [item for item in items if item.split != "train"]
    missing = [split for split in EVALUATION_SPLITS if evaluated and not any(i.split == split for i in evaluated)]
    if missing:
        raise DatasetError(f"{source}: the {missing[0]} split holds no images; retrieval needs query and gallery "
                           f"(or neither, to train without cross-camera labels)")
    camera_names = tuple(sorted({item.camera for item in items}))
    local_ids = {key: pid for pid, key in enumerate(sorted({(item.camera, item.identity) for item in train}))}
    global_ids = {(camera, identity): pid for pid, identity in enumerate(sorted({item.identity for item in evaluated}))
                  for camera in camera_names}
    splits = {split: _records([item for item in items if item.split == split], camera_names,
                              local_ids if split == "train" else global_ids, source) for split in SPLITS}
    return ReIDDataset(NAME, root, splits["train"], splits["query"], splits["gallery"], len(camera_names),
                       camera_names, train_ids_cross_camera=False)


def _records(items: Sequence[Item], camera_names: Sequence[str], pids: dict[tuple[str, str], int],
             source: str) -> tuple[Record, ...]:
    """ImageRecords of items without a tracklet, else TrackletRecords of their frames sorted by path."""
    kinds = {item.tracklet is None for item in items}
    if len(kinds) > 1:
        raise DatasetError(f"{source}: some identities hold images, others tracklet folders; expected one kind "
                           "throughout (images, or tracklets of frames)")
    camids = {camera: camid for camid, camera in enumerate(camera_names)}
    if kinds == {True}:
        return sorted_records(
            ImageRecord(item.path, pids[item.camera, item.identity], camids[item.camera]) for item in items
        )
    frames: dict[tuple[str, str, str], list[str]] = {}
    for item in items:
        frames.setdefault((item.camera, item.identity, item.tracklet), []).append(item.path)
    return sorted_records(
        TrackletRecord(tuple(sorted(paths)), pids[camera, identity], camids[camera])
        for (camera, identity, _), paths in frames.items()
    )


def _scan_split(folder: str, split: str) -> list[Item]:
    """The items of `folder/<camera>/<identity>/...`; an identity folder holds images or tracklet folders, not both."""
    items = []
    for camera in subfolder_names(folder):
        camera_dir = os.path.join(folder, camera)
        stray = image_names(camera_dir)
        if stray:
            raise DatasetError(f"{os.path.join(camera_dir, stray[0])}: an image directly in a camera folder; "
                               f"expected {camera_dir}/<identity>/<images>")
        for identity in subfolder_names(camera_dir):
            identity_dir = os.path.join(camera_dir, identity)
            images, tracklets = image_names(identity_dir), subfolder_names(identity_dir)
            if images and tracklets:
                raise DatasetError(f"{identity_dir} holds both images and tracklet folders; expected one or the "
                                   f"other (<identity>/<images> or <identity>/<tracklet>/<frames>)")
            items += [Item(split, camera, identity, None, os.path.join(identity_dir, name)) for name in images]
            for tracklet in tracklets:
                tracklet_dir = os.path.join(identity_dir, tracklet)
                items += [Item(split, camera, identity, tracklet, os.path.join(tracklet_dir, name))
                          for name in image_names(tracklet_dir)]
    return items


def read_manifest(path: str) -> list[Item]:
    """The items a CSV manifest lists; every path must be an existing image inside the manifest's folder."""
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path} cannot be read as a UTF-8 CSV manifest: {error}") from error
    if not rows:
        raise DatasetError(f"{path} is empty; expected the header {','.join(MANIFEST_COLUMNS)}[,split,global_id]")
    header = [name.strip() for name in rows[0]]
    absent = [name for name in MANIFEST_COLUMNS if name not in header]
    known = MANIFEST_COLUMNS + OPTIONAL_MANIFEST_COLUMNS + PROVENANCE_COLUMNS
    unknown = [name for name in header if name not in known]
    if absent or unknown or len(set(header)) != len(header):
        problem = f"lacks {', '.join(absent)}" if absent else (
            f"has the unknown column {unknown[0]!r}" if unknown else "repeats a column")
        raise DatasetError(f"{path}, line 1: the header {problem}; expected {','.join(MANIFEST_COLUMNS)} and "
                           f"optionally {', '.join(OPTIONAL_MANIFEST_COLUMNS + PROVENANCE_COLUMNS)}")
    columns = {name: header.index(name) for name in header if name in MANIFEST_COLUMNS + OPTIONAL_MANIFEST_COLUMNS}
    items, seen = [], set()
    for line_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        item = _manifest_item(row, header, columns, base, f"{path}, line {line_number}")
        if item.path in seen:
            raise DatasetError(f"{path}, line {line_number}: {item.path} is listed twice")
        seen.add(item.path)
        items.append(item)
    return items


def _manifest_item(row: Sequence[str], header: Sequence[str], columns: dict[str, int], base: str, where: str) -> Item:
    """One manifest row as an Item, checked."""
    if len(row) != len(header):
        raise DatasetError(f"{where}: {len(row)} fields, expected {len(header)} ({','.join(header)})")
    value = {name: row[index].strip() for name, index in columns.items()}
    split = value.get("split") or "train"
    if split not in SPLITS:
        raise DatasetError(f"{where}: split {split!r}; expected one of {', '.join(SPLITS)}")
    global_id = value.get("global_id", "")
    if split == "train" and global_id:
        raise DatasetError(f"{where}: a train row with a global_id; training never reads cross-camera labels "
                           "(leave global_id empty, or make the row a query or gallery row)")
    identity = value["local_id"] if split == "train" else global_id
    for name, text in (("path", value["path"]), ("camera", value["camera"]),
                       ("local_id" if split == "train" else "global_id", identity)):
        if not text:
            raise DatasetError(f"{where}: empty {name}")
    path = os.path.normpath(os.path.join(base, value["path"]))
    if os.path.commonpath([base, path]) != base:
        raise DatasetError(f"{where}: {value['path']} lies outside the manifest's folder {base}; paths must be "
                           "relative to it and stay inside it")
    if not is_image_name(os.path.basename(path)):
        raise DatasetError(f"{where}: {value['path']} is not an image file name")
    if not os.path.isfile(path):
        raise DatasetError(f"{where}: missing file {path}")
    return Item(split, value["camera"], identity, value.get("tracklet") or None, path)

