"""Index samplers: P×K identities inside one camera (Eq. 11-12) and camera-balanced batches (IV-A).

Samplers hold no RNG: the caller passes one, seeded per step, so that step k's batch is a function
of (seed, k) alone and a resumed run draws exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from acan_tf.data.records import Record, camera_local_labels, camera_name
from acan_tf.data.summary import identities_per_camera
from acan_tf.errors import UserError


class SamplingError(UserError, ValueError):
    """The training set cannot fill the requested batches; the message names the flag to change."""


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """What training consumes: records, camera-local ids, and D's class index of each record's camera.

    `camera_classes` maps each kept dataset camid to a class 0..C'-1; `dropped` maps each dropped
    camid to its number of identities; `class_names` names D's classes in class order.
    """

    records: tuple[Record, ...]
    local_ids: np.ndarray
    classes: np.ndarray
    camera_classes: dict[int, int]
    dropped: dict[int, int]
    class_names: tuple[str, ...] = ()

    @property
    def ids_per_camera(self) -> tuple[int, ...]:
        """The number of camera-local ids of each of D's camera classes, in class order."""
        return tuple(int(self.local_ids[self.classes == c].max()) + 1 for c in range(len(self.camera_classes)))


def training_set(records: Sequence[Record], min_ids: int, camera_names: Sequence[str] | None = None) -> TrainingSet:
    """Relabels ids camera-locally; keeps cameras with ≥ `min_ids` identities (the paper drops MSMT17's camera 2).

    `camera_names[camid]` names the cameras (a benchmark's numbered names when None).
    """
    counts = identities_per_camera(records)
    kept = [camid for camid, n in counts.items() if n >= min_ids]

    def name(camid: int) -> str:
        return camera_names[camid] if camera_names is not None else camera_name(camid)

    if not kept:
        listing = ", ".join(f"{name(camid)}: {n}" for camid, n in counts.items())
        raise SamplingError(
            f"no camera has the {min_ids} identities a triplet batch needs (--num_identities / "
            f"--min_ids_per_camera); identities per camera: {listing}"
        )
    camera_classes = {camid: index for index, camid in enumerate(kept)}
    selected = [r for r in records if r.camid in camera_classes]
    local_ids = np.array([local for _, local in camera_local_labels(selected)], dtype=np.int32)
    classes = np.array([camera_classes[r.camid] for r in selected], dtype=np.int32)
    dropped = {camid: n for camid, n in counts.items() if n < min_ids}
    return TrainingSet(tuple(selected), local_ids, classes, camera_classes, dropped, tuple(map(name, kept)))


class TripletBatchSampler:
    """Batches of P identities × K items, all from one camera, grouped identity by identity.

    The camera is drawn with probability proportional to its number of items, so every item is
    equally likely to be visited; an identity with fewer than K items is sampled with replacement.
    """

    def __init__(self, camids: Sequence[int], local_ids: Sequence[int], num_identities: int,
                 num_instances: int, camera_names: Sequence[str] | None = None):
        camids, local_ids = np.asarray(camids), np.asarray(local_ids)
        self.num_identities, self.num_instances = num_identities, num_instances
        self.cameras = np.unique(camids)
        self.groups: list[list[np.ndarray]] = []
        for camid in self.cameras:
            in_camera = np.flatnonzero(camids == camid)
            ids = local_ids[in_camera]
            groups = [in_camera[ids == pid] for pid in np.unique(ids)]
            if len(groups) < num_identities:
                raise SamplingError(
                    f"{camera_names[camid] if camera_names else camera_name(camid)} has {len(groups)} identities, "
                    f"fewer than --num_identities="
                    f"{num_identities}; drop it (--min_ids_per_camera) or lower --num_identities"
                )
            self.groups.append(groups)
        sizes = np.array([sum(len(g) for g in groups) for groups in self.groups], dtype=float)
        self.camera_probabilities = sizes / sizes.sum()

    def next(self, rng: np.random.Generator) -> np.ndarray:
        """The item indices of the next batch, [P*K]."""
        camera = rng.choice(len(self.cameras), p=self.camera_probabilities)
        groups = self.groups[camera]
        chosen = rng.choice(len(groups), size=self.num_identities, replace=False)
        batch = []
        for identity in chosen:
            items = groups[identity]
            batch.append(rng.choice(items, self.num_instances, replace=len(items) < self.num_instances))
        return np.concatenate(batch)


class CameraBatchSampler:
    """Camera-balanced batches for D: ⌊B/C⌋ items of every camera, interleaved camera by camera.

    `mode="quota"` gives exact quotas (the paper); `mode="rejection"` draws items uniformly and
    accepts each with probability n_min / n_camera, so cameras are balanced only on average.
    Interleaving keeps every camera in each contiguous slice when tf.distribute splits the batch.
    """

    def __init__(self, camids: Sequence[int], batch_size: int, mode: str = "quota"):
        camids = np.asarray(camids)
        self.cameras = np.unique(camids)
        self.per_camera = batch_size // len(self.cameras)
        if self.per_camera < 1:
            raise SamplingError(
                f"--camera_batch_size={batch_size} is smaller than the {len(self.cameras)} training "
                f"cameras; it must hold at least one image of every camera"
            )
        if mode not in ("quota", "rejection"):
            raise SamplingError(f"--camera_sampling={mode!r}: expected quota or rejection")
        self.mode = mode
        self.camids = camids
        self.items = [np.flatnonzero(camids == c) for c in self.cameras]
        counts = np.array([len(items) for items in self.items], dtype=float)
        self.acceptance = counts.min() / counts[np.searchsorted(self.cameras, camids)]

    @property
    def batch_size(self) -> int:
        """Items per batch: ⌊B/C⌋·C."""
        return self.per_camera * len(self.cameras)

    def next(self, rng: np.random.Generator) -> np.ndarray:
        """The item indices of the next batch."""
        if self.mode == "rejection":
            accepted: list[int] = []
            while len(accepted) < self.batch_size:
                candidates = rng.integers(0, len(self.camids), size=self.batch_size)
                keep = rng.random(self.batch_size) < self.acceptance[candidates]
                accepted.extend(candidates[keep].tolist())
            return np.asarray(accepted[: self.batch_size])
        per_camera = [
            rng.choice(items, self.per_camera, replace=len(items) < self.per_camera) for items in self.items
        ]
        return np.stack(per_camera, axis=1).reshape(-1)  # row-major: c0, c1, ..., c0, c1, ...


class PseudoIdentitySampler:
    """Batches of P pseudo-identities × K items drawn across their cameras, for the cross-camera triplet loss.

    `pseudo_ids` gives each training item its cross-camera pseudo-identity (-1: none). The P identities are drawn
    uniformly (with replacement only if there are fewer than P); each one's K items visit its cameras in turn, in
    a random order, so that a batch holds positives from other cameras; an item is drawn at random inside its
    camera, with replacement when the camera has fewer items than it is visited.
    """

    def __init__(self, pseudo_ids: Sequence[int], camids: Sequence[int], num_identities: int, num_instances: int):
        pseudo_ids, camids = np.asarray(pseudo_ids), np.asarray(camids)
        if len(pseudo_ids) != len(camids):
            raise SamplingError(f"{len(pseudo_ids)} pseudo-identities for {len(camids)} training items")
        self.num_identities, self.num_instances = num_identities, num_instances
        self.identities = np.unique(pseudo_ids[pseudo_ids >= 0])
        if len(self.identities) < 2:
            raise SamplingError(f"{len(self.identities)} cross-camera pseudo-identities: a triplet needs at least 2")
        self.groups = [
            [np.flatnonzero((pseudo_ids == identity) & (camids == camid))
             for camid in np.unique(camids[pseudo_ids == identity])]
            for identity in self.identities
        ]

    @property
    def batch_size(self) -> int:
        """Items per batch: P·K."""
        return self.num_identities * self.num_instances

    def next(self, rng: np.random.Generator) -> np.ndarray:
        """The item indices of the next batch, [P*K], grouped identity by identity."""
        replace = len(self.identities) < self.num_identities
        chosen = rng.choice(len(self.identities), size=self.num_identities, replace=replace)
        batch = []
        for identity in chosen:
            cameras = self.groups[identity]
            order = rng.permutation(len(cameras))
            visits = np.bincount(order[np.arange(self.num_instances) % len(cameras)], minlength=len(cameras))
            for items, count in zip(cameras, visits):
                if count:
                    batch.append(rng.choice(items, count, replace=len(items) < count))
        return np.concatenate(batch)


def choose_frames(rng: np.random.Generator, num_frames: int, frames_per_tracklet: int) -> np.ndarray:
    """T frame positions of a tracklet: distinct and in order when it is long enough, else with replacement."""
    if num_frames >= frames_per_tracklet:
        return np.sort(rng.choice(num_frames, frames_per_tracklet, replace=False))
    return np.sort(rng.choice(num_frames, frames_per_tracklet, replace=True))
