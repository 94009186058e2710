"""F, the feature extractor: raw RGB pixels → backbone → global average pooling → embedding."""

from __future__ import annotations

import keras

from acan_tf.model.backbones import PixelNormalization, build_backbone, get_spec


def build_encoder(
    backbone: str, image_height: int, image_width: int, backbone_weights: str = "none"
) -> keras.Model:
    """F for float RGB pixels in [0, 255] of shape [N, H, W, 3]; the normalisation is part of the model."""
    input_shape = (image_height, image_width, 3)
    pixels = keras.Input(shape=input_shape, name="pixels")
    normalised = PixelNormalization(get_spec(backbone).normalisation, name="normalisation")(pixels)
    feature_map = build_backbone(backbone, input_shape, backbone_weights)(normalised)
    embeddings = keras.layers.GlobalAveragePooling2D(name="pool")(feature_map)
    return keras.Model(pixels, embeddings, name="encoder")
