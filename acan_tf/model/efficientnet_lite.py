"""EfficientNet-Lite0 as a Keras 3 functional model, and the mapping of a PyTorch state dict onto its layers.

Lite0 is EfficientNet-B0 made for integer accelerators: the same 16 MBConv blocks in 7 stages, without
squeeze-excite, with ReLU6 instead of swish, and with the stem (32) and head (1280) widths fixed.
Layer names follow the PyTorch state dict (`_blocks.3._depthwise_conv` → `block3_depthwise_conv`).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import keras
import numpy as np

from acan_tf.errors import UserError

STEM_FILTERS = 32
HEAD_FILTERS = 1280
CLASSES = 1000
DROPOUT = 0.2  # before the classifier, as in the original
# TensorFlow's batch-norm settings of the original (PyTorch ports store momentum as 1 - 0.99).
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
# "same": TensorFlow's padding (at stride 2 the extra row/column goes to the bottom/right), as in Google's original;
# "symmetric": kernel // 2 on every side, as in most PyTorch ports.
PADDINGS = ("same", "symmetric")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of MBConv blocks: its first block has the stride, the others stride 1."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    filters: int


STAGES = (
    Stage(1, 3, 1, 1, 16),
    Stage(2, 3, 2, 6, 24),
    Stage(2, 5, 2, 6, 40),
    Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112),
    Stage(4, 5, 2, 6, 192),
    Stage(1, 3, 1, 6, 320),
)


class WeightsMismatchError(UserError, ValueError):
    """A state dict that does not fit the architecture; the message names the first layer that does not."""


def blocks() -> Iterator[tuple[int, int, int, int, int, int]]:
    """(index, input filters, output filters, kernel, stride, expansion) of the 16 MBConv blocks in order."""
    index, filters_in = 0, STEM_FILTERS
    for stage in STAGES:
        for repeat in range(stage.repeats):
            yield index, filters_in, stage.filters, stage.kernel, stage.stride if repeat == 0 else 1, stage.expand
            index, filters_in = index + 1, stage.filters


def _conv(x, filters: int, kernel: int, stride: int, padding: str, name: str):
    if stride > 1 and padding == "symmetric":
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    mode = "valid" if stride > 1 and padding == "symmetric" else "same"
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding=mode, use_bias=False, name=name)(x)


def _depthwise(x, kernel: int, stride: int, padding: str, name: str):
    if stride > 1 and padding == "symmetric":
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
    mode = "valid" if stride > 1 and padding == "symmetric" else "same"
    return keras.layers.DepthwiseConv2D(kernel, strides=stride, padding=mode, use_bias=False, name=name)(x)


def _bn_relu6(x, name: str, activation: bool = True):
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu6")(x) if activation else x


def build_efficientnet_lite0(
    input_shape: tuple[int | None, int | None, int], include_top: bool = False, padding: str = "same"
) -> keras.Model:
    """Lite0 from normalised RGB to its 1280-channel feature map, or to 1000 ImageNet logits with `include_top`."""
    if padding not in PADDINGS:
        raise ValueError(f"padding={padding!r}; expected one of {PADDINGS}")
    inputs = keras.Input(shape=input_shape)
    x = _conv(inputs, STEM_FILTERS, 3, 2, padding, "stem_conv")
    x = _bn_relu6(x, "stem_bn")
    for index, filters_in, filters_out, kernel, stride, expand in blocks():
        name = f"block{index}"
        block_input = x
        if expand != 1:
            x = _conv(x, filters_in * expand, 1, 1, padding, f"{name}_expand_conv")
            x = _bn_relu6(x, f"{name}_expand_bn")
        x = _depthwise(x, kernel, stride, padding, f"{name}_depthwise_conv")
        x = _bn_relu6(x, f"{name}_depthwise_bn")
        x = _conv(x, filters_out, 1, 1, padding, f"{name}_project_conv")
        x = _bn_relu6(x, f"{name}_project_bn", activation=False)
        if stride == 1 and filters_in == filters_out:
            x = keras.layers.Add(name=f"{name}_add")([x, block_input])
    x = _conv(x, HEAD_FILTERS, 1, 1, padding, "head_conv")
    x = _bn_relu6(x, "head_bn")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dropout(DROPOUT, name="dropout")(x)
        x = keras.layers.Dense(CLASSES, name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_layers(include_top: bool) -> Iterator[tuple[str, str, str]]:
    """(Keras layer, state dict prefix, kind) in the order of the network."""
    yield "stem_conv", "_conv_stem", "conv"
    yield "stem_bn", "_bn0", "bn"
    for index, _, _, _, _, expand in blocks():
        prefix = f"_blocks.{index}"
        if expand != 1:
            yield f"block{index}_expand_conv", f"{prefix}._expand_conv", "conv"
            yield f"block{index}_expand_bn", f"{prefix}._bn0", "bn"
        yield f"block{index}_depthwise_conv", f"{prefix}._depthwise_conv", "depthwise"
        yield f"block{index}_depthwise_bn", f"{prefix}._bn1", "bn"
        yield f"block{index}_project_conv", f"{prefix}._project_conv", "conv"
        yield f"block{index}_project_bn", f"{prefix}._bn2", "bn"
    yield "head_conv", "_conv_head", "conv"
    yield "head_bn", "_bn1", "bn"
    if include_top:
        yield "predictions", "_fc", "dense"


def _keras_arrays(state: dict[str, np.ndarray], prefix: str, kind: str) -> list[np.ndarray]:
    if kind == "bn":
        return [state[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]
    weight = state[f"{prefix}.weight"]
    if kind == "dense":
        return [weight.T, state[f"{prefix}.bias"]]
    if weight.ndim != 4:
        return [weight]  # its shape fails the check below, with the layer's name
    # PyTorch: (out, in / groups, kh, kw); Keras Conv2D: (kh, kw, in, out); DepthwiseConv2D: (kh, kw, in, 1).
    return [weight.transpose(2, 3, 0, 1) if kind == "depthwise" else weight.transpose(2, 3, 1, 0)]


def load_torch_state(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Sets `model`'s weights (from build_efficientnet_lite0) to those of a PyTorch Lite0 state dict."""
    include_top = any(layer.name == "predictions" for layer in model.layers)
    assignments = []
    for layer_name, prefix, kind in _torch_layers(include_top):
        layer = model.get_layer(layer_name)
        try:
            arrays = _keras_arrays(state, prefix, kind)
        except KeyError as error:
            raise WeightsMismatchError(f"layer {layer_name}: the state dict has no {error.args[0]}") from error
        expected = [tuple(variable.shape) for variable in layer.weights]
        found = [array.shape for array in arrays]
        if expected != found:
            raise WeightsMismatchError(
                f"layer {layer_name} ({prefix} in the state dict): expected shapes {expected}, found {found}"
            )
        assignments.append((layer, arrays))
    for layer, arrays in assignments:
        layer.set_weights(arrays)
