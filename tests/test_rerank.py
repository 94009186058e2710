"""Tests of k-reciprocal re-ranking against a direct loop implementation of the paper's steps."""

import numpy as np
import pytest

from acan_tf.evaluation import rerank
from acan_tf.evaluation.rerank import jaccard_blocks, re_ranking


def loop_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value):
    """Every step of the reference implementation written as plain loops over samples and sets."""
    num_query = len(q_q_dist)
    original, v = loop_encoding(np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]]), k1, k2)
    n = len(original)
    final = np.zeros((num_query, n - num_query))
    for i in range(num_query):
        for g in range(n - num_query):
            j = num_query + g
            jaccard = 1 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum()
            final[i, g] = jaccard * (1 - lambda_value) + original[i, j] * lambda_value
    return final


def loop_jaccard(dist, k1, k2):
    """The Jaccard distance (steps 1-5) among one set of samples, with loops."""
    _, v = loop_encoding(dist, k1, k2)
    n = len(v)
    return np.array([[1 - np.minimum(v[i], v[j]).sum() / np.maximum(v[i], v[j]).sum() for j in range(n)]
                     for i in range(n)])


def loop_encoding(dist, k1, k2):
    """(original distance, V after query expansion) of the samples of the full distance matrix `dist`."""
    full = np.asarray(dist, dtype=np.float64) ** 2
    n = len(full)
    # original[i, j] = full[j, i] / max_m full[m, i]
    original = np.array([[full[j, i] / full[:, i].max() for j in range(n)] for i in range(n)])
    rank = [sorted(range(n), key=lambda j: (original[i, j], j)) for i in range(n)]

    def reciprocal(i, k):
        return {j for j in rank[i][: k + 1] if i in rank[j][: k + 1]}

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r_i = reciprocal(i, k1)
        expanded = set(r_i)
        for candidate in r_i:
            r_c = reciprocal(candidate, half)
            if len(r_c & r_i) > 2 / 3 * len(r_c):
                expanded |= r_c
        for j in expanded:
            v[i, j] = np.exp(-original[i, j])
        v[i] /= v[i].sum()
    if k2 > 1:
        v = np.array([np.mean([v[j] for j in rank[i][:k2]], axis=0) for i in range(n)])
    return original, v


def split(dist, num_query):
    return dist[:num_query, num_query:], dist[:num_query, :num_query], dist[num_query:, num_query:]


@pytest.mark.parametrize(
    "num_query, num_gallery, k1, k2, lambda_value",
    [(4, 20, 6, 3, 0.3), (3, 12, 4, 1, 0.5), (5, 9, 20, 6, 0.0), (1, 6, 2, 9, 1.0)],
)
def test_matches_loop_implementation(num_query, num_gallery, k1, k2, lambda_value):
    rng = np.random.default_rng(k1 * 10 + k2)
    points = rng.standard_normal((num_query + num_gallery, 3))
    dist = np.sqrt(((points[:, None] - points[None]) ** 2).sum(axis=2))
    result = re_ranking(*split(dist, num_query), k1=k1, k2=k2, lambda_value=lambda_value)
    assert result.dtype == np.float32 and result.shape == (num_query, num_gallery)
    expected = loop_re_ranking(*split(dist, num_query), k1, k2, lambda_value)
    np.testing.assert_allclose(result, expected, atol=2e-6)


def test_matches_loop_implementation_with_tied_distances(monkeypatch):
    monkeypatch.setattr(rerank, "_BLOCK_ELEMENTS", 50)  # several row blocks
    rng = np.random.default_rng(3)
    upper = np.triu(rng.integers(1, 4, (18, 18)), 1).astype(float)
    dist = upper + upper.T
    result = re_ranking(*split(dist, 5), k1=5, k2=3, lambda_value=0.3)
    np.testing.assert_allclose(result, loop_re_ranking(*split(dist, 5), 5, 3, 0.3), atol=2e-6)


@pytest.mark.parametrize(
    "shapes, kwargs, message",
    [
        (((2, 3), (2, 2), (4, 4)), {}, r"g_g_dist \(3, 3\)"),
        (((2, 3), (2, 2), (3,)), {}, "g_g_dist must be 2-D"),
        (((2, 3), (2, 2), (3, 3)), {"k1": 0}, "k1 must be a positive integer"),
        (((2, 3), (2, 2), (3, 3)), {"lambda_value": 1.5}, r"lambda_value must be in \[0, 1\]"),
        (((2, 3), (2, 2), (3, 3)), {"max_samples": 4}, "above max_samples=4"),
    ],
)
def test_rejects_bad_input(shapes, kwargs, message):
    with pytest.raises(ValueError, match=message):
        re_ranking(*(np.ones(shape) for shape in shapes), **kwargs)


def test_rejects_nan_distances():
    q_g = np.ones((2, 3))
    q_g[1, 2] = np.nan
    with pytest.raises(ValueError, match="q_g_dist contains NaN or Inf"):
        re_ranking(q_g, np.ones((2, 2)), np.ones((3, 3)))


def unit_rows(rng, n, dim=4):
    points = rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("n, k1, k2", [(14, 4, 3), (9, 20, 6), (12, 3, 1)])
def test_jaccard_among_one_set_matches_loop_implementation(n, k1, k2, monkeypatch):
    monkeypatch.setattr(rerank, "_BLOCK_ELEMENTS", 30)  # several row blocks
    features = unit_rows(np.random.default_rng(n + k1), n)
    blocks = list(jaccard_blocks(features, k1, k2))
    assert len(blocks) > 1 and [start for start, _ in blocks] == sorted({start for start, _ in blocks})
    result = np.concatenate([block for _, block in blocks])
    assert result.dtype == np.float32 and result.shape == (n, n)
    dist = np.sqrt(np.maximum(2 - 2 * features.astype(np.float64) @ features.T, 0))
    np.testing.assert_allclose(result, loop_jaccard(dist, k1, k2), atol=2e-6)
    np.testing.assert_allclose(np.diag(result), 0, atol=1e-6)


def test_jaccard_among_one_set_refuses_too_many_samples_and_bad_input():
    with pytest.raises(ValueError, match=r"10 samples need a 10² float32 matrix .*above max_samples=9"):
        next(jaccard_blocks(unit_rows(np.random.default_rng(0), 10), max_samples=9))
    with pytest.raises(ValueError, match="k2 must be a positive integer"):
        next(jaccard_blocks(unit_rows(np.random.default_rng(0), 10), k2=0))
    with pytest.raises(ValueError, match="features: expected a 2-D array of at least 2 rows"):
        next(jaccard_blocks(np.ones(3, dtype=np.float32)))
