"""The per-camera identity heads of the intra-camera recipe (issue 18): what scores a feature against every camera's
camera-local identities, for `losses.per_camera_identity_loss`.

Both hold one row per camera-local id, camera after camera (`ids_per_camera`: N_c of each of D's camera classes):
- `PerCameraClassifier` (MATE): one bias-free linear softmax classifier per camera, trained by F's optimizer;
- `CameraMemory` (Precise-ICS): a memory of unit-norm class centres per camera, not trained but moved towards the
  batch's features after each step (momentum: the share a centre keeps), scored by cosine over a temperature (CCAFL).
"""

from __future__ import annotations

from typing import Sequence

from acan_tf import losses

import keras
import tensorflow as tf

from acan_tf.config import Config

# Bag of Tricks' classifier initialisation: small random weights, so that every id starts near equiprobable.
CLASSIFIER_STDDEV = 1e-3


class PerCameraClassifier(keras.layers.Layer):
    """MATE's per-camera classifiers as one bias-free linear layer: features [N, D] → scores [N, ΣN_c]."""

    def __init__(self, ids_per_camera: Sequence[int], feature_dim: int, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.ids_per_camera = tuple(int(n) for n in ids_per_camera)
        self.kernel = self.add_weight(
            shape=(feature_dim, sum(self.ids_per_camera)), name="kernel",
            initializer=keras.initializers.RandomNormal(stddev=CLASSIFIER_STDDEV),
        )

    def call(self, features: tf.Tensor) -> tf.Tensor:
        return tf.matmul(tf.cast(features, tf.float32), self.kernel)

    def update(self, features: tf.Tensor, local_ids: tf.Tensor, camids: tf.Tensor) -> None:
        """Nothing: the classifier learns through F's optimizer (a memory moves here)."""


class CameraMemory(keras.layers.Layer):
    """Precise-ICS's memory of class centres, [ΣN_c, D] (zeros until an id is first seen): features → cos / τ."""

    def __init__(self, ids_per_camera: Sequence[int], feature_dim: int, momentum: float, temperature: float,
                 **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.ids_per_camera = tuple(int(n) for n in ids_per_camera)
        self.momentum = float(momentum)
        self.temperature = float(temperature)
        # Not trainable: no optimizer (F's or D's) touches it; `update` moves it after F's step. Its aggregation is
        # "none", so under tf.distribute each replica moves it with its slice and the loop averages the replicas.
        self.centres = self.add_weight(shape=(sum(self.ids_per_camera), feature_dim), name="centres",
                                       initializer="zeros", trainable=False)

    def call(self, features: tf.Tensor) -> tf.Tensor:
        return losses.memory_scores(features, self.centres, self.temperature)

    def update(self, features: tf.Tensor, local_ids: tf.Tensor, camids: tf.Tensor) -> None:
        """c ← normalise(m·c + (1−m)·f̄) for every id in the batch, f̄ the mean of its unit-norm features in the batch.

        A centre still zero becomes its first batch mean's direction; the ids not in the batch keep their centre.
        """
        rows = losses.id_rows(local_ids, camids, self.ids_per_camera)
        unit = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=1)
        count = self.centres.shape[0]
        means = tf.math.unsorted_segment_mean(unit, rows, count)
        seen = tf.math.unsorted_segment_sum(tf.ones_like(rows, tf.float32), rows, count) > 0
        moved = tf.math.l2_normalize(self.momentum * self.centres + (1.0 - self.momentum) * means, axis=1)
        self.centres.assign(tf.where(seen[:, None], moved, self.centres))


def build_identity_head(config: Config, ids_per_camera: Sequence[int] | None,
                        feature_dim: int) -> PerCameraClassifier | CameraMemory | None:
    """The head of --intra_id_loss (None for none), sized by the training set's ids per camera."""
    if config.intra_id_loss == "none":
        return None
    if not ids_per_camera:
        raise ValueError(f"--intra_id_loss={config.intra_id_loss} needs the training set's ids per camera")
    if config.intra_id_loss == "classifier":
        return PerCameraClassifier(ids_per_camera, feature_dim, name="identity_classifier")
    return CameraMemory(ids_per_camera, feature_dim, config.memory_momentum, config.memory_temperature,
                        name="identity_memory")
