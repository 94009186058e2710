"""Tiny training runs for the resume, multi-worker, guard and bad-input tests: a synthetic tree, configs, CLI flags."""

from __future__ import annotations

import dataclasses
import os
import sys

import h5py
import numpy as np

from acan_tf.config import Config
from acan_tf.data.synthetic import SyntheticSpec, generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = SyntheticSpec(num_cameras=3, num_train_ids=12, num_test_ids=6, max_cameras_per_id=3, height=32, width=16)
# 3 cameras, P=4 identities x K=2, two images of every camera in the camera-balanced batch: one step takes a
# few milliseconds on a CPU, and both the triplet and the camera batch split evenly over 2 replicas.
TINY = dict(
    dataset="synthetic", backbone="tiny", backbone_weights="none", image_height=32, image_width=16, pad=4,
    lr_pretrained=0.01, lr_new=0.01, num_identities=4, num_instances=2,
    camera_batch_size=6, epochs=2, steps_per_epoch=3, eval_every=0, eval_batch_size=64, lr_decay_epochs=(1,),
    analyses=False, cross_camera="none",
)


def make_tree(directory: str) -> str:
    """The tiny synthetic benchmark tree in `directory`."""
    return generate(directory, SPEC)


def tiny_config(data_root: str, output_dir: str, **overrides) -> Config:
    """The tiny run's Config with `overrides`."""
    return Config(**{**TINY, "data_root": data_root, "output_dir": output_dir, **overrides})


def cli_flags(config: Config) -> list[str]:
    """The command-line flags that give `config` to `python -m acan_tf.train`."""
    flags = []
    for field in dataclasses.fields(Config):
        value = getattr(config, field.name)
        if value == field.default:
            continue
        if isinstance(value, bool):
            flags.append(f"--{'' if value else 'no'}{field.name}")
        elif isinstance(value, tuple):
            flags.append(f"--{field.name}={','.join(map(str, value))}")
        else:
            flags.append(f"--{field.name}={value}")
    return flags


def train_command(config: Config) -> list[str]:
    """The command line of a training run of `config`."""
    return [sys.executable, "-m", "acan_tf.train", *cli_flags(config)]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a training subprocess: quiet TensorFlow, the repository importable."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO, **extra}


def h5_arrays(path: str) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 weights file, by its path inside the file."""
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return arrays
