"""F, the feature extractor: raw RGB pixels → backbone → global average pooling (→ BN-neck) → embedding."""

from __future__ import annotations

import keras

from acan_tf.model.backbones import PixelNormalization, build_backbone, get_spec

POOL = "pool"
BN_NECK = "bn_neck"
# PyTorch's BatchNorm1d defaults, as in Bag of Tricks (Keras' momentum is 1 − PyTorch's): its statistics follow the
# pooled features within tens of steps, where Keras' 0.99 would keep them near their initial 0 and 1 in a short run.
NECK_MOMENTUM = 0.9
NECK_EPSILON = 1e-5


def build_encoder(
    backbone: str, image_height: int, image_width: int, backbone_weights: str = "none", bn_neck: bool = False
) -> keras.Model:
    """F for float RGB pixels in [0, 255] of shape [N, H, W, 3]; the normalisation is part of the model.

    With `bn_neck` (Luo et al., "Bag of Tricks", 2019), F's embedding is the pooled features after a batch
    normalisation without shift; `training_view` also gives the pooled features before it.
    """
    input_shape = (image_height, image_width, 3)
    pixels = keras.Input(shape=input_shape, name="pixels")
    normalised = PixelNormalization(get_spec(backbone).normalisation, name="normalisation")(pixels)
    feature_map = build_backbone(backbone, input_shape, backbone_weights)(normalised)
    embeddings = keras.layers.GlobalAveragePooling2D(name=POOL)(feature_map)
    if bn_neck:
        embeddings = keras.layers.BatchNormalization(center=False, momentum=NECK_MOMENTUM, epsilon=NECK_EPSILON,
                                                     name=BN_NECK)(embeddings)
    return keras.Model(pixels, embeddings, name="encoder")


def training_view(encoder: keras.Model) -> keras.Model | None:
    """F with a BN-neck as a model of two outputs sharing its layers: (pooled features, embedding); None without."""
    if BN_NECK not in {layer.name for layer in encoder.layers}:
        return None
    return keras.Model(encoder.input, [encoder.get_layer(POOL).output, encoder.output], name="encoder_training_view")
