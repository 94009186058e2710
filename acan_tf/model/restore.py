"""Rebuilds a trained ACAN from its run directory (config.json, run.json, checkpoints/)."""

from __future__ import annotations

import dataclasses
import json
import os

from acan_tf.config import Config
from acan_tf.model.acan import ACAN
from acan_tf.model.builder import build_acan

CHECKPOINTS = ("best", "last")


class RunDirectoryError(ValueError):
    """A run directory is missing a file or holds an unusable one; the message names it."""


def checkpoint_path(run_dir: str, which: str) -> str:
    """The weights file of checkpoint `which` ("best" or "last") of a run."""
    if which not in CHECKPOINTS:
        raise RunDirectoryError(f"checkpoint {which!r}: expected one of {', '.join(CHECKPOINTS)}")
    return os.path.join(run_dir, "checkpoints", f"{which}.weights.h5")


def read_json(path: str) -> dict:
    """A JSON object from `path`, or an error naming the file."""
    try:
        with open(path) as handle:
            value = json.load(handle)
    except FileNotFoundError as error:
        raise RunDirectoryError(f"{path} not found: is {os.path.dirname(path)} a training run directory?") from error
    except json.JSONDecodeError as error:
        raise RunDirectoryError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object")
    return value


def load_run(run_dir: str, which: str = "best") -> tuple[Config, ACAN, dict]:
    """(config, ACAN in float32 with the checkpoint's weights, run.json) of a training run."""
    config = Config.from_json(read_json(os.path.join(run_dir, "config.json")))
    info = read_json(os.path.join(run_dir, "run.json"))
    path = checkpoint_path(run_dir, which)
    if not os.path.isfile(path):
        raise RunDirectoryError(f"{path} not found: the run has no {which!r} checkpoint yet")
    # Rebuilt in float32 whatever --mixed_precision the run trained with: the variables are float32 under every
    # policy, and evaluation, TF Serving and ONNX Runtime's CPU kernels then need no bfloat16/float16 support.
    inference = dataclasses.replace(config, mixed_precision="none")
    acan = build_acan(inference, len(info["camera_classes"]), info["steps_per_epoch"])
    acan.load_weights(path)
    return config, acan, info
