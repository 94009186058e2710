"""A validation split carved out of the training identities, to choose settings without looking at the test split.

A seeded draw of training identities leaves training; their images become a query (the first image of each
identity in each camera, by path) and a gallery (all their other images), evaluated with the same protocol as
the test split. Carving reads the dataset's person ids across cameras, as a benchmark's own labels allow: it is a
tool for choosing settings on a benchmark, not part of training (which still sees camera-local ids only).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from acan_tf.data.datasets.layout import DatasetError
from acan_tf.data.records import ReIDDataset, frame_paths


def carve_validation(dataset: ReIDDataset, num_identities: int, seed: int) -> ReIDDataset:
    """The dataset with `num_identities` training identities moved out of train into its query and gallery."""
    if not dataset.train_ids_cross_camera:
        raise DatasetError(f"--validation_identities={num_identities}: {dataset.name} has no cross-camera identities "
                           "to hold out (its training ids are camera-local); add a labelled query/ and gallery/")
    pids = sorted({record.pid for record in dataset.train})
    if not 0 < num_identities < len(pids):
        raise DatasetError(f"--validation_identities={num_identities}: expected 1..{len(pids) - 1} of the "
                           f"{len(pids)} training identities of {dataset.name}")
    carved = set(np.random.default_rng(seed).choice(pids, num_identities, replace=False).tolist())
    held = sorted((record for record in dataset.train if record.pid in carved), key=frame_paths)
    query, gallery, seen = [], [], set()
    for record in held:
        first = (record.pid, record.camid) not in seen
        seen.add((record.pid, record.camid))
        (query if first else gallery).append(record)
    return dataclasses.replace(
        dataset, train=tuple(record for record in dataset.train if record.pid not in carved),
        query=tuple(query), gallery=tuple(gallery),
    )
