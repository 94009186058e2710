"""k-reciprocal re-ranking (Zhong et al., CVPR 2017, "Re-ranking Person Re-identification with k-reciprocal
Encoding"), following the authors' widely used reference implementation step by step:

1. original distance: the (query + gallery)² matrix of the given distances, squared, each column divided
   by its maximum, then transposed (so row i is the squared distances to sample i scaled to [0, 1]);
2. R(i, k1): the k-reciprocal neighbours of i (j among i's k1+1 nearest and i among j's k1+1 nearest);
   each candidate j in R(i, k1) adds R(j, round(k1/2)) when more than 2/3 of that set lies in R(i, k1);
3. V(i, j) = exp(-d(i, j)) over that expanded set, normalised to sum 1 (zero elsewhere);
4. local query expansion: V(i) becomes the mean of V over i's k2 nearest neighbours (itself included);
5. Jaccard distance 1 - sum_k min(V_ik, V_jk) / sum_k max(V_ik, V_jk), computed as 1 - m / (2 - m)
   with m = sum_k min(V_ik, V_jk), since every V row sums to 1;
6. final distance = Jaccard * (1 - lambda) + original * lambda, for queries x gallery.

Neighbours are ranked by (distance, index), as a stable sort would. The V rows are kept sparse.

Memory: the method needs the whole (Q + G) x (Q + G) original distance matrix, built here as one float32
array besides the caller's q_q_dist and g_g_dist: Market-1501 (3,368 + 19,732 = 23,100) needs
23,100² x 4 B ≈ 2.1 GB for it, MSMT17 (93,820) would need 35 GB. `max_samples` refuses sizes above it.

`jaccard_blocks` runs steps 1-5 among one set of N samples (the association's k-reciprocal distance, CCAFL's
rule): the same N x N float32 original distance (N = 20,000: 1.6 GB), the Jaccard distances yielded a block of
rows at a time so that the caller need not hold a second N x N matrix.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from acan_tf.evaluation.metrics import _concatenated_ranges

# Rows processed at once when ranking neighbours and accumulating Jaccard overlaps.
_BLOCK_ELEMENTS = 2**22


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    max_samples: int = 30_000,
) -> np.ndarray:
    """Re-ranked query x gallery distances (float32) by k-reciprocal encoding."""
    num_query, num_gallery = _validate(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, max_samples)
    original = _original_distance(q_g_dist, q_q_dist, g_g_dist)
    final = np.empty((num_query, num_gallery), dtype=np.float32)
    for start, jaccard in _jaccard_distance(*_encoding(original, k1, k2), len(original), num_query, num_query):
        stop = start + len(jaccard)
        final[start:stop] = (jaccard * np.float32(1 - lambda_value)
                             + original[start:stop, num_query:] * np.float32(lambda_value))
    return final


def jaccard_blocks(
    features: np.ndarray, k1: int = 20, k2: int = 6, max_samples: int = 20_000
) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, Jaccard distances [rows, N] float32) blocks of the k-reciprocal Jaccard distance (steps 1-5)
    among the N L2-normalised rows of `features`, whose Euclidean distances are the original distance."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features: expected a 2-D array of at least 2 rows, got shape {features.shape}")
    _check_neighbours(k1, k2)
    if len(features) > max_samples:
        raise ValueError(f"k-reciprocal distances among {len(features)} samples need a {len(features)}² float32 matrix "
                         f"({len(features) ** 2 * 4 / 1e9:.1f} GB), above max_samples={max_samples}")
    # Squared Euclidean distances of unit rows, in place: 2 - 2 cos. A @ A.T is exactly symmetric (NumPy computes
    # it as one symmetric product), so dividing each row by its maximum is the reference's transposed division.
    original = features @ features.T
    original *= -2
    original += 2
    np.maximum(original, 0, out=original)
    row_max = original.max(axis=1)
    if not np.all(row_max > 0):
        raise ValueError(f"sample {int(np.argmin(row_max))} is at distance 0 from every sample; cannot normalise")
    original /= row_max[:, None]
    yield from _jaccard_distance(*_encoding(original, k1, k2), len(original), len(original), 0)


def _encoding(original: np.ndarray, k1: int, k2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps 2-4: the sparse rows (rows, columns, values) of V, query-expanded, from the original distance."""
    num_all = len(original)
    nearest = _nearest(original, min(max(k1 + 1, k2), num_all))
    expanded_rows, expanded_cols = _expanded_reciprocal_sets(
        nearest[:, : k1 + 1], nearest[:, : int(np.around(k1 / 2)) + 1]
    )
    weights = np.exp(-original[expanded_rows, expanded_cols])
    weights /= np.bincount(expanded_rows, weights=weights, minlength=num_all).astype(np.float32)[expanded_rows]
    v = (expanded_rows, expanded_cols, weights)
    if k2 > 1:
        v = _query_expansion(*v, nearest[:, :k2])
    return v


def _validate(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value, max_samples) -> tuple[int, int]:
    """Numbers of queries and gallery entries, after checking the inputs agree."""
    for name, dist in (("q_g_dist", q_g_dist), ("q_q_dist", q_q_dist), ("g_g_dist", g_g_dist)):
        if np.ndim(dist) != 2:
            raise ValueError(f"{name} must be 2-D, got shape {np.shape(dist)}")
        if np.size(dist) == 0:
            raise ValueError(f"{name} is empty (shape {np.shape(dist)})")
        if not np.all(np.isfinite(dist)):
            raise ValueError(f"{name} contains NaN or Inf")
    num_query, num_gallery = np.shape(q_g_dist)
    if np.shape(q_q_dist) != (num_query, num_query) or np.shape(g_g_dist) != (num_gallery, num_gallery):
        raise ValueError(
            f"q_g_dist has shape {np.shape(q_g_dist)}, so q_q_dist must be {(num_query, num_query)} and "
            f"g_g_dist {(num_gallery, num_gallery)}; got {np.shape(q_q_dist)} and {np.shape(g_g_dist)}"
        )
    _check_neighbours(k1, k2)
    if not 0 <= lambda_value <= 1:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    if num_query + num_gallery > max_samples:
        size_gb = (num_query + num_gallery) ** 2 * 4 / 1e9
        raise ValueError(
            f"re-ranking {num_query} queries and {num_gallery} gallery entries needs a "
            f"{num_query + num_gallery}² float32 matrix ({size_gb:.1f} GB), above max_samples={max_samples}"
        )
    return num_query, num_gallery


def _check_neighbours(k1, k2) -> None:
    for name, value in (("k1", k1), ("k2", k2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _original_distance(q_g_dist, q_q_dist, g_g_dist) -> np.ndarray:
    """The reference's original distance: transpose of the squared distances over their column maxima."""
    num_query = len(q_q_dist)
    num_all = num_query + len(g_g_dist)
    # Built already transposed, block by block, so that no second n x n array is needed.
    original = np.empty((num_all, num_all), dtype=np.float32)
    _square_transposed(q_q_dist, original[:num_query, :num_query])
    np.square(q_g_dist, out=original[:num_query, num_query:])
    _square_transposed(q_g_dist, original[num_query:, :num_query])
    _square_transposed(g_g_dist, original[num_query:, num_query:])
    row_max = original.max(axis=1)
    if not np.all(row_max > 0):
        raise ValueError(f"sample {int(np.argmin(row_max))} is at distance 0 from every sample; cannot normalise")
    original /= row_max[:, None]
    return original


def _square_transposed(source: np.ndarray, out: np.ndarray, tile: int = 256) -> None:
    """out = source.T ** 2, tile by tile (a transposed copy in one go misses the cache at every element)."""
    for i in range(0, out.shape[0], tile):
        for j in range(0, out.shape[1], tile):
            np.square(np.transpose(source[j : j + tile, i : i + tile]), out=out[i : i + tile, j : j + tile])


def _nearest(dist: np.ndarray, k: int) -> np.ndarray:
    """The k nearest columns of every row, in (distance, column) order, as a stable argsort would give."""
    nearest = np.empty((len(dist), k), dtype=np.int64)
    block = max(1, _BLOCK_ELEMENTS // dist.shape[1])
    for start in range(0, len(dist), block):
        rows = dist[start : start + block]
        kth = np.partition(rows, k - 1, axis=1)[:, k - 1 : k]
        kept = rows <= kth
        # Where more than k columns are within the k-th distance, a stable sort keeps, of those at
        # exactly that distance, the first ones.
        tied_rows = np.flatnonzero(np.count_nonzero(kept, axis=1) > k)
        closer = rows[tied_rows] < kth[tied_rows]
        tied = rows[tied_rows] == kth[tied_rows]
        room = k - np.count_nonzero(closer, axis=1, keepdims=True)
        kept[tied_rows] = closer | (tied & (np.cumsum(tied, axis=1) <= room))
        cols = (np.flatnonzero(kept) % dist.shape[1]).reshape(len(rows), k)
        order = np.argsort(np.take_along_axis(rows, cols, axis=1), axis=1, kind="stable")
        nearest[start : start + block] = np.take_along_axis(cols, order, axis=1)
    return nearest


def _reciprocal_sets(neighbours: np.ndarray) -> np.ndarray:
    """Codes i * n + j (sorted) of the pairs where j is among i's neighbours and i among j's."""
    num_all = len(neighbours)
    rows = np.repeat(np.arange(num_all), neighbours.shape[1])
    codes = rows * num_all + neighbours.ravel()
    reverse = neighbours.ravel() * num_all + rows
    return np.sort(codes[np.isin(reverse, codes)])


def _expanded_reciprocal_sets(neighbours: np.ndarray, half_neighbours: np.ndarray):
    """Rows and columns of the pairs (i, j) with j in the expanded k-reciprocal set of i."""
    num_all = len(neighbours)
    reciprocal = _reciprocal_sets(neighbours)
    half = _reciprocal_sets(half_neighbours)
    half_rows = half // num_all
    half_start = np.searchsorted(half_rows, np.arange(num_all + 1))
    # One (i, candidate) pair per member of R(i, k1); each expands into R(candidate, k1/2).
    pair_rows, candidates = np.divmod(reciprocal, num_all)
    sizes = half_start[candidates + 1] - half_start[candidates]
    pair_of, members = _concatenated_ranges(half_start[candidates], sizes)
    member_codes = pair_rows[pair_of] * num_all + half[members] % num_all
    overlap = np.bincount(pair_of, weights=np.isin(member_codes, reciprocal), minlength=len(reciprocal))
    accepted = (overlap > 2.0 / 3 * sizes)[pair_of]
    return np.divmod(np.union1d(reciprocal, member_codes[accepted]), num_all)


def _query_expansion(rows, cols, values, neighbours):
    """Sparse rows of V averaged over each sample's neighbours (the given columns of `neighbours`)."""
    num_all, k2 = neighbours.shape
    row_start = np.searchsorted(rows, np.arange(num_all + 1))
    sources = neighbours.ravel()
    source_of, entries = _concatenated_ranges(row_start[sources], row_start[sources + 1] - row_start[sources])
    owner = source_of // k2  # neighbours.ravel() lists sample i's k2 neighbours at i * k2 ...
    codes, position = np.unique(owner * num_all + cols[entries], return_inverse=True)
    sums = np.bincount(position, weights=values[entries])
    return codes // num_all, codes % num_all, (sums / k2).astype(np.float32)


def _jaccard_distance(
    rows, cols, values, num_all: int, num_query: int, gallery_start: int
) -> Iterator[tuple[int, np.ndarray]]:
    """Blocks (first query, [queries, gallery]) of 1 - m / (2 - m), m = sum_k min(V_ik, V_jk), for the queries
    i < num_query and the gallery entries j >= gallery_start of the num_all samples."""
    num_gallery = num_all - gallery_start
    # Columns k of V with the gallery entries j that have V_jk != 0 (an inverted index).
    gallery = rows >= gallery_start
    by_col = np.argsort(cols[gallery], kind="stable")
    inv_rows = rows[gallery][by_col] - gallery_start
    inv_values = values[gallery][by_col]
    col_start = np.searchsorted(cols[gallery][by_col], np.arange(num_all + 1))
    query_start = np.searchsorted(rows, np.arange(num_query + 1))
    block = max(1, _BLOCK_ELEMENTS // num_gallery)
    for start in range(0, num_query, block):
        stop = min(start + block, num_query)
        query_cols = cols[query_start[start] : query_start[stop]]
        pair_of, hits = _concatenated_ranges(col_start[query_cols], col_start[query_cols + 1] - col_start[query_cols])
        pair_of += query_start[start]
        overlap = np.bincount(
            (rows[pair_of] - start) * num_gallery + inv_rows[hits],
            weights=np.minimum(values[pair_of], inv_values[hits]),
            minlength=(stop - start) * num_gallery,
        ).astype(np.float32)
        yield start, (1 - overlap / (2 - overlap)).reshape(stop - start, num_gallery)
