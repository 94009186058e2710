"""The paper's losses, each in one place: Eq. 11-12 (triplet), Eq. 1 (camera CE), Eq. 9 (OCE), Eq. 4 (ACE); and beyond
the paper, the cross-camera triplet loss of the association stage and the per-camera identity loss of the methods after
ACAN (MATE's per-camera classifiers, Precise-ICS's and CCAFL's memories of class centres).

Every function returns the mean over the examples it is given (a scalar); scaling for a global batch
under `tf.distribute` is the caller's job (see `acan_tf.model.acan`).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

# sqrt'(0) is infinite: the anchor-to-itself distance must not produce a NaN gradient.
_SQUARED_DISTANCE_FLOOR = 1e-12


def pairwise_euclidean(embeddings: tf.Tensor) -> tf.Tensor:
    """Euclidean distance between every pair of rows, [N, N]."""
    squared_norms = tf.reduce_sum(tf.square(embeddings), axis=1)
    squared = (
        squared_norms[:, None]
        - 2.0 * tf.matmul(embeddings, embeddings, transpose_b=True)
        + squared_norms[None, :]
    )
    return tf.sqrt(tf.maximum(squared, _SQUARED_DISTANCE_FLOOR))


def batch_hard_triplet_loss(
    embeddings: tf.Tensor, pids: tf.Tensor, camids: tf.Tensor | None = None, margin: float = 0.3
) -> tf.Tensor:
    """Batch-hard triplet loss (Eq. 11-12), triplets formed only inside each camera.

    Positives share the anchor's camera and id; negatives share its camera and have another id.
    With `camids=None` the whole batch is one camera. Anchors with no negative in their camera are
    left out of the mean; an anchor's hardest positive is at least itself (distance 0).
    """
    per_anchor, has_negative = _batch_hard_per_anchor(embeddings, pids, camids, margin)
    return tf.reduce_sum(per_anchor * has_negative) / tf.maximum(tf.reduce_sum(has_negative), 1.0)


def _batch_hard_per_anchor(
    embeddings: tf.Tensor, pids: tf.Tensor, camids: tf.Tensor | None, margin: float
) -> tuple[tf.Tensor, tf.Tensor]:
    """Each anchor's batch-hard term [N] and whether it has a negative (1.0 or 0.0) [N]."""
    embeddings = tf.convert_to_tensor(embeddings)
    distances = pairwise_euclidean(embeddings)
    pids = tf.reshape(pids, [-1])
    same_id = tf.equal(pids[:, None], pids[None, :])
    if camids is None:
        same_camera = tf.ones_like(same_id)
    else:
        camids = tf.reshape(camids, [-1])
        same_camera = tf.equal(camids[:, None], camids[None, :])
    positive = tf.logical_and(same_camera, same_id)
    negative = tf.logical_and(same_camera, tf.logical_not(same_id))

    hardest_positive = tf.reduce_max(tf.where(positive, distances, tf.zeros_like(distances)), axis=1)
    largest = tf.reduce_max(distances) + 1.0
    hardest_negative = tf.reduce_min(tf.where(negative, distances, largest), axis=1)
    per_anchor = tf.nn.relu(margin + hardest_positive - hardest_negative)

    return per_anchor, tf.cast(tf.reduce_any(negative, axis=1), per_anchor.dtype)


def cross_camera_triplet_loss(
    embeddings: tf.Tensor, pseudo_ids: tf.Tensor, margin: float = 0.3, weights: tf.Tensor | None = None
) -> tf.Tensor:
    """Batch-hard triplet loss over cross-camera pseudo-identities, without the camera restriction of Eq. 11-12;
    with `weights` [N] (each anchor's link confidence), the weighted mean sum_a w_a l_a / sum_a w_a (0 if all are 0)."""
    if weights is None:
        return batch_hard_triplet_loss(embeddings, pseudo_ids, None, margin)
    per_anchor, has_negative = _batch_hard_per_anchor(embeddings, pseudo_ids, None, margin)
    weights = tf.reshape(tf.cast(weights, per_anchor.dtype), [-1]) * has_negative
    return tf.math.divide_no_nan(tf.reduce_sum(per_anchor * weights), tf.reduce_sum(weights))


def camera_cross_entropy(logits: tf.Tensor, camids: tf.Tensor) -> tf.Tensor:
    """L_MCAL-D (Eq. 1): cross-entropy of the discriminator's logits against the true camera."""
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.reshape(camids, [-1]), logits=logits)
    return tf.reduce_mean(losses)


def oce_loss(logits: tf.Tensor, camids: tf.Tensor) -> tf.Tensor:
    """L_OCE (Eq. 9): −1/(C−1) Σ_{i≠z} log D_i(F(x)), "other camera equiprobability"."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    num_cameras = tf.shape(logits)[-1]
    others = 1.0 - tf.one_hot(tf.reshape(camids, [-1]), num_cameras, dtype=log_probs.dtype)
    per_image = -tf.reduce_sum(log_probs * others, axis=-1) / tf.cast(num_cameras - 1, log_probs.dtype)
    return tf.reduce_mean(per_image)


def ace_loss(logits: tf.Tensor) -> tf.Tensor:
    """L_ACE (Eq. 4, Table VI): −1/C Σ_i log D_i(F(x)), "all camera equiprobability"."""
    log_probs = tf.nn.log_softmax(logits, axis=-1)
    return tf.reduce_mean(-tf.reduce_mean(log_probs, axis=-1))


def per_camera_identity_loss(
    scores: tf.Tensor, local_ids: tf.Tensor, camids: tf.Tensor, ids_per_camera: Sequence[int]
) -> tf.Tensor:
    """L_ID per camera (MATE; Precise-ICS's intra-camera loss): softmax cross-entropy over the anchor's camera's ids.

    `scores` [N, ΣN_c] score every camera-local id of every camera, camera after camera (`ids_per_camera` gives N_c);
    a row's softmax runs over its own camera's N_c ids only, so no two cameras' ids are ever compared.
    """
    sizes = tf.constant(list(ids_per_camera), tf.int32)
    camera_of_id = tf.repeat(tf.range(tf.size(sizes)), sizes)
    camids = tf.cast(tf.reshape(camids, [-1]), tf.int32)
    labels = id_rows(local_ids, camids, ids_per_camera)
    own_camera = tf.equal(camera_of_id[None, :], camids[:, None])
    # A finite "minus infinity": exp() of it is 0, and 0 × it (in the gradient) is not NaN.
    masked = tf.where(own_camera, scores, tf.fill(tf.shape(scores), tf.constant(-1e9, scores.dtype)))
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=masked))


def id_rows(local_ids: tf.Tensor, camids: tf.Tensor, ids_per_camera: Sequence[int]) -> tf.Tensor:
    """The row of each (camera class, camera-local id) among every camera's ids, camera after camera."""
    first_ids = tf.cumsum(tf.constant(list(ids_per_camera), tf.int32), exclusive=True)
    camids = tf.cast(tf.reshape(camids, [-1]), tf.int32)
    return tf.gather(first_ids, camids) + tf.cast(tf.reshape(local_ids, [-1]), tf.int32)


def memory_scores(features: tf.Tensor, centres: tf.Tensor, temperature: float) -> tf.Tensor:
    """The non-parametric classifier's scores (Precise-ICS, CCAFL): cos(f, c_j) / τ for every centre c_j, [N, M]."""
    unit = tf.math.l2_normalize(tf.cast(features, tf.float32), axis=1)
    return tf.matmul(unit, centres, transpose_b=True) / temperature
