"""Backbone registry: name → a Keras model from pixels to a feature map, and the input normalisation it expects."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import keras
import numpy as np

from acan_tf.errors import UserError
from acan_tf.model import lite_weights
from acan_tf.model.efficientnet_lite import WeightsMismatchError, build_efficientnet_lite0
from acan_tf.model.torch_checkpoint import TorchCheckpointError

# Input normalisation styles, applied inside the encoder so that callers (and exports) feed raw RGB pixels.
# "caffe": BGR with the ImageNet mean removed (Keras ResNet-50 weights); "tf": scaled to [-1, 1]
# (Keras MobileNetV3 weights); "imagenet": RGB standardised by the ImageNet mean and std; "lite": EfficientNet-Lite's
# (x - 127) / 128, which the stem's batch-norm statistics of the shipped Lite0 weights match.
NORMALISATIONS = {
    "caffe": dict(mean=(123.68, 116.779, 103.939), std=(1.0, 1.0, 1.0), bgr=True),
    "tf": dict(mean=(127.5, 127.5, 127.5), std=(127.5, 127.5, 127.5), bgr=False),
    "imagenet": dict(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), bgr=False),
    "lite": dict(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), bgr=False),
}


class BackboneError(UserError, ValueError):
    """An unknown backbone or unusable backbone weights; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone and where its ImageNet weights live."""

    build: Callable[[tuple[int, int, int], str | None], keras.Model]
    normalisation: str
    imagenet_file: str | None  # the Keras cache file name of the include_top=False weights
    prepare_imagenet: Callable[[str], None] | None = None  # creates or checks that cache file before it is used


def _resnet50(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.ResNet50(include_top=False, weights=weights, input_shape=input_shape)


def _mobilenet_v3(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    return keras.applications.MobileNetV3Small(
        include_top=False, weights=weights, input_shape=input_shape, include_preprocessing=False
    )


def _efficientnet_lite0(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Lite0 up to its head's batch norm: F pools the head's pre-activation, not its ReLU6 output."""
    model = build_efficientnet_lite0(input_shape)
    if weights is not None:
        try:
            lite_weights.load_keras_weights(model, weights)
        except lite_weights.LiteWeightsError as error:
            raise BackboneError(f"--backbone_weights: {error}") from error
    # Measured (docs/results.md): fine-tuned on the ReLU6 output, every embedding collapsed to one point within an
    # epoch at learning rates 0.1, 0.01 and 0.01 with warm-up (ReLU6 saturates at 0 and 6, and a saturated head
    # passes no gradient back); on the pre-activation it did not, at 0.01.
    return keras.Model(model.input, model.get_layer("head_bn").output, name=model.name)


def _prepare_lite0(path: str) -> None:
    try:
        lite_weights.ensure_imagenet_weights(path)
    except (lite_weights.LiteWeightsError, TorchCheckpointError, WeightsMismatchError) as error:
        raise BackboneError(f"--backbone=efficientnet_lite0 --backbone_weights=imagenet: {error}") from error


def _tiny(input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """Four stride-2 conv blocks (32→256 channels): a CPU-friendly backbone for tests and the synthetic benchmark.

    It has no ImageNet weights; `weights` may be a file saved from another tiny backbone.
    """
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for index, filters in enumerate((32, 64, 128, 256)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{index}b")(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}b")(x)
        x = keras.layers.ReLU(name=f"relu{index}b")(x)
    model = keras.Model(inputs, x, name="tiny")
    if weights is not None:
        try:
            model.load_weights(weights)
        except (OSError, ValueError) as error:
            message = f"--backbone_weights={weights}: not the weights of a tiny backbone ({error})"
            raise BackboneError(message) from error
    return model


BACKBONES: dict[str, BackboneSpec] = {
    "resnet50": BackboneSpec(_resnet50, "caffe", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    "mobilenet_v3": BackboneSpec(
        _mobilenet_v3, "tf", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5"
    ),
    "tiny": BackboneSpec(_tiny, "imagenet", None),
    "efficientnet_lite0": BackboneSpec(_efficientnet_lite0, "lite", lite_weights.KERAS_FILE, _prepare_lite0),
}


def keras_cache_dir() -> str:
    """The folder where Keras keeps downloaded weights ($KERAS_HOME/models, default ~/.keras/models)."""
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def resolve_weights(name: str, weights: str) -> str | None:
    """The weights file to load for `--backbone_weights` ('none', 'imagenet' or a path), or None."""
    spec = get_spec(name)
    if weights in ("", "none"):
        return None
    if weights == "imagenet":
        if spec.imagenet_file is None:
            raise BackboneError(f"--backbone={name} has no ImageNet weights; use --backbone_weights=none")
        path = os.path.join(keras_cache_dir(), spec.imagenet_file)
        if spec.prepare_imagenet is not None:
            spec.prepare_imagenet(path)
        if not os.path.isfile(path):
            raise BackboneError(
                f"--backbone_weights=imagenet: {path} not found and this machine may be offline. "
                f"Download {spec.imagenet_file} (Keras applications, include_top=False) on a machine with "
                f"internet access and copy it to {keras_cache_dir()}/, or pass its path as "
                f"--backbone_weights=/path/to/{spec.imagenet_file}"
            )
        return path
    if not os.path.isfile(weights):
        raise BackboneError(
            f"--backbone_weights={weights!r}: no such file; expected 'none', 'imagenet' or the path of a "
            f"Keras .h5 weights file for {name} without its classifier (include_top=False)"
        )
    return weights


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for a backbone name."""
    if name not in BACKBONES:
        raise BackboneError(f"--backbone={name!r}: unknown backbone; choices: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name]


def build_backbone(name: str, input_shape: tuple[int, int, int], weights: str = "none") -> keras.Model:
    """A backbone from pixels (already normalised) to its last feature map."""
    path = resolve_weights(name, weights)
    return get_spec(name).build(input_shape, path)


@keras.saving.register_keras_serializable(package="acan_tf")
class PixelNormalization(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to the backbone's expected input (see NORMALISATIONS)."""

    def __init__(self, style: str, **kwargs):
        super().__init__(**kwargs)
        if style not in NORMALISATIONS:
            raise BackboneError(f"unknown normalisation {style!r}; choices: {sorted(NORMALISATIONS)}")
        self.style = style
        values = NORMALISATIONS[style]
        self._mean = np.asarray(values["mean"], dtype="float32")
        self._std = np.asarray(values["std"], dtype="float32")
        self._bgr = values["bgr"]

    def call(self, pixels):
        x = (pixels - self._mean) / self._std
        return x[..., ::-1] if self._bgr else x

    def get_config(self) -> dict:
        return {**super().get_config(), "style": self.style}
