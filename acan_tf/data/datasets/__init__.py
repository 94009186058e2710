"""Dataset registry: `load_dataset(name, root)` parses any supported layout into the same records."""

from __future__ import annotations

import inspect
import types
from typing import Any

from acan_tf.data.datasets import duke_si_tracklet, dukemtmcreid, market1501, mars, msmt17, synthetic
from acan_tf.data.datasets.layout import DatasetError
from acan_tf.data.records import ReIDDataset

_LOADERS = types.MappingProxyType(
    {
        "market1501": market1501.load,
        "dukemtmcreid": dukemtmcreid.load,
        "msmt17": msmt17.load,
        "mars": mars.load,
        "duke_si_tracklet": duke_si_tracklet.load,
        "synthetic": synthetic.load,
    }
)
DATASET_NAMES = tuple(_LOADERS)

__all__ = ["DATASET_NAMES", "DatasetError", "load_dataset"]


def load_dataset(name: str, root: str, **options: Any) -> ReIDDataset:
    """The dataset `name` found at `root` (its folder or the folder's parent), with records sorted by path.

    Options: msmt17 takes `use_val_for_training` (default True: list_train + list_val, as the paper;
    False: list_train alone, as torchreid); synthetic takes `camera_shift` (0-1, used if it must generate the
    benchmark) and `preset` (the tree must be of that preset; generated with it), or `spec` (a SyntheticSpec the
    tree must have been made from).
    """
    if name not in _LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    accepted = list(inspect.signature(_LOADERS[name]).parameters)[1:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) or "none"
        raise DatasetError(f"dataset {name} takes no option {', '.join(unknown)}; it takes {takes}")
    return _LOADERS[name](root, **options)
