"""The exported computation: uint8 RGB pixels → F → L2-normalised embeddings, for images and for tracklets."""

from __future__ import annotations

from typing import Callable

import keras
import tensorflow as tf

from acan_tf.model.acan import ACAN

IMAGES = "images"
TRACKLETS = "tracklets"
EMBEDDINGS = "embeddings"
FEATURES = "features"
IMAGE_SIGNATURE = "serving_default"
TRACKLET_SIGNATURE = "embed_tracklets"
# tf.math.l2_normalize floors the squared norm; 1e-24 floors the norm at 1e-12, as evaluation's l2_normalize does.
NORM_EPSILON = 1e-24


def image_spec(height: int, width: int) -> tf.TensorSpec:
    """The input of serving_default and of the ONNX model: a batch of uint8 RGB images at the training size."""
    return tf.TensorSpec([None, height, width, 3], tf.uint8, name=IMAGES)


def tracklet_spec(height: int, width: int) -> tf.TensorSpec:
    """The input of embed_tracklets: N tracklets of T uint8 RGB frames each."""
    return tf.TensorSpec([None, None, height, width, 3], tf.uint8, name=TRACKLETS)


def l2_normalize(features: tf.Tensor) -> tf.Tensor:
    """Rows scaled to unit Euclidean norm."""
    return tf.math.l2_normalize(features, axis=-1, epsilon=NORM_EPSILON)


def embedding_function(acan: ACAN, with_features: bool = False) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """uint8 images [N, H, W, 3] or tracklets [N, T, H, W, 3] → {"embeddings": [N, D]} (+ "features", unnormalised)."""
    # ACAN.embed averages a tracklet's frame features before the normalisation, as evaluation does.
    size = acan.encoder.output_shape[-1]

    def embed(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        features = tf.ensure_shape(acan.embed(tf.cast(pixels, tf.float32), training=False), [None, size])
        outputs = {EMBEDDINGS: l2_normalize(features)}
        if with_features:
            outputs[FEATURES] = features
        return outputs

    return embed


def write_saved_model(acan: ACAN, height: int, width: int, path: str) -> None:
    """Writes F as a SavedModel with the serving_default (images) and embed_tracklets (tracklets) signatures."""
    archive = keras.export.ExportArchive()
    archive.track(acan.encoder)  # only F's variables: D and the optimizers stay out of the export
    embed = embedding_function(acan)
    archive.add_endpoint(IMAGE_SIGNATURE, embed, input_signature=[image_spec(height, width)])
    archive.add_endpoint(TRACKLET_SIGNATURE, embed, input_signature=[tracklet_spec(height, width)])
    archive.write_out(path, verbose=False)
