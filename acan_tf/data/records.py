"""Dataset records: what every parser returns, and the camera-local relabelling training uses."""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image: its path, the dataset's own person id and a 0-based camera id."""

    path: str
    pid: int
    camid: int


@dataclasses.dataclass(frozen=True)
class TrackletRecord:
    """One tracklet: its ordered frame paths, the dataset's own person id and a 0-based camera id."""

    paths: tuple[str, ...]
    pid: int
    camid: int


Record = Union[ImageRecord, TrackletRecord]


def camera_name(camid: int) -> str:
    """How a benchmark's camera is named: by the dataset's own 1-based number (Market-1501's c1-c6)."""
    return f"camera {camid + 1}"


def numbered_camera_names(num_cameras: int) -> tuple[str, ...]:
    """The names of a benchmark's cameras, index = camid: "camera 1", "camera 2", ..."""
    return tuple(camera_name(camid) for camid in range(num_cameras))


def frame_paths(record: Record) -> tuple[str, ...]:
    """The frame paths of a record: its image, or a tracklet's frames in order."""
    return record.paths if isinstance(record, TrackletRecord) else (record.path,)


@dataclasses.dataclass(frozen=True)
class ReIDDataset:
    """A dataset's three splits; `num_cameras` is the layout's camera count (Market-1501: 6), `cameras` the data's.

    `camera_names[camid]` is how tables, plots, logs and reports name a camera: a benchmark's numbered cameras
    by default, the folder names of your own cameras (acan_tf.data.datasets.cameras). Query and gallery are
    both empty when the dataset has no cross-camera labels (then retrieval cannot be measured).
    `train_ids_cross_camera`: a training pid names one person in every camera (a benchmark's labels, which only
    measurements read); False for your own cameras, whose training pids are one person inside one camera.
    """

    name: str
    root: str
    train: tuple[Record, ...]
    query: tuple[Record, ...]
    gallery: tuple[Record, ...]
    num_cameras: int
    camera_names: tuple[str, ...] = ()
    train_ids_cross_camera: bool = True

    def __post_init__(self) -> None:
        if not self.camera_names:
            object.__setattr__(self, "camera_names", numbered_camera_names(self.num_cameras))
        if len(self.camera_names) != self.num_cameras:
            raise ValueError(f"{len(self.camera_names)} camera names for {self.num_cameras} cameras")

    @property
    def is_video(self) -> bool:
        """Whether the records are tracklets."""
        return bool(self.train) and isinstance(self.train[0], TrackletRecord)

    @property
    def has_evaluation(self) -> bool:
        """Whether query and gallery exist: labelled cross-camera identities that retrieval is measured on."""
        return bool(self.query) and bool(self.gallery)

    @property
    def camera_keys(self) -> tuple[str, ...]:
        """How files (a deployment's camera statistics) name the cameras, index = camid: your own cameras by their
        folder names, a benchmark's as c and the 1-based number (Market-1501's c1)."""
        if not self.train_ids_cross_camera:
            return self.camera_names
        return tuple(f"c{camid + 1}" for camid in range(self.num_cameras))

    @property
    def cameras(self) -> tuple[int, ...]:
        """The camids the data has (in any split), sorted: what tables and messages list."""
        return tuple(sorted({record.camid for split in (self.train, self.query, self.gallery) for record in split}))


def camera_local_labels(records: Sequence[Record]) -> list[tuple[int, int]]:
    """(camid, camera-local id) per record: ids numbered 0.. inside each camera, in sorted order of pid.

    This is the only identity information training sees, so a person's ids in two cameras are
    never linked (the paper's intra-camera supervision).
    """
    pids_per_camera: dict[int, set[int]] = {}
    for record in records:
        pids_per_camera.setdefault(record.camid, set()).add(record.pid)
    local = {
        camid: {pid: index for index, pid in enumerate(sorted(pids))}
        for camid, pids in pids_per_camera.items()
    }
    return [(record.camid, local[record.camid][record.pid]) for record in records]
