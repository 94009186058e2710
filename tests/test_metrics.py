"""Tests of the Re-ID metrics: hand-worked cases, a direct torchreid-style reference, chunked features."""

import numpy as np
import pytest

from acan_tf.evaluation import metrics
from acan_tf.evaluation.metrics import evaluate, evaluate_features, pairwise_distance


def reference_evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """torchreid's eval_market1501 written out directly, with a stable sort for ties."""
    max_rank = min(max_rank, distmat.shape[1])
    order = np.argsort(distmat, axis=1, kind="stable")
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(len(distmat)):
        ranked_pids, ranked_cams = g_pids[order[q]], g_camids[order[q]]
        keep = ~((ranked_pids == q_pids[q]) & (ranked_cams == q_camids[q]))
        raw_cmc = (ranked_pids[keep] == q_pids[q]).astype(np.int64)
        if not raw_cmc.any():
            continue
        hits = raw_cmc.cumsum()
        last = np.flatnonzero(raw_cmc).max()
        all_inp.append(hits[last] / (last + 1.0))
        # Fewer kept entries than max_rank: the query has matched by then, so its CMC stays 1.
        cmc = np.ones(max_rank)
        cmc[: min(max_rank, len(hits))] = np.minimum(hits, 1)[:max_rank]
        all_cmc.append(cmc)
        precision = hits / np.arange(1, len(hits) + 1)
        all_ap.append((precision * raw_cmc).sum() / raw_cmc.sum())
    if not all_ap:
        return {"num_valid_queries": 0}
    return {
        "mAP": np.mean(all_ap),
        "cmc": np.mean(all_cmc, axis=0),
        "mINP": np.mean(all_inp),
        "num_valid_queries": len(all_ap),
        "num_skipped_queries": len(distmat) - len(all_ap),
    }


def assert_same_metrics(result, expected):
    assert result["num_valid_queries"] == expected["num_valid_queries"]
    assert result["num_skipped_queries"] == expected["num_skipped_queries"]
    assert result["mAP"] == pytest.approx(expected["mAP"], abs=1e-12)
    assert result["mINP"] == pytest.approx(expected["mINP"], abs=1e-12)
    np.testing.assert_allclose(result["cmc"], expected["cmc"], atol=1e-12)


def random_case(rng, num_query, num_gallery, num_pids, num_cams, max_distance):
    """Random ids and integer-valued distances, so ties and skipped queries are frequent."""
    return (
        rng.integers(0, max_distance + 1, (num_query, num_gallery)).astype(np.float32),
        rng.integers(0, num_pids, num_query),
        rng.integers(0, num_pids, num_gallery),
        rng.integers(0, num_cams, num_query),
        rng.integers(0, num_cams, num_gallery),
    )


# Gallery: pid 1 cam 0 | pid 2 cam 1 | pid 1 cam 1 | pid 1 cam 2 | pid 3 cam 0
HAND_G_PIDS = np.array([1, 2, 1, 1, 3])
HAND_G_CAMS = np.array([0, 1, 1, 2, 0])


def test_hand_worked_case():
    distmat = np.array(
        [
            # pid 1 cam 0: entry 0 is ignored (same camera); kept order 1, 2*, 4, 3* -> ranks 2, 4.
            [0.1, 0.2, 0.3, 0.5, 0.4],
            # pid 4: not in the gallery -> skipped.
            [0.1, 0.2, 0.3, 0.4, 0.5],
            # pid 3 cam 1: all tied, gallery order puts its match (entry 4) at rank 5.
            [0.3, 0.3, 0.3, 0.3, 0.3],
        ]
    )
    result = evaluate(distmat, np.array([1, 4, 3]), HAND_G_PIDS, np.array([0, 0, 1]), HAND_G_CAMS)
    assert result["num_valid_queries"] == 2
    assert result["num_skipped_queries"] == 1
    assert result["mAP"] == pytest.approx(((1 / 2 + 2 / 4) / 2 + 1 / 5) / 2)
    assert result["mINP"] == pytest.approx((2 / 4 + 1 / 5) / 2)
    # max_rank=50 is clipped to the 5 gallery entries.
    np.testing.assert_allclose(result["cmc"], [0, 0.5, 0.5, 0.5, 1])


def test_ties_broken_by_gallery_order():
    # Entry 0 is the query's own camera and ignored. Kept order: 3* (0.0), then the tie at 0.1 in
    # gallery order 1, 2*, 4, so the matches (3 and 2) rank 1 and 3.
    distmat = np.array([[0.2, 0.1, 0.1, 0.0, 0.1]])
    result = evaluate(distmat, np.array([1]), HAND_G_PIDS, np.array([0]), HAND_G_CAMS, max_rank=3)
    assert result["mAP"] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert result["mINP"] == pytest.approx(2 / 3)
    np.testing.assert_allclose(result["cmc"], [1, 1, 1])


@pytest.mark.parametrize("block_elements", [1, 7, 64, 2**20])
def test_matches_reference_on_random_cases_with_ties(monkeypatch, block_elements):
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(block_elements)
    for _ in range(25):
        case = random_case(
            rng,
            num_query=int(rng.integers(1, 30)),
            num_gallery=int(rng.integers(1, 60)),
            num_pids=int(rng.integers(1, 8)),
            num_cams=int(rng.integers(2, 9)),
            max_distance=int(rng.integers(0, 6)),
        )
        max_rank = int(rng.integers(1, 70))
        expected = reference_evaluate(*case, max_rank=max_rank)
        if expected["num_valid_queries"] == 0:
            with pytest.raises(ValueError, match="no query has a cross-camera match"):
                evaluate(*case, max_rank=max_rank)
        else:
            assert_same_metrics(evaluate(*case, max_rank=max_rank), expected)


def test_matches_reference_on_float_distances_with_skips():
    rng = np.random.default_rng(0)
    distmat, q_pids, g_pids, q_cams, g_cams = random_case(rng, 40, 300, 30, 6, 1)
    distmat = rng.random(distmat.shape)
    result = evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    assert len(result["cmc"]) == 20
    assert_same_metrics(result, reference_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=20))


def reference_ranks(distmat, q_pids, g_pids, q_camids, g_camids):
    """(query, rank) of every true match, from a stable argsort of each row with the ignored entries removed."""
    queries, ranks = [], []
    for q in range(len(distmat)):
        order = np.argsort(distmat[q], kind="stable")
        kept = order[~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))]
        positions = np.flatnonzero(g_pids[kept] == q_pids[q]) + 1
        queries.append(np.full(len(positions), q))
        ranks.append(positions)
    return np.concatenate(queries), np.concatenate(ranks)


def ranker_ranks(distmat, *ids, squared=False):
    """(query, rank) of every true match as the ranker computes them, block by block (from squared distances
    if `squared`)."""
    ranker = metrics._MatchRanker(*ids)
    rows = metrics._block_rows(distmat.shape[1])
    for start in range(0, len(distmat), rows):
        ranker.add_block(start, np.ascontiguousarray(distmat[start : start + rows]), "distmat", squared)
    return ranker.ranked()


def special_values(dtype):
    """Distances with -0.0 beside +0.0 (equal, so tied), negatives, subnormals and the largest finite value."""
    info = np.finfo(dtype)
    return np.array([-3.5, -info.tiny, -0.0, 0.0, info.smallest_subnormal, info.tiny, 0.25, 1.0, info.max], dtype)


def random_cases(rng, values, count=10):
    """Up to `count` small query x gallery matrices drawn from `values`, with ids that give some query a match."""
    for _ in range(count):
        num_query, num_gallery = int(rng.integers(1, 25)), int(rng.integers(2, 120))
        matrix = rng.choice(values, (num_query, num_gallery))
        ids = (
            rng.integers(0, 4, num_query),
            rng.integers(0, 5, num_gallery),
            rng.integers(0, 3, num_query),
            rng.integers(0, 3, num_gallery),
        )
        if np.any((ids[0][:, None] == ids[1]) & (ids[2][:, None] != ids[3])):
            yield matrix, ids


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("block_elements", [1, 50, 2**20])
def test_ranks_equal_stable_argsort_with_ties_and_special_values(monkeypatch, dtype, block_elements):
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    for distmat, ids in random_cases(np.random.default_rng(block_elements), special_values(dtype)):
        np.testing.assert_array_equal(ranker_ranks(distmat, *ids), reference_ranks(distmat, *ids))


def test_float64_distances_equal_in_float32_are_ranked_exactly():
    # Values 1 + k * 1e-12 all round to the float32 1.0, so the float32 keys tie them; the exact
    # order must come from the float64 values (and the gallery index for the true ties among them).
    rng = np.random.default_rng(5)
    distmat = 1 + rng.integers(0, 6, (30, 400)) * 1e-12
    assert np.all(distmat.astype(np.float32) == 1) and len(np.unique(distmat)) == 6
    distmat[:, ::7] = rng.choice([0.5, 2.0, 1e300, 2e300], (30, len(range(0, 400, 7))))
    ids = (rng.integers(0, 8, 30), rng.integers(0, 8, 400), rng.integers(0, 4, 30), rng.integers(0, 4, 400))
    np.testing.assert_array_equal(ranker_ranks(distmat, *ids), reference_ranks(distmat, *ids))
    assert_same_metrics(evaluate(distmat, *ids), reference_evaluate(distmat, *ids))


@pytest.mark.parametrize("block_elements", [100, 2**20])
def test_ranks_equal_stable_argsort_on_a_larger_split(monkeypatch, block_elements):
    # Many identities, 6 cameras, integer distances in a small range: every row has long runs of ties,
    # ignored same-camera entries among them, and some queries have no cross-camera match.
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    rng = np.random.default_rng(11)
    distmat = rng.integers(0, 40, (120, 900)).astype(np.float32)
    ids = (rng.integers(0, 60, 120), rng.integers(0, 50, 900), rng.integers(0, 6, 120), rng.integers(0, 6, 900))
    expected = reference_evaluate(distmat, *ids)
    assert 0 < expected["num_skipped_queries"] < 120
    np.testing.assert_array_equal(ranker_ranks(distmat, *ids), reference_ranks(distmat, *ids))
    assert_same_metrics(evaluate(distmat, *ids), expected)


def root_of(squared):
    """Euclidean distances from squared ones as evaluate_features computed them before it ranked squares."""
    return np.sqrt(np.maximum(squared, 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_squared_bound_is_the_largest_square_rooting_below_each_distance(dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(2)
    distances = np.concatenate(
        [
            [0.0, info.smallest_subnormal, info.tiny, 1.0, np.sqrt(info.max), info.max, -np.inf],
            rng.random(200) * 10.0 ** rng.integers(-20, 20, 200),
        ]
    ).astype(dtype)
    bound = metrics._squared_bound(distances)
    finite = np.isfinite(distances)
    assert bound.dtype == dtype and np.all(bound[~finite] == -np.inf)
    assert np.all(root_of(bound[finite]) <= distances[finite])
    with np.errstate(over="ignore"):  # the float after the largest is inf
        assert np.all(root_of(np.nextafter(bound[finite], np.inf)) > distances[finite])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_elements", [1, 50, 2**20])
def test_ranks_of_squared_distances_equal_those_of_their_roots(monkeypatch, dtype, block_elements):
    # Runs of consecutive floats share one square root, so ranking the squares alone would break these ties;
    # negatives (rounding) and -0.0 root to 0, tied with 0 and the subnormals' roots come after it.
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    info = np.finfo(dtype)
    runs = [np.nextafter(np.full(4, value, dtype), np.inf) for value in (1.0, 2.0, 1e6)]
    for run in runs:
        for k in range(1, 4):
            run[k:] = np.nextafter(run[k:], np.inf)
    values = np.concatenate(
        [[-1e-3, -info.tiny, -0.0, 0.0, info.smallest_subnormal, info.tiny, 0.5, info.max], *runs]
    ).astype(dtype)
    assert len(np.unique(root_of(values))) < len(np.unique(values)) - 3
    for squared, ids in random_cases(np.random.default_rng(block_elements), values):
        expected = reference_ranks(root_of(squared), *ids)
        np.testing.assert_array_equal(ranker_ranks(squared, *ids, squared=True), expected)


def test_features_path_equals_the_former_distance_formula_bit_for_bit():
    # Before ranking squared distances, evaluate_features ranked these distances, computed over the whole
    # product. Duplicated gallery rows and queries copied from the gallery give exact ties and distances
    # of 0 that rounding leaves slightly negative when squared.
    rng = np.random.default_rng(8)
    g_feats = rng.standard_normal((300, 64)).astype(np.float32)
    g_feats[::7] = g_feats[1::7][: len(g_feats[::7])]
    q_feats = np.concatenate([g_feats[:10], rng.standard_normal((30, 64)).astype(np.float32)])
    ids = (rng.integers(0, 12, 40), rng.integers(0, 12, 300), rng.integers(0, 3, 40), rng.integers(0, 3, 300))
    former = q_feats @ g_feats.T
    former *= -2
    former += np.einsum("ij,ij->i", q_feats, q_feats)[:, None]
    former += np.einsum("ij,ij->i", g_feats, g_feats)[None, :]
    assert np.any(former < 0)
    former = root_of(former)
    np.testing.assert_array_equal(pairwise_distance(q_feats, g_feats).view(np.uint32), former.view(np.uint32))
    result, expected = evaluate_features(q_feats, g_feats, *ids), evaluate(former, *ids)
    assert result.keys() == expected.keys()
    for key in result:
        np.testing.assert_array_equal(result[key], expected[key])


def test_pairwise_distance_matches_direct_computation():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((9, 5))
    direct = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))
    np.testing.assert_allclose(pairwise_distance(a, b), direct, atol=1e-6)
    unit_a = a / np.linalg.norm(a, axis=1, keepdims=True)
    unit_b = b / np.linalg.norm(b, axis=1, keepdims=True)
    np.testing.assert_allclose(pairwise_distance(a, b, "cosine"), 1 - unit_a @ unit_b.T, atol=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk_size", [1, 3, 16, None])
def test_evaluate_features_equals_dense_evaluate(monkeypatch, metric, chunk_size):
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 100)
    rng = np.random.default_rng(7)
    # Four entries of +-1 in 6 dimensions: every row has norm 2, so products are exact before and
    # after normalising, chunking (which may change the BLAS kernel) cannot change a distance,
    # and ties abound.
    q_feats, g_feats = (
        rng.permuted(np.repeat([[1, 1, 1, 1, 0, 0]], n, axis=0) * rng.choice([-1, 1], (n, 6)), axis=1)
        .astype(np.float32)
        for n in (20, 90)
    )
    ids = (rng.integers(0, 10, 20), rng.integers(0, 10, 90), rng.integers(0, 4, 20), rng.integers(0, 4, 90))
    chunked = evaluate_features(q_feats, g_feats, *ids, metric=metric, max_rank=10, chunk_size=chunk_size)
    dense = pairwise_distance(q_feats, g_feats, metric)
    assert_same_metrics(chunked, evaluate(dense, *ids, max_rank=10))
    assert_same_metrics(chunked, reference_evaluate(dense, *ids, max_rank=10))


def test_default_chunk_is_bounded(monkeypatch):
    monkeypatch.setattr(metrics, "_CHUNK_BYTES", 4 * 50 * 3)  # three float32 rows of 50
    seen = []
    real_from_product = metrics._from_product

    def recording_from_product(product, *args):
        seen.append(product.shape)  # a chunk's product, in one block of rows (a block holds 2**20 distances)
        return real_from_product(product, *args)

    monkeypatch.setattr(metrics, "_from_product", recording_from_product)
    rng = np.random.default_rng(3)
    evaluate_features(
        rng.standard_normal((10, 4)).astype(np.float32),
        rng.standard_normal((50, 4)).astype(np.float32),
        np.arange(10) % 5, np.arange(50) % 5, np.zeros(10, int), np.ones(50, int),
    )
    assert seen == [(3, 50), (3, 50), (3, 50), (1, 50)]


def test_threads_give_the_results_of_one_thread(monkeypatch):
    # Blocks of 2 queries ranked on 3 threads finish in any order; the results must not depend on it.
    monkeypatch.setattr(metrics, "_THREADED_ELEMENTS", 0)
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 2 * 200)
    rng = np.random.default_rng(4)
    q_feats = rng.integers(-2, 3, (61, 8)).astype(np.float32)
    g_feats = rng.integers(-2, 3, (200, 8)).astype(np.float32)
    ids = (rng.integers(0, 20, 61), rng.integers(0, 20, 200), rng.integers(0, 4, 61), rng.integers(0, 4, 200))
    expected = reference_evaluate(pairwise_distance(q_feats, g_feats), *ids)
    assert_same_metrics(evaluate_features(q_feats, g_feats, *ids, threads=3, chunk_size=25), expected)
    assert_same_metrics(evaluate(pairwise_distance(q_feats, g_feats), *ids, threads=3), expected)
    distmat = pairwise_distance(q_feats, g_feats)
    distmat[[3, 40], [7, 9]] = np.nan  # the first failing block, in query order, is reported
    with pytest.raises(ValueError, match=r"NaN or Inf \(query 3, gallery 7\)"):
        evaluate(distmat, *ids, threads=3)


IDS = (np.array([1, 2]), np.array([1, 2, 3]), np.array([0, 0]), np.array([1, 1, 1]))


@pytest.mark.parametrize(
    "distmat, ids, message",
    [
        (np.zeros((2, 3)), (np.array([1, 2, 3]),) + IDS[1:], "q_pids has length 3 but distmat has 2 queries"),
        (np.zeros((2, 3)), IDS[:3] + (np.array([1, 1]),), "g_camids has length 2 but distmat has 3 gallery"),
        (np.zeros((2, 3, 1)), IDS, "distmat must be 2-D"),
        (np.zeros((0, 3)), (np.array([], int),) + IDS[1:2] + (np.array([], int),) + IDS[3:], "empty input"),
        (np.array([[0, np.nan, 0], [0, 0, 0]]), IDS, r"NaN or Inf \(query 0, gallery 1\)"),
        (np.array([[0, 0, 0], [0, 0, -np.inf]]), IDS, r"NaN or Inf \(query 1, gallery 2\)"),
        (np.zeros((2, 3)), IDS[:1] + (np.array([5, 6, 7]),) + IDS[2:], "no query has a cross-camera match"),
    ],
)
def test_evaluate_rejects_bad_input(distmat, ids, message):
    with pytest.raises(ValueError, match=message):
        evaluate(distmat, *ids)


@pytest.mark.parametrize(
    "q_feats, g_feats, kwargs, message",
    [
        (np.zeros((2, 4)), np.zeros((3, 5)), {}, "different feature dimensions: 4 and 5"),
        (np.zeros((2, 4)), np.zeros((4, 4)), {}, "g_pids has length 3 but q_feats/g_feats has 4 gallery"),
        (np.zeros((2, 4)), np.full((3, 4), np.inf), {}, "g_feats contains NaN or Inf"),
        (np.zeros(4), np.zeros((3, 4)), {}, "q_feats must be 2-D"),
        (np.zeros((0, 4)), np.zeros((3, 4)), {}, "q_feats is empty"),
        (np.zeros((2, 4)), np.ones((3, 4)), {"metric": "cosine"}, "q_feats has all-zero rows"),
        (np.zeros((2, 4)), np.ones((3, 4)), {"metric": "manhattan"}, "metric must be one of"),
        (np.zeros((2, 4)), np.ones((3, 4)), {"chunk_size": 0}, "chunk_size must be a positive integer"),
        (np.zeros((2, 4)), np.ones((3, 4)), {"max_rank": 0}, "max_rank must be a positive integer"),
        (np.zeros((2, 4)), np.ones((3, 4)), {"threads": 0}, "threads must be a positive integer"),
    ],
)
def test_evaluate_features_rejects_bad_input(q_feats, g_feats, kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate_features(q_feats, g_feats, *IDS, **kwargs)
