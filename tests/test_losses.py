"""Each loss of acan_tf.losses against a direct NumPy computation of the paper's equation."""

from acan_tf import losses

import numpy as np
import pytest
import tensorflow as tf


def numpy_batch_hard(embeddings, pids, camids, margin):
    """Eq. 11-12 by loops: hardest positive / negative inside the anchor's camera."""
    n = len(embeddings)
    dist = np.sqrt(((embeddings[:, None, :] - embeddings[None, :, :]) ** 2).sum(-1))
    values = []
    for a in range(n):
        pos = [dist[a, p] for p in range(n) if camids[p] == camids[a] and pids[p] == pids[a]]
        neg = [dist[a, q] for q in range(n) if camids[q] == camids[a] and pids[q] != pids[a]]
        if not neg:
            continue
        values.append(max(0.0, margin + max(pos) - min(neg)))
    return np.mean(values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_hard_triplet_matches_numpy_with_camera_mask(seed):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(24, 8)).astype(np.float32)
    pids = rng.integers(0, 4, size=24)
    camids = rng.integers(0, 3, size=24)
    got = losses.batch_hard_triplet_loss(embeddings, pids, camids, margin=0.5).numpy()
    np.testing.assert_allclose(got, numpy_batch_hard(embeddings, pids, camids, 0.5), rtol=1e-5, atol=1e-6)


def test_batch_hard_triplet_without_camids_is_one_camera():
    rng = np.random.default_rng(3)
    embeddings = rng.normal(size=(16, 5)).astype(np.float32)
    pids = np.repeat(np.arange(4), 4)
    got = losses.batch_hard_triplet_loss(embeddings, pids, margin=0.3).numpy()
    np.testing.assert_allclose(got, numpy_batch_hard(embeddings, pids, np.zeros(16), 0.3), rtol=1e-5)


def test_same_id_in_other_camera_is_not_a_positive():
    # Identity 0 in camera 0 and identity 0 in camera 1 are different people for training: a far
    # "same id" sample in another camera must not be mined as a hardest positive.
    embeddings = np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [50.0, 0.0], [50.1, 0.0], [51.0, 0.0]], np.float32)
    pids = np.array([0, 0, 1, 0, 0, 1])
    camids = np.array([0, 0, 0, 1, 1, 1])
    masked = losses.batch_hard_triplet_loss(embeddings, pids, camids, margin=0.3).numpy()
    unmasked = losses.batch_hard_triplet_loss(embeddings, pids, None, margin=0.3).numpy()
    np.testing.assert_allclose(masked, numpy_batch_hard(embeddings, pids, camids, 0.3), rtol=1e-6)
    assert unmasked > masked + 10


def test_triplet_gradient_is_finite_with_duplicate_embeddings():
    embeddings = tf.Variable(np.ones((8, 4), np.float32))
    with tf.GradientTape() as tape:
        loss = losses.batch_hard_triplet_loss(embeddings, np.repeat(np.arange(2), 4), margin=0.3)
    assert np.all(np.isfinite(tape.gradient(loss, embeddings).numpy()))


def log_softmax(logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_camera_cross_entropy_matches_numpy():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(10, 6)).astype(np.float32)
    camids = rng.integers(0, 6, size=10)
    expected = -np.mean(log_softmax(logits)[np.arange(10), camids])
    np.testing.assert_allclose(losses.camera_cross_entropy(logits, camids).numpy(), expected, rtol=1e-5)


def test_oce_matches_eq9():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(10, 6)).astype(np.float32)
    camids = rng.integers(0, 6, size=10)
    logp = log_softmax(logits)
    expected = np.mean([-(logp[i].sum() - logp[i, camids[i]]) / 5 for i in range(10)])
    np.testing.assert_allclose(losses.oce_loss(logits, camids).numpy(), expected, rtol=1e-5)


def test_ace_matches_eq4():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(10, 6)).astype(np.float32)
    np.testing.assert_allclose(losses.ace_loss(logits).numpy(), np.mean(-log_softmax(logits).mean(axis=1)), rtol=1e-5)


def test_oce_is_smallest_when_uniform_over_the_other_cameras():
    num_cameras, true_camera = 5, 2
    # Probabilities: 0 (almost) on the true camera and 1/(C-1) on every other one.
    optimum = np.full(num_cameras, np.log(1.0 / (num_cameras - 1)))
    optimum[true_camera] = -30.0
    best = losses.oce_loss(optimum[None].astype(np.float32), [true_camera]).numpy()
    np.testing.assert_allclose(best, np.log(num_cameras - 1), rtol=1e-4)
    rng = np.random.default_rng(7)
    for _ in range(50):
        other = rng.normal(scale=3.0, size=(1, num_cameras)).astype(np.float32)
        assert losses.oce_loss(other, [true_camera]).numpy() >= best - 1e-6
    uniform_all = np.zeros((1, num_cameras), np.float32)  # ACE's optimum is not OCE's
    assert losses.oce_loss(uniform_all, [true_camera]).numpy() > best + 0.1


def numpy_per_camera_identity_loss(scores, local_ids, camids, ids_per_camera):
    """L_ID per camera by loops: a softmax over the anchor's camera's slice of the scores, −log of its own id."""
    first = np.concatenate([[0], np.cumsum(ids_per_camera)[:-1]])
    values = []
    for row, local, camera in zip(scores.astype(np.float64), local_ids, camids):
        own = row[first[camera]:first[camera] + ids_per_camera[camera]]
        values.append(np.log(np.exp(own - own.max()).sum()) + own.max() - own[local])
    return np.mean(values)


@pytest.mark.parametrize("seed", [0, 1])
def test_per_camera_identity_loss_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    ids_per_camera = (3, 5, 2)
    camids = rng.integers(0, 3, size=12)
    local_ids = np.array([rng.integers(0, ids_per_camera[c]) for c in camids])
    scores = rng.normal(scale=3.0, size=(12, sum(ids_per_camera))).astype(np.float32)
    got = losses.per_camera_identity_loss(scores, local_ids, camids, ids_per_camera).numpy()
    np.testing.assert_allclose(got, numpy_per_camera_identity_loss(scores, local_ids, camids, ids_per_camera),
                               rtol=1e-5)


def test_per_camera_identity_loss_ignores_the_other_cameras_ids():
    # Camera-local ids of two cameras are never compared: another camera's scores change neither loss nor gradient.
    rng = np.random.default_rng(4)
    scores = tf.constant(rng.normal(size=(4, 7)).astype(np.float32))
    local_ids, camids, sizes = np.array([0, 2, 1, 0]), np.array([0, 0, 1, 1]), (3, 4)
    others = tf.constant(np.array([[0, 0, 0, 1, 1, 1, 1]] * 2 + [[1, 1, 1, 0, 0, 0, 0]] * 2, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(scores)
        loss = losses.per_camera_identity_loss(scores, local_ids, camids, sizes)
    shifted = losses.per_camera_identity_loss(scores + 100.0 * others, local_ids, camids, sizes)
    np.testing.assert_allclose(shifted.numpy(), loss.numpy(), rtol=1e-6)
    gradient = tape.gradient(loss, scores).numpy()
    assert np.all(np.isfinite(gradient)) and np.all(gradient[others.numpy() == 1] == 0.0)


def test_memory_scores_are_cosines_over_the_temperature():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(6, 4)).astype(np.float32) * 7.0
    centres = rng.normal(size=(5, 4)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    expected = (features / np.linalg.norm(features, axis=1, keepdims=True)) @ centres.T / 0.05
    np.testing.assert_allclose(losses.memory_scores(features, centres, 0.05).numpy(), expected, rtol=1e-5,
                               atol=1e-5)


def test_id_rows_number_every_cameras_ids_camera_after_camera():
    rows = losses.id_rows(np.array([0, 2, 0, 3, 1]), np.array([0, 0, 1, 1, 2]), (3, 4, 2)).numpy()
    np.testing.assert_array_equal(rows, [0, 2, 3, 6, 8])
