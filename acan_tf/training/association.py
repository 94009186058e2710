"""Cross-camera association: camera-local identities → cross-camera pseudo-identities, from features alone.

One proxy per (camera, camera-local id); proxies of two cameras are linked when they are each other's nearest
neighbour in the other camera (a→b→a, cycle-consistent) with similarity >= a threshold; links are merged,
strongest first, into components that never hold two proxies of one camera. Only features and camera-local ids
are read; true global ids enter `association_quality` alone, which reports and is never used for training.

The similarity of two proxies is the cosine of their features, or with distance "jaccard" 1 - 2 d, d their
k-reciprocal Jaccard distance (acan_tf.evaluation.rerank), on the cosine's [-1, 1] scale. CCAFL takes it between
images, a pair of identities at the minimum over their images' pairs; here it is taken between the proxies: each
image alone is noisy and the minimum over many pairs picks chance matches (the tests' planted people, 3 images per
proxy, k1 = 20, k2 = 6, mutual neighbours without threshold: pair precision / recall 0.80 / 0.85 between images
against 0.89 / 0.94 between proxies at noise 1.2, 0.17 / 0.16 against 0.59 / 0.59 at noise 2.0), and the matrix is
M x M instead of N x N (MSMT17: 4,100 proxies against 32,621 images).

With a link budget (Precise-ICS) the links are instead the most similar cross-camera pairs, each proxy with at most
one partner per other camera, up to a given number; the merge is the same.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from acan_tf.config import DISTANCES
from acan_tf.evaluation.rerank import jaccard_blocks

# Similarity entries per row chunk when the caller gives no chunk size: 2**24 float32 values = 64 MiB.
CHUNK_ELEMENTS = 2**24
# Proxies at most for the Jaccard distance: its [M, M] float32 original distance and the similarities, 8 M² bytes
# (15,000: 1.8 GB; MSMT17's 4,100 camera-local identities: 134 MB).
JACCARD_MAX_PROXIES = 15_000
# Proxies at most for a link budget: the [M, M] similarity matrix, a copy and masks, about 9 M² bytes (900 MB).
BUDGET_MAX_PROXIES = 10_000


@dataclasses.dataclass(frozen=True)
class Proxies:
    """One unit-norm feature per (camera, camera-local id), sorted by camera, then local id."""

    features: np.ndarray  # [M, D] float32; a zero row has no direction left (a camera with one proxy, centred)
    cameras: np.ndarray  # [M] int64
    local_ids: np.ndarray  # [M] int64

    def index_of(self, cameras: np.ndarray, local_ids: np.ndarray) -> np.ndarray:
        """The proxy index [N] of each item given its camera and camera-local id."""
        cameras, local_ids = _item_labels(cameras, local_ids)
        id_range = max(self.local_ids.max(initial=0), local_ids.max(initial=0)) + 1
        keys, wanted = _keys(self.cameras, self.local_ids, id_range), _keys(cameras, local_ids, id_range)
        index = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        missing = keys[index] != wanted
        if missing.any():
            first = int(np.flatnonzero(missing)[0])
            raise ValueError(
                f"cameras/local_ids: item {first} (camera {cameras[first]}, local id {local_ids[first]}) has no proxy"
            )
        return index


@dataclasses.dataclass(frozen=True)
class Association:
    """The outcome of one association round: proxies, their mutual-neighbour links and their pseudo-identities."""

    proxies: Proxies
    links: np.ndarray  # [L, 2] int64 proxy indices, i < j, every mutual-nearest-neighbour link above the threshold
    link_similarities: np.ndarray  # [L] float32 similarity of each link
    pseudo_ids: np.ndarray  # [M] int64: cross-camera pseudo-identity of each proxy, -1 for proxies left alone
    similarities: np.ndarray | None = None  # [M, M] float32 when the round built it (Jaccard, budget); else cosine

    def item_pseudo_ids(self, cameras: np.ndarray, local_ids: np.ndarray) -> np.ndarray:
        """The pseudo-identity [N] of each item (-1: its proxy joined no cross-camera component)."""
        return self.pseudo_ids[self.proxies.index_of(cameras, local_ids)]


def build_proxies(
    features: np.ndarray, cameras: np.ndarray, local_ids: np.ndarray, centre_per_camera: bool = True
) -> Proxies:
    """Proxies of the items: the L2-normalised mean feature of each (camera, camera-local id), optionally centred."""
    features = np.asarray(features)
    if features.ndim != 2 or not np.issubdtype(features.dtype, np.floating):
        raise ValueError(f"features: expected a 2-D float array [N, D], got shape {features.shape} of {features.dtype}")
    if not np.isfinite(features).all():
        raise ValueError("features: contains NaN or infinity")
    cameras, local_ids = _item_labels(cameras, local_ids)
    if len(cameras) != len(features):
        raise ValueError(f"cameras: {len(cameras)} entries for {len(features)} feature rows")
    if len(np.unique(cameras)) < 2:
        raise ValueError(f"cameras: association needs at least 2 cameras, got {len(np.unique(cameras))}")
    pairs, inverse = np.unique(np.stack([cameras, local_ids], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], np.arange(len(pairs)))
    # Float64 sums: a proxy may average thousands of frames.
    proxy_features = _unit_rows(np.add.reduceat(features[order].astype(np.float64), starts, axis=0))
    proxy_cameras = pairs[:, 0]
    if centre_per_camera:
        # Every camera adds its own offset to all its features; subtracting each camera's mean proxy removes it
        # (FINDINGS: it lifts link precision from 0.38 to 0.43 and makes cosine thresholds meaningful).
        camera_starts = np.flatnonzero(np.r_[True, proxy_cameras[1:] != proxy_cameras[:-1]])
        counts = np.diff(np.r_[camera_starts, len(pairs)])
        camera_means = np.add.reduceat(proxy_features, camera_starts, axis=0) / counts[:, None]
        proxy_features = _unit_rows(proxy_features - np.repeat(camera_means, counts, axis=0))
    return Proxies(proxy_features.astype(np.float32), proxy_cameras.copy(), pairs[:, 1].copy())


def jaccard_similarities(proxies: Proxies, k1: int, k2: int) -> np.ndarray:
    """[M, M] proxy similarities 1 - 2 d, d the k-reciprocal Jaccard distance between the proxies (Zhong et al.'s
    encoding; CCAFL's distance, taken between camera-local identities rather than images)."""
    count = len(proxies.cameras)
    if count > JACCARD_MAX_PROXIES:
        raise ValueError(f"proxies: {count}, above the {JACCARD_MAX_PROXIES} the Jaccard distance takes")
    similarities = np.empty((count, count), dtype=np.float32)
    for start, block in jaccard_blocks(proxies.features, k1, k2, JACCARD_MAX_PROXIES):
        similarities[start : start + len(block)] = 1 - 2 * block
    return similarities


def mutual_neighbour_links(
    proxies: Proxies, threshold: float, chunk_size: int | None = None, similarities: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Links [L, 2] (i < j) between proxies that are each other's nearest neighbour in the other's camera, and
    their similarities [L] (cosine, or the given [M, M] `similarities`), keeping those >= `threshold`; ties go to
    the lowest index."""
    _check_threshold(threshold)
    features, cameras = proxies.features, proxies.cameras
    count = len(features)
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(count, 1))
    if chunk_size < 1:
        raise ValueError(f"chunk_size: expected a positive number of rows, got {chunk_size}")
    camera_starts = np.flatnonzero(np.r_[True, cameras[1:] != cameras[:-1]])
    if np.any(np.diff(cameras) < 0):
        raise ValueError("proxies: cameras must be sorted, as build_proxies returns them")
    camera_stops = np.r_[camera_starts[1:], count]
    # neighbour[i, c]: i's nearest proxy in camera c, and its similarity. O(M x C) memory instead of O(M x M).
    neighbour = np.zeros((count, len(camera_starts)), dtype=np.int32)
    similarity = np.zeros((count, len(camera_starts)), dtype=np.float32)
    for start in range(0, count, chunk_size):
        block = _similarity_rows(proxies, similarities, slice(start, start + chunk_size))
        rows = np.arange(len(block))
        for c, (low, high) in enumerate(zip(camera_starts, camera_stops)):
            best = block[:, low:high].argmax(axis=1)  # argmax returns the first maximum: ties go to the lowest index
            neighbour[start : start + len(block), c] = low + best
            similarity[start : start + len(block), c] = block[rows, low + best]
    has_direction = _has_direction(proxies, similarities)
    sources, targets, similarities = [], [], []
    for a, (low, high) in enumerate(zip(camera_starts, camera_stops)):
        # Each pair of cameras once, from its first camera a to every later one; proxies are sorted by camera, so
        # every link comes out as (i, j) with i < j, in (i, j) order.
        rows = np.arange(low, high)
        partners, partner_similarity = neighbour[low:high, a + 1 :], similarity[low:high, a + 1 :]
        keep = (
            (neighbour[partners, a] == rows[:, None])  # cycle-consistent: a -> b -> a comes back to i
            & (partner_similarity >= threshold)
            & has_direction[rows][:, None]
            & has_direction[partners]
        )
        row, column = np.nonzero(keep)
        sources.append(rows[row])
        targets.append(partners[row, column])
        similarities.append(partner_similarity[row, column])
    links = np.stack([np.concatenate(sources), np.concatenate(targets)], axis=1).astype(np.int64)
    return links, np.concatenate(similarities)


def budget_links(
    similarities: np.ndarray, cameras: np.ndarray, max_links: int, threshold: float, usable: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Links [L, 2] (i < j) and their similarities [L]: cross-camera pairs >= `threshold`, most similar first (ties:
    lowest index), each proxy taking at most one partner per other camera, until `max_links` (Precise-ICS)."""
    _check_threshold(threshold)
    count = len(cameras)
    if similarities.shape != (count, count):
        raise ValueError(f"similarities: expected shape {(count, count)}, got {similarities.shape}")
    if count > BUDGET_MAX_PROXIES:
        raise ValueError(f"similarities: {count} proxies, above the {BUDGET_MAX_PROXIES} a link budget takes")
    _, camera_index = np.unique(cameras, return_inverse=True)
    camera_index = camera_index.reshape(-1)
    candidates = np.array(similarities, dtype=np.float32)
    index = np.arange(count)
    # Each unordered cross-camera pair once, as (i, j) with i < j, at or above the threshold.
    candidates[(index[:, None] >= index[None, :]) | (camera_index[:, None] == camera_index[None, :])] = -np.inf
    candidates[candidates < threshold] = -np.inf
    if usable is not None:
        candidates[~usable] = -np.inf
        candidates[:, ~usable] = -np.inf
    flat = candidates.reshape(-1)
    available = int(np.isfinite(flat).sum())
    partnered = np.zeros((count, camera_index.max(initial=0) + 1), dtype=bool)
    links: list[tuple[int, int]] = []
    processed, size = 0, min(available, max(4 * max_links, 1024))
    while len(links) < max_links and processed < available:
        # The `size` most similar candidates (all of those tied at the smallest), in (similarity, index) order: a
        # prefix of the order of all candidates, so the walk goes on where the previous, smaller prefix ended.
        floor = np.partition(flat, len(flat) - size)[len(flat) - size]
        chosen = np.flatnonzero(flat >= floor)
        chosen = chosen[np.lexsort((chosen, -flat[chosen]))]
        for first, second in zip(*np.divmod(chosen[processed:], count)):
            processed += 1
            a, b = camera_index[first], camera_index[second]
            if partnered[first, b] or partnered[second, a]:
                continue
            partnered[first, b] = partnered[second, a] = True
            links.append((int(first), int(second)))
            if len(links) == max_links:
                break
        size = min(available, 4 * size)
    pairs = np.array(links, dtype=np.int64).reshape(-1, 2)
    return pairs, similarities[pairs[:, 0], pairs[:, 1]].astype(np.float32)


def link_margins(association: Association, chunk_size: int | None = None) -> np.ndarray:
    """Per link [L], its confidence: how far its similarity stands above the next most similar proxy of the
    partner's camera, from each end, the smaller of the two; 0 at worst."""
    links, proxies = association.links, association.proxies
    count = len(proxies.cameras)
    ends = np.concatenate([links, links[:, ::-1]])  # (proxy, partner), both directions
    chunk_size = chunk_size or max(1, CHUNK_ELEMENTS // max(count, 1))
    second = np.empty(len(ends), dtype=np.float32)
    for start in range(0, len(ends), chunk_size):
        sources, partners = ends[start : start + chunk_size].T
        rows = _similarity_rows(proxies, association.similarities, sources)
        others = proxies.cameras[None, :] == proxies.cameras[partners][:, None]
        others[np.arange(len(partners)), partners] = False
        # -1, the least similarity: a partner alone in its camera has no rival.
        second[start : start + len(sources)] = np.where(others, rows, -1.0).max(axis=1, initial=-1.0)
    both = np.tile(association.link_similarities, 2) - second
    return np.maximum(np.minimum(both[: len(links)], both[len(links) :]), 0.0).astype(np.float32)


def proxy_confidences(association: Association, margins: np.ndarray) -> np.ndarray:
    """Per proxy [M], the largest confidence (`link_margins`) of its links inside its component; 0 for a proxy
    left alone."""
    first, second = association.links.T if len(association.links) else (np.zeros(0, int), np.zeros(0, int))
    pseudo_ids = association.pseudo_ids
    inside = (pseudo_ids[first] >= 0) & (pseudo_ids[first] == pseudo_ids[second])
    confidences = np.zeros(len(pseudo_ids), dtype=np.float32)
    np.maximum.at(confidences, first[inside], margins[inside])
    np.maximum.at(confidences, second[inside], margins[inside])
    return confidences


def merge_components(links: np.ndarray, link_similarities: np.ndarray, cameras: np.ndarray) -> np.ndarray:
    """Pseudo-identity [M] per proxy from links merged strongest first into components with at most one proxy per
    camera (a link that would join two proxies of one camera is dropped); -1 for proxies left alone."""
    links = np.asarray(links, dtype=np.int64).reshape(-1, 2)
    link_similarities = np.asarray(link_similarities)
    cameras = np.asarray(cameras)
    if len(link_similarities) != len(links):
        raise ValueError(f"link_similarities: {len(link_similarities)} entries for {len(links)} links")
    if len(links) and (links.min() < 0 or links.max() >= len(cameras)):
        raise ValueError(f"links: proxy indices must lie in [0, {len(cameras)})")
    _, camera_index = np.unique(cameras, return_inverse=True)
    parent = list(range(len(cameras)))
    size = [1] * len(cameras)
    # Each root's cameras as the bits of a Python int: the disjointness test is one AND whatever the camera count.
    camera_bits = [1 << int(c) for c in camera_index.reshape(-1)]

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]  # path halving
            node = parent[node]
        return node

    # Strongest first; equal similarities in index order, so the outcome never depends on the input order.
    order = np.lexsort((links[:, 1], links[:, 0], -link_similarities.astype(np.float64)))
    for first, second in links[order].tolist():
        a, b = root(first), root(second)
        if a == b or camera_bits[a] & camera_bits[b]:
            continue
        if (size[a], b) < (size[b], a):
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        camera_bits[a] |= camera_bits[b]
    roots = np.array([root(node) for node in range(len(cameras))], dtype=np.int64)
    sizes = np.bincount(roots, minlength=len(cameras))
    grouped = sizes[roots] >= 2
    pseudo_ids = np.full(len(cameras), -1, dtype=np.int64)
    # Numbered by each component's first proxy: np.unique's first occurrences come in index order.
    _, first, inverse = np.unique(roots[grouped], return_index=True, return_inverse=True)
    pseudo_ids[grouped] = np.argsort(np.argsort(first))[inverse.reshape(-1)]
    return pseudo_ids


def associate(
    features: np.ndarray,
    cameras: np.ndarray,
    local_ids: np.ndarray,
    threshold: float,
    centre_per_camera: bool = True,
    chunk_size: int | None = None,
    distance: str = "cosine",
    neighbours: tuple[int, int] = (20, 6),
    max_links: int | None = None,
) -> Association:
    """One association round over the training items' unit features and their (camera, camera-local id) labels:
    cosine or Jaccard (`neighbours`: k1, k2) similarities; mutual-neighbour links, or at most `max_links` budget
    links."""
    _check_threshold(threshold)
    if distance not in DISTANCES:
        raise ValueError(f"distance: expected one of {', '.join(DISTANCES)}, got {distance!r}")
    proxies = build_proxies(features, cameras, local_ids, centre_per_camera)
    similarities = jaccard_similarities(proxies, *neighbours) if distance == "jaccard" else None
    if max_links is None:
        links, link_similarities = mutual_neighbour_links(proxies, threshold, chunk_size, similarities)
    else:
        usable = _has_direction(proxies, similarities)
        if similarities is None:
            if len(proxies.features) > BUDGET_MAX_PROXIES:
                raise ValueError(f"max_links: {len(proxies.features)} proxies, above the {BUDGET_MAX_PROXIES} a link "
                                 "budget takes")
            similarities = proxies.features @ proxies.features.T
        links, link_similarities = budget_links(similarities, proxies.cameras, max_links, threshold, usable)
    pseudo_ids = merge_components(links, link_similarities, proxies.cameras)
    return Association(proxies, links, link_similarities, pseudo_ids, similarities)


def proxy_global_ids(
    proxies: Proxies, cameras: np.ndarray, local_ids: np.ndarray, global_ids: np.ndarray
) -> np.ndarray:
    """The true global id [M] of each proxy: the most frequent among its items (ties: the smallest); reporting only."""
    global_ids = np.asarray(global_ids, dtype=np.int64).reshape(-1)
    index = proxies.index_of(cameras, local_ids)
    if len(global_ids) != len(index):
        raise ValueError(f"global_ids: {len(global_ids)} entries for {len(index)} items")
    pairs, counts = np.unique(np.stack([index, global_ids], axis=1), axis=0, return_counts=True)
    # Per proxy: highest count first, then the smallest id.
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    first = np.r_[True, pairs[order[1:], 0] != pairs[order[:-1], 0]]
    result = np.full(len(proxies.cameras), -1, dtype=np.int64)
    result[pairs[order[first], 0]] = pairs[order[first], 1]
    return result


def component_statistics(association: Association) -> dict:
    """What a round made, measurable without any cross-camera label: its links, its components and their sizes, the
    share of proxies linked, and the share of the proxy pairs its components imply that are themselves
    cycle-consistent links (1.0: every component is a clique of mutual nearest neighbours; lower: chains)."""
    pseudo_ids = association.pseudo_ids
    grouped = pseudo_ids >= 0
    component_sizes = np.bincount(pseudo_ids[grouped]) if grouped.any() else np.zeros(0, dtype=np.int64)
    component_sizes = component_sizes[component_sizes > 0]
    predicted = _pairs(component_sizes)
    first, second = association.links.T if len(association.links) else (np.zeros(0, int), np.zeros(0, int))
    inside = int(np.sum((pseudo_ids[first] >= 0) & (pseudo_ids[first] == pseudo_ids[second])))
    sizes, size_counts = np.unique(component_sizes, return_counts=True)
    return {
        "num_links": int(len(association.links)),
        "num_proxies": len(pseudo_ids),
        "proxies_covered": int(grouped.sum()),
        "coverage": float(grouped.mean()) if len(pseudo_ids) else 0.0,
        "num_components": len(component_sizes),
        "mean_component_size": float(component_sizes.mean()) if len(component_sizes) else 0.0,
        "component_size_histogram": {str(int(s)): int(n) for s, n in zip(sizes, size_counts)},
        "predicted_pairs": predicted,
        "cycle_consistent_share": inside / predicted if predicted else 0.0,
    }


def association_quality(pseudo_ids: np.ndarray, cameras: np.ndarray, global_ids: np.ndarray) -> dict:
    """Pairwise precision and recall of the proxy pairs the components imply against the true cross-camera pairs,
    as JSON-ready numbers; for reporting only, never for training."""
    pseudo_ids, cameras, global_ids = (
        np.asarray(values, dtype=np.int64).reshape(-1) for values in (pseudo_ids, cameras, global_ids)
    )
    if not len(pseudo_ids) == len(cameras) == len(global_ids):
        raise ValueError(
            f"pseudo_ids/cameras/global_ids: lengths {len(pseudo_ids)}, {len(cameras)}, {len(global_ids)} differ"
        )
    grouped = pseudo_ids >= 0
    predicted = _pairs(np.bincount(pseudo_ids[grouped])) if grouped.any() else 0
    # A component holds one proxy per camera, so its same-person pairs are all cross-camera.
    _, same_person = np.unique(np.stack([pseudo_ids[grouped], global_ids[grouped]], axis=1), axis=0, return_counts=True)
    correct = _pairs(same_person)
    _, per_person = np.unique(global_ids, return_counts=True)
    _, per_person_camera = np.unique(np.stack([global_ids, cameras], axis=1), axis=0, return_counts=True)
    true = _pairs(per_person) - _pairs(per_person_camera)
    return {
        "true_pairs": true,
        "correct_pairs": correct,
        # 0.0 when there is nothing to measure: JSON has no NaN, and predicted_pairs / true_pairs say why.
        "pair_precision": correct / predicted if predicted else 0.0,
        "pair_recall": correct / true if true else 0.0,
    }


def _pairs(group_sizes: np.ndarray) -> int:
    """The number of unordered pairs inside groups of the given sizes."""
    sizes = np.asarray(group_sizes, dtype=np.int64)
    return int((sizes * (sizes - 1) // 2).sum())


def _similarity_rows(proxies: Proxies, similarities: np.ndarray | None, rows: np.ndarray | slice) -> np.ndarray:
    """The similarities [len(rows), M] of the given proxies to every proxy: of `similarities`, else cosine."""
    if similarities is not None:
        return similarities[rows]
    return proxies.features[rows] @ proxies.features.T


def _has_direction(proxies: Proxies, similarities: np.ndarray | None) -> np.ndarray:
    """[M] whether a proxy's similarities are evidence."""
    if similarities is not None:
        return np.ones(len(proxies.cameras), dtype=bool)
    # A zero proxy (a camera with one identity, centred) has no direction: its cosines are all 0, not evidence.
    return np.any(proxies.features != 0, axis=1)


def _check_threshold(threshold: float) -> None:
    if not -1.0 <= threshold <= 1.0:
        raise ValueError(f"threshold: a cosine similarity must lie in [-1, 1], got {threshold}")


def _item_labels(cameras: np.ndarray, local_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    cameras, local_ids = np.asarray(cameras), np.asarray(local_ids)
    for name, values in (("cameras", cameras), ("local_ids", local_ids)):
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{name}: expected a 1-D integer array, got shape {values.shape} of {values.dtype}")
        if len(values) and values.min() < 0:
            raise ValueError(f"{name}: expected non-negative ids, got {values.min()}")
    if len(cameras) != len(local_ids):
        raise ValueError(f"local_ids: {len(local_ids)} entries for {len(cameras)} cameras")
    return cameras.astype(np.int64), local_ids.astype(np.int64)


def _keys(cameras: np.ndarray, local_ids: np.ndarray, id_range: int) -> np.ndarray:
    # One sortable integer per (camera, local id), in the proxies' (camera, local id) order.
    return cameras * id_range + local_ids


def _unit_rows(values: np.ndarray) -> np.ndarray:
    # Not evaluation.features.l2_normalize: that module imports TensorFlow, and this one stays NumPy-only.
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return np.divide(values, norms, out=np.zeros_like(values), where=norms > 0)
