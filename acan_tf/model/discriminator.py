"""D, the camera discriminator: a fully connected layer of width 128 (IV-A) and a C-way classifier."""

from __future__ import annotations

import keras


def build_discriminator(feature_dim: int, num_cameras: int, width: int = 128) -> keras.Model:
    """D: features [N, feature_dim] → camera logits [N, C]."""
    features = keras.Input(shape=(feature_dim,), name="features")
    hidden = keras.layers.Dense(width, activation="relu", name="hidden")(features)
    logits = keras.layers.Dense(num_cameras, name="camera_logits")(hidden)
    return keras.Model(features, logits, name="discriminator")
