"""Tests of the cross-camera association: proxies, chunked mutual-neighbour links, components and their quality."""

import itertools

import numpy as np
import pytest

from acan_tf.training.association import (
    Association,
    Proxies,
    associate,
    association_quality,
    budget_links,
    build_proxies,
    component_statistics,
    jaccard_similarities,
    link_margins,
    merge_components,
    mutual_neighbour_links,
    proxy_confidences,
    proxy_global_ids,
)
from tests.test_rerank import loop_jaccard


def random_items(rng, num_items=80, num_cameras=3, ids_per_camera=6, dim=8):
    """Random features with camera and camera-local id labels, every (camera, id) present."""
    cameras = np.repeat(np.arange(num_cameras), ids_per_camera)
    local_ids = np.tile(np.arange(ids_per_camera), num_cameras)
    extra = rng.integers(0, num_cameras * ids_per_camera, num_items - len(cameras))
    cameras, local_ids = np.r_[cameras, cameras[extra]], np.r_[local_ids, local_ids[extra]]
    order = rng.permutation(num_items)
    return rng.standard_normal((num_items, dim)).astype(np.float32), cameras[order], local_ids[order]


def random_proxies(rng, cameras, dim=16):
    """Unit-norm random proxies of the given (sorted) cameras."""
    features = rng.standard_normal((len(cameras), dim))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    return Proxies(features.astype(np.float32), np.asarray(cameras), np.arange(len(cameras)))


def brute_force_links(proxies, threshold):
    """Mutual nearest neighbours of every camera pair from the full similarity matrix, as {(i, j): similarity}."""
    similarity = proxies.features @ proxies.features.T
    links = {}
    for a, b in itertools.combinations(np.unique(proxies.cameras), 2):
        in_a, in_b = np.flatnonzero(proxies.cameras == a), np.flatnonzero(proxies.cameras == b)
        for i in in_a:
            j = in_b[np.argmax(similarity[i, in_b])]
            if in_a[np.argmax(similarity[j, in_a])] == i and similarity[i, j] >= threshold:
                links[(min(i, j), max(i, j))] = similarity[i, j]
    return links


def test_proxies_are_normalised_means_centred_per_camera():
    rng = np.random.default_rng(0)
    features, cameras, local_ids = random_items(rng)
    plain = build_proxies(features, cameras, local_ids, centre_per_camera=False)
    centred = build_proxies(features, cameras, local_ids)
    expected_keys = sorted(set(zip(cameras.tolist(), local_ids.tolist())))
    assert list(zip(plain.cameras.tolist(), plain.local_ids.tolist())) == expected_keys
    means = np.array([features[(cameras == c) & (local_ids == i)].mean(axis=0) for c, i in expected_keys])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(plain.features, means, atol=1e-6)
    expected_centred = means.copy()
    for camera in np.unique(cameras):
        rows = plain.cameras == camera
        expected_centred[rows] -= means[rows].mean(axis=0)
    expected_centred /= np.linalg.norm(expected_centred, axis=1, keepdims=True)
    np.testing.assert_allclose(centred.features, expected_centred, atol=1e-5)
    assert centred.features.dtype == np.float32
    index = centred.index_of(cameras, local_ids)
    np.testing.assert_array_equal(centred.cameras[index], cameras)
    np.testing.assert_array_equal(centred.local_ids[index], local_ids)
    with pytest.raises(ValueError, match="camera 0, local id 99"):
        centred.index_of(np.array([0]), np.array([99]))


def test_links_match_brute_force_with_chunks_smaller_than_the_proxies():
    rng = np.random.default_rng(1)
    proxies = random_proxies(rng, np.repeat([0, 1, 2, 3], [9, 14, 6, 11]))
    expected = brute_force_links(proxies, threshold=-1.0)
    assert len(expected) >= 10
    for chunk_size in (1, 7, 1000):
        links, similarities = mutual_neighbour_links(proxies, threshold=-1.0, chunk_size=chunk_size)
        assert {tuple(link) for link in links.tolist()} == set(expected)
        np.testing.assert_allclose(similarities, [expected[tuple(link)] for link in links.tolist()], atol=1e-6)
        assert np.all(links[:, 0] < links[:, 1])


def test_threshold_keeps_exactly_the_links_at_or_above_it():
    rng = np.random.default_rng(2)
    proxies = random_proxies(rng, np.repeat([0, 1, 2], [12, 12, 12]), dim=4)
    _, all_similarities = mutual_neighbour_links(proxies, threshold=-1.0, chunk_size=5)
    threshold = float(np.median(all_similarities))
    links, similarities = mutual_neighbour_links(proxies, threshold=threshold, chunk_size=5)
    assert 0 < len(links) < len(all_similarities)
    assert np.all(similarities >= threshold)
    assert {tuple(link) for link in links.tolist()} == set(brute_force_links(proxies, threshold))


def test_components_hold_one_proxy_per_camera_and_drop_the_weakest_conflicting_link():
    # 0 (cam 0) - 1 (cam 1) - 2 (cam 2) - 3 (cam 0): the last, weakest link would put cameras 0 twice in one component.
    links = np.array([[2, 3], [0, 1], [1, 2], [4, 5]])
    similarities = np.array([0.5, 0.9, 0.8, 0.7])
    cameras = np.array([0, 1, 2, 0, 1, 2, 1])
    pseudo_ids = merge_components(links, similarities, cameras)
    np.testing.assert_array_equal(pseudo_ids, [0, 0, 0, -1, 1, 1, -1])
    # Make 2-3 the strongest: now it wins and 0-1 / 1-2 must give way where they conflict.
    pseudo_ids = merge_components(links, np.array([0.95, 0.9, 0.8, 0.7]), cameras)
    np.testing.assert_array_equal(pseudo_ids, [0, 0, 1, 1, 2, 2, -1])
    shuffled = np.random.default_rng(3).permutation(len(links))
    reordered = merge_components(links[shuffled], similarities[shuffled], cameras)
    np.testing.assert_array_equal(reordered, [0, 0, 0, -1, 1, 1, -1])


def test_random_links_never_put_two_proxies_of_one_camera_together():
    rng = np.random.default_rng(4)
    proxies = random_proxies(rng, np.repeat(np.arange(6), 15), dim=3)
    links, similarities = mutual_neighbour_links(proxies, threshold=-1.0, chunk_size=16)
    pseudo_ids = merge_components(links, similarities, proxies.cameras)
    sizes = np.bincount(pseudo_ids[pseudo_ids >= 0])
    assert sizes.max() >= 3  # merging across camera pairs happened
    for component in np.unique(pseudo_ids[pseudo_ids >= 0]):
        members = proxies.cameras[pseudo_ids == component]
        assert len(members) == len(set(members.tolist())) >= 2


def test_quality_against_a_hand_computed_example():
    cameras = np.array([0, 1, 2, 0, 1, 0])
    global_ids = np.array([7, 7, 7, 8, 9, 7])
    pseudo_ids = np.array([0, 0, 0, 1, 1, -1])
    quality = association_quality(pseudo_ids, cameras, global_ids)
    # Predicted: 3 pairs in component 0 (all person 7) + 1 in component 1 (8 with 9, wrong).
    # True: person 7 has 4 proxies, 6 pairs, minus the pair inside camera 0 = 5.
    assert quality == {"true_pairs": 5, "correct_pairs": 3, "pair_precision": 0.75, "pair_recall": 0.6}
    empty = association_quality(np.full(3, -1), np.array([0, 1, 2]), np.array([1, 1, 2]))
    assert (empty["pair_precision"], empty["pair_recall"], empty["true_pairs"]) == (0.0, 0.0, 1)


def test_component_statistics_need_no_labels():
    cameras = np.array([0, 1, 2, 0, 1, 0])
    proxies = Proxies(np.eye(6, dtype=np.float32), cameras, np.array([0, 0, 0, 1, 1, 2]))
    # Links 0-1 and 1-2 chain component 0 (its pair 0-2 is no link); 2-3 joined nothing (camera 0 twice).
    links = np.array([[0, 1], [1, 2], [2, 3], [3, 4]])
    association = Association(proxies, links, np.ones(4, np.float32), np.array([0, 0, 0, 1, 1, -1]))
    assert component_statistics(association) == {
        "num_links": 4,
        "num_proxies": 6,
        "proxies_covered": 5,
        "coverage": 5 / 6,
        "num_components": 2,
        "mean_component_size": 2.5,
        "component_size_histogram": {"2": 1, "3": 1},
        "predicted_pairs": 4,
        "cycle_consistent_share": 3 / 4,
    }
    alone = Association(proxies, np.zeros((0, 2), np.int64), np.zeros(0, np.float32), np.full(6, -1))
    assert component_statistics(alone)["num_components"] == 0 and component_statistics(alone)["coverage"] == 0


def test_proxy_global_ids_take_the_majority_of_the_items():
    cameras = np.array([0, 0, 0, 1, 1, 1, 1])
    local_ids = np.array([0, 0, 0, 0, 0, 3, 3])
    global_ids = np.array([5, 9, 9, 4, 2, 6, 6])
    proxies = build_proxies(np.eye(7, dtype=np.float32), cameras, local_ids)
    # Camera 1, id 0: a 1-1 tie between 4 and 2 goes to the smaller id.
    np.testing.assert_array_equal(proxy_global_ids(proxies, cameras, local_ids, global_ids), [9, 2, 6])


def planted_people(rng, num_people=80, num_cameras=6, dim=32, bias=1.5, noise=1.2):
    """Items of people seen in 2..C cameras: identity centre + a per-camera offset + noise, 3 images per proxy."""
    centres = rng.standard_normal((num_people, dim))
    offsets = bias * rng.standard_normal((num_cameras, dim))
    cameras, local_ids, people = [], [], []
    next_id = np.zeros(num_cameras, dtype=int)
    for person in range(num_people):
        for camera in rng.permutation(num_cameras)[: rng.integers(2, num_cameras + 1)]:
            cameras += [camera] * 3
            local_ids += [next_id[camera]] * 3  # camera-local ids: unrelated to the person's id elsewhere
            people += [person] * 3
            next_id[camera] += 1
    cameras, local_ids, people = np.array(cameras), np.array(local_ids), np.array(people)
    features = centres[people] + offsets[cameras] + noise * rng.standard_normal((len(people), dim))
    return features.astype(np.float32), cameras, local_ids, people


def planted_quality(association, cameras, local_ids, people):
    """association_quality of `association` against the planted people."""
    truth = proxy_global_ids(association.proxies, cameras, local_ids, people)
    return association_quality(association.pseudo_ids, association.proxies.cameras, truth)


def test_planted_people_are_recovered_with_high_precision_and_order_does_not_matter():
    rng = np.random.default_rng(5)
    features, cameras, local_ids, people = planted_people(rng)

    association = associate(features, cameras, local_ids, threshold=0.5, chunk_size=50)
    centred = planted_quality(association, cameras, local_ids, people)
    assert centred["pair_precision"] >= 0.95 and centred["pair_recall"] >= 0.9
    # The per-camera offsets are what centring removes: without it, far fewer true pairs are found.
    plain = planted_quality(associate(features, cameras, local_ids, threshold=0.5, centre_per_camera=False), cameras,
                            local_ids, people)
    assert plain["pair_recall"] < centred["pair_recall"] - 0.3
    order = rng.permutation(len(features))
    again = associate(features[order], cameras[order], local_ids[order], threshold=0.5)
    np.testing.assert_array_equal(again.pseudo_ids, association.pseudo_ids)
    items = association.item_pseudo_ids(cameras, local_ids)
    np.testing.assert_array_equal(items, association.pseudo_ids[association.proxies.index_of(cameras, local_ids)])


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(threshold=1.5), "threshold"),
        (dict(threshold=-1.01), "threshold"),
        (dict(threshold=float("nan")), "threshold"),
        (dict(cameras=np.array([0, 1, 1]), local_ids=np.array([0, 0, 1])), "cameras: 3 entries for 4 feature rows"),
        (dict(local_ids=np.array([0, 1])), "local_ids: 2 entries for 4 cameras"),
        (dict(cameras=np.array([2, 2, 2, 2])), "cameras: association needs at least 2 cameras"),
        (dict(features=np.ones((4, 2, 2), dtype=np.float32)), "features"),
        (dict(features=np.full((4, 2), np.nan, dtype=np.float32)), "features"),
        (dict(chunk_size=0), "chunk_size"),
    ],
)
def test_bad_input_raises_naming_the_parameter(change, message):
    arguments = dict(
        features=np.eye(4, 2, dtype=np.float32),
        cameras=np.array([0, 0, 1, 1]),
        local_ids=np.array([0, 1, 0, 1]),
        threshold=0.5,
    )
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        associate(**arguments)


def random_similarities(rng, count, decimals=None):
    """A symmetric [count, count] similarity matrix in [-1, 1] (rounded: many ties)."""
    values = rng.uniform(-1, 1, (count, count))
    values = (values + values.T) / 2
    return (values if decimals is None else np.round(values, decimals)).astype(np.float32)


def test_jaccard_similarities_are_one_minus_twice_the_proxies_jaccard_distance():
    rng = np.random.default_rng(3)
    proxies = build_proxies(*random_items(rng, num_items=30, num_cameras=2, ids_per_camera=7, dim=4))
    result = jaccard_similarities(proxies, 6, 3)
    features = proxies.features.astype(np.float64)
    expected = 1 - 2 * loop_jaccard(np.sqrt(np.maximum(2 - 2 * features @ features.T, 0)), 6, 3)
    assert result.shape == (14, 14) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=5e-6)


def test_mutual_links_over_given_similarities_match_brute_force():
    rng = np.random.default_rng(4)
    cameras = np.repeat([0, 1, 2], [5, 7, 4])
    proxies = random_proxies(rng, cameras)
    similarities = random_similarities(rng, len(cameras))
    links, values = mutual_neighbour_links(proxies, -0.2, chunk_size=3, similarities=similarities)
    expected = {}
    for a, b in itertools.combinations(range(3), 2):
        in_a, in_b = np.flatnonzero(cameras == a), np.flatnonzero(cameras == b)
        for i in in_a:
            j = in_b[np.argmax(similarities[i, in_b])]
            if in_a[np.argmax(similarities[j, in_a])] == i and similarities[i, j] >= -0.2:
                expected[(i, j)] = similarities[i, j]
    assert {tuple(link): value for link, value in zip(links.tolist(), values.tolist())} == pytest.approx(expected)
    # The cosine path is the same rule over the features' own similarities.
    cosine = mutual_neighbour_links(proxies, 0.1)
    given = mutual_neighbour_links(proxies, 0.1, similarities=proxies.features @ proxies.features.T)
    np.testing.assert_array_equal(cosine[0], given[0])


def greedy_budget(similarities, cameras, max_links, threshold):
    """Precise-ICS's rule, directly: every cross-camera pair i < j at or above the threshold sorted by (similarity
    descending, i, j), taken while neither end has a partner in the other's camera."""
    count = len(cameras)
    pairs = sorted(((-float(similarities[i, j]), i, j) for i in range(count) for j in range(i + 1, count)
                    if cameras[i] != cameras[j] and similarities[i, j] >= threshold))
    partners, links = set(), []
    for _, i, j in pairs:
        if len(links) == max_links:
            break
        if (i, cameras[j]) in partners or (j, cameras[i]) in partners:
            continue
        partners |= {(i, cameras[j]), (j, cameras[i])}
        links.append((i, j))
    return links


@pytest.mark.parametrize("max_links, threshold", [(1, 0.0), (12, -1.0), (40, 0.3), (500, -1.0)])
def test_budget_links_take_the_most_similar_pairs_one_partner_per_camera(max_links, threshold):
    rng = np.random.default_rng(max_links)
    # 3 cameras of 30: 2,700 cross-camera pairs, more than the first prefix of candidates (1,024 at least).
    cameras = np.repeat([0, 1, 2], 30)
    similarities = random_similarities(rng, len(cameras), decimals=1)
    links, values = budget_links(similarities, cameras, max_links, threshold)
    expected = greedy_budget(similarities, cameras, max_links, threshold)
    assert [tuple(link) for link in links.tolist()] == expected
    np.testing.assert_array_equal(values, similarities[links[:, 0], links[:, 1]])
    if max_links == 500:  # more than there can be: every proxy has a partner in both other cameras
        assert len(links) == 90


def test_budget_links_leave_out_unusable_proxies_and_check_their_input():
    rng = np.random.default_rng(1)
    cameras = np.repeat([0, 1], 4)
    similarities = random_similarities(rng, 8)
    usable = np.array([True, False, True, True, True, True, False, True])
    links, _ = budget_links(similarities, cameras, 10, -1.0, usable)
    assert len(links) == 3 and not np.isin(links, [1, 6]).any()
    with pytest.raises(ValueError, match=r"similarities: expected shape \(8, 8\)"):
        budget_links(similarities[:4], cameras, 3, 0.0)
    with pytest.raises(ValueError, match="threshold"):
        budget_links(similarities, cameras, 3, 2.0)


@pytest.mark.parametrize("distance, max_links", [("cosine", None), ("jaccard", None), ("cosine", 7)])
def test_link_margins_and_proxy_confidences_match_a_direct_computation(distance, max_links):
    rng = np.random.default_rng(6)
    features, cameras, local_ids, _ = planted_people(rng, num_people=12, num_cameras=3)
    association = associate(features, cameras, local_ids, threshold=-1.0, distance=distance, neighbours=(6, 3),
                            max_links=max_links)
    proxies = association.proxies
    similarity = (association.similarities if association.similarities is not None
                  else proxies.features @ proxies.features.T)
    margins = link_margins(association, chunk_size=2)
    assert len(margins) == len(association.links) > 0

    def margin(i, j):
        others = [k for k in range(len(proxies.cameras)) if proxies.cameras[k] == proxies.cameras[j] and k != j]
        return similarity[i, j] - max((similarity[i, k] for k in others), default=-1.0)

    expected = [max(0.0, min(margin(i, j), margin(j, i))) for i, j in association.links.tolist()]
    np.testing.assert_allclose(margins, expected, atol=1e-6)
    confidences = proxy_confidences(association, margins)
    pseudo = association.pseudo_ids
    for proxy in range(len(pseudo)):
        inside = [m for (i, j), m in zip(association.links.tolist(), margins)
                  if proxy in (i, j) and pseudo[i] >= 0 and pseudo[i] == pseudo[j]]
        assert confidences[proxy] == pytest.approx(max(inside, default=0.0))


def test_jaccard_and_budget_rounds_recover_planted_people():
    rng = np.random.default_rng(5)
    features, cameras, local_ids, people = planted_people(rng)

    jaccard = associate(features, cameras, local_ids, threshold=0.0, distance="jaccard", neighbours=(10, 3))
    found = planted_quality(jaccard, cameras, local_ids, people)
    assert found["pair_precision"] >= 0.95 and found["pair_recall"] >= 0.95
    budget = associate(features, cameras, local_ids, threshold=0.0, max_links=40)
    assert len(budget.links) == 40 and planted_quality(budget, cameras, local_ids, people)["pair_precision"] >= 0.95
    partners = np.concatenate([budget.links, budget.links[:, ::-1]])
    pairs = set(zip(partners[:, 0].tolist(), budget.proxies.cameras[partners[:, 1]].tolist()))
    assert len(pairs) == len(partners), "at most one partner per other camera"
    with pytest.raises(ValueError, match="distance: expected one of cosine, jaccard"):
        associate(features, cameras, local_ids, threshold=0.0, distance="euclidean")
