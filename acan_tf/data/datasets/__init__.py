"""Dataset registry: `load_dataset(name, root)` parses any supported layout into the same records."""

from __future__ import annotations

import inspect
import os
import types
from typing import Any

from acan_tf.data.datasets import cameras, duke_si_tracklet, dukemtmcreid, market1501, mars, msmt17, synthetic
from acan_tf.data.datasets.layout import DatasetError
from acan_tf.data.records import ReIDDataset
from acan_tf.data.synthetic.spec import SPEC_FILE

_LOADERS = types.MappingProxyType(
    {
        "market1501": market1501.load,
        "dukemtmcreid": dukemtmcreid.load,
        "msmt17": msmt17.load,
        "mars": mars.load,
        "duke_si_tracklet": duke_si_tracklet.load,
        "synthetic": synthetic.load,
        "cameras": cameras.load,
    }
)
DATASET_NAMES = tuple(_LOADERS)

__all__ = ["DATASET_NAMES", "DatasetError", "load_dataset", "load_existing_dataset", "load_trained_dataset"]


def load_dataset(name: str, root: str, **options: Any) -> ReIDDataset:
    """The dataset `name` found at `root` (its folder or the folder's parent), with records sorted by path.

    Options: msmt17 takes `use_val_for_training` (default True: list_train + list_val, as the paper;
    False: list_train alone, as torchreid); synthetic takes `camera_shift` (0-1, used if it must generate the
    benchmark) and `preset` (the tree must be of that preset; generated with it), or `spec` (a SyntheticSpec the
    tree must have been made from). cameras reads your own cameras (`root/train/<camera>/<local id>/...` or a CSV
    manifest, acan_tf.data.datasets.cameras).
    """
    if name not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    accepted = list(inspect.signature(_LOADERS[name]).parameters)[1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "none"
        raise DatasetError(f"dataset {name} takes no option {', '.join(unknown)}; it takes {takes}")
    return _LOADERS[name](root, **options)


def load_trained_dataset(name: str, root: str) -> ReIDDataset:
    """The dataset `name` at `root` that a model was trained on: never generated (export and evaluation need the
    synthetic benchmark trained on), query and gallery possibly empty (your own cameras without labels)."""
    if name == "synthetic" and not os.path.isfile(os.path.join(root, SPEC_FILE)):
        raise DatasetError(f"no synthetic benchmark at {os.path.abspath(root)} (no {SPEC_FILE}): training generates "
                           "it; pass the --data_root the model was trained on")
    return load_dataset(name, root)


def load_existing_dataset(name: str, root: str) -> ReIDDataset:
    """The dataset `name` at `root` for evaluation and export: never generated, and with a query and a gallery to
    measure retrieval on."""
    dataset = load_trained_dataset(name, root)
    if not dataset.has_evaluation:
        raise DatasetError(f"{dataset.root} has no query/ and gallery/ (no cross-camera labels), so retrieval cannot "
                           "be measured on it; add a labelled query/ and gallery/, or pass another --data_root")
    return dataset
