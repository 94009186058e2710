"""Re-ID ranking metrics (CMC, mAP, mINP) under the Market-1501 protocol, exact and without sorting rows.

Protocol (torchreid's `eval_market1501`): for each query, gallery entries with the query's identity
AND camera are ignored; a query with no remaining true match is skipped; ties in distance are broken
by gallery order (as `np.argsort(kind="stable")` would). With the 1-based ranks r_1 < ... < r_M of a
valid query's M true matches among its kept gallery entries:

    AP   = 1/M * sum_t t / r_t          (precision at each match, averaged)
    INP  = M / r_M                      (mINP averages it)
    CMC@k is the fraction of valid queries with r_1 <= k.

Only the ranks of the true matches matter, so no gallery row is sorted: the rank of a match is the
number of kept entries that precede it in (distance, gallery index) order, plus one. Each block of
queries is scanned once for the "candidates", the kept entries no farther than their query's last
match; the candidates of the whole block are sorted at once as integer keys that order by (query,
distance, gallery index), and each match's place among them is its rank. The cost is one pass over
the distances plus a sort of the candidates: a small part of the gallery for a trained model; for
random features (matches spread down the whole list) it approaches the time of a full argsort.
Float32 distances map to such keys exactly; wider ones are keyed by their float32 rounding, and the
few candidates whose rounding equals a match's are recounted with their exact distance.
Blocks are independent: they are ranked on `threads` threads (default: one per core), numpy
releasing the GIL for their work.

`evaluate_features` never holds the whole distance matrix: it computes `chunk_size` query rows at a time
(default: as many as fit in 256 MiB) with one matrix product each, turned into distances block by block
just before each block is ranked, by the same computation as `pairwise_distance`, so its results equal
`evaluate(pairwise_distance(q, g, metric))` up to the rounding of the matrix product (which BLAS may
vary with the chunk's shape). "euclidean" is the true Euclidean distance; "cosine" is 1 - the cosine
similarity. Euclidean chunks are ranked squared: the candidates are the squares no greater than the
largest square whose root is the last match's distance, and only the candidates' and matches' roots are
taken, so the ranks are those of the roots (whose rounding ties squares that differ) with no pass over
the chunk for the roots.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

METRICS = ("euclidean", "cosine")

# A chunk of the distance matrix evaluate_features holds at once.
_CHUNK_BYTES = 256 * 2**20
# Queries are ranked in blocks of about this many distances: small enough for the scan's
# temporaries to stay in cache, large enough for the per-block numpy calls not to dominate.
_BLOCK_ELEMENTS = 2**20
# Fewer distances than this are ranked on one thread: handing out their blocks would cost more than it saves.
_THREADED_ELEMENTS = 2**22


def evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    threads: int | None = None,
) -> dict:
    """mAP, CMC, mINP and query counts for a query x gallery distance matrix (Market-1501 protocol), ranked on
    `threads` threads (default: one per core)."""
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got shape {distmat.shape}")
    if not np.issubdtype(distmat.dtype, np.floating):
        distmat = distmat.astype(np.float64)  # the ranking marks "no match" with -inf
    ids = _validate_ids(q_pids, g_pids, q_camids, g_camids, distmat.shape[0], distmat.shape[1], "distmat")
    _validate_positive(max_rank, "max_rank")
    threads = _threads(threads, distmat.size)
    ranker = _MatchRanker(*ids)
    block_rows = _block_rows(distmat.shape[1])

    def rank_block(start):
        ranker.add_block(start, np.ascontiguousarray(distmat[start : start + block_rows]), "distmat")

    _run_blocks(rank_block, range(0, distmat.shape[0], block_rows), threads)
    return ranker.summary(max_rank)


def evaluate_features(
    q_feats: np.ndarray,
    g_feats: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    metric: str = "euclidean",
    max_rank: int = 50,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> dict:
    """`evaluate` on `pairwise_distance(q_feats, g_feats, metric)`, computed chunk by chunk of queries."""
    q_feats = _validate_features(q_feats, "q_feats")
    g_feats = _validate_features(g_feats, "g_feats")
    if q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(
            f"q_feats and g_feats have different feature dimensions: {q_feats.shape[1]} and {g_feats.shape[1]}"
        )
    ids = _validate_ids(q_pids, g_pids, q_camids, g_camids, len(q_feats), len(g_feats), "q_feats/g_feats")
    _validate_positive(max_rank, "max_rank")
    if chunk_size is None:
        chunk_size = max(1, _CHUNK_BYTES // (len(g_feats) * np.result_type(q_feats, g_feats, np.float32).itemsize))
    _validate_positive(chunk_size, "chunk_size")
    threads = _threads(threads, min(chunk_size, len(q_feats)) * len(g_feats))
    queries = _prepare(q_feats, metric, "q_feats")
    g_feats, g_norms_sq = _prepare(g_feats, metric, "g_feats")
    ranker = _MatchRanker(*ids)
    block_rows = _block_rows(len(g_feats))
    # Euclidean distances stay squared: the ranking takes the roots of the few entries it keeps.
    squared = metric == "euclidean"

    def rank_block(chunk, chunk_start, start):
        # Each block is finished just before it is ranked, on the thread that ranks it, while it is in cache.
        product, q_norms_sq = _rows(chunk, start, start + block_rows)
        block = _from_product(product, q_norms_sq, g_norms_sq, metric)
        ranker.add_block(chunk_start + start, block, "distances", squared)

    for chunk_start in range(0, len(q_feats), chunk_size):
        chunk_feats, chunk_norms_sq = _rows(queries, chunk_start, chunk_start + chunk_size)
        chunk = (chunk_feats @ g_feats.T, chunk_norms_sq)
        blocks = range(0, len(chunk_feats), block_rows)
        _run_blocks(functools.partial(rank_block, chunk, chunk_start), blocks, threads)
        del chunk  # free this chunk's product before the next one is computed
    return ranker.summary(max_rank)


def pairwise_distance(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    """Distances between the rows of a and of b: Euclidean, or cosine (1 - cosine similarity)."""
    a = _validate_features(a, "a")
    b = _validate_features(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b have different feature dimensions: {a.shape[1]} and {b.shape[1]}")
    return _distances(_prepare(a, metric, "a"), _prepare(b, metric, "b"), metric)


def _prepare(feats: np.ndarray, metric: str, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Features ready for the distance product: unit rows for cosine, else the rows and squared norms."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    feats = feats.astype(np.result_type(feats, np.float32), copy=False)
    norms_sq = np.einsum("ij,ij->i", feats, feats)
    # A NaN or Inf feature makes its row's norm NaN or Inf: only then are the features searched.
    if not np.all(np.isfinite(norms_sq)):
        _validate_finite(feats, name)
    if metric == "euclidean":
        return feats, norms_sq
    if not np.all(norms_sq > 0):
        raise ValueError(f"{name} has all-zero rows (e.g. row {int(np.argmin(norms_sq))}); cosine is undefined")
    return feats / np.sqrt(norms_sq)[:, None], None


def _rows(pair: tuple[np.ndarray, np.ndarray | None], start: int, stop: int):
    """Rows start:stop of prepared features, or of a product of them, with their squared norms (or None)."""
    matrix, norms_sq = pair
    return matrix[start:stop], None if norms_sq is None else norms_sq[start:stop]


def _distances(a: tuple[np.ndarray, np.ndarray | None], b: tuple[np.ndarray, np.ndarray | None], metric: str):
    """Distance matrix between prepared features, computed in place around one matrix product."""
    (a_feats, a_norms_sq), (b_feats, b_norms_sq) = a, b
    dist = _from_product(a_feats @ b_feats.T, a_norms_sq, b_norms_sq, metric)
    return _root(dist) if metric == "euclidean" else dist


def _from_product(
    product: np.ndarray, a_norms_sq: np.ndarray | None, b_norms_sq: np.ndarray | None, metric: str
) -> np.ndarray:
    """Cosine distances, or squared Euclidean ones, in place from the matrix product of prepared features."""
    if metric == "cosine":
        return np.subtract(1, product, out=product)
    product *= -2
    product += a_norms_sq[:, None]
    product += b_norms_sq[None, :]
    return product


def _root(squared: np.ndarray) -> np.ndarray:
    """Euclidean distances from the squared ones of `_from_product`, in place."""
    # Rounding can leave tiny negatives where the true distance is 0.
    np.maximum(squared, 0, out=squared)
    return np.sqrt(squared, out=squared)


def _squared_bound(distances: np.ndarray) -> np.ndarray:
    """Per distance d: the largest squared distance whose `_root` is at most d (-inf where d is -inf)."""
    bound = np.full_like(distances, -np.inf)
    kept = distances >= 0
    limit = distances[kept]
    # The rounded square is within an ulp or two of the bound (beyond the dtype's range it is inf, the next
    # float after the largest too); sqrt is correctly rounded, so step to the bound.
    with np.errstate(over="ignore"):
        square = limit * limit
        while np.any(above := _root(square.copy()) > limit):
            square[above] = np.nextafter(square[above], -np.inf)
        while np.any(below := _root(np.nextafter(square, np.inf)) <= limit):
            square[below] = np.nextafter(square[below], np.inf)
    bound[kept] = square
    return bound


class _MatchRanker:
    """Collects the ranks of every query's true matches, block of queries by block, then summarises them."""

    def __init__(self, q_pids, g_pids, q_camids, g_camids):
        self.num_queries, self.num_gallery = len(q_pids), len(g_pids)
        # Every (query, gallery) pair sharing an identity, in query order: the true matches
        # (other camera) and the ignored entries (same camera). There are few, so no dense mask.
        order = np.argsort(g_pids, kind="stable")
        first = np.searchsorted(g_pids[order], q_pids, side="left")
        counts = np.searchsorted(g_pids[order], q_pids, side="right") - first
        rows, positions = _concatenated_ranges(first, counts)
        cols = order[positions]
        cross = g_camids[cols] != q_camids[rows]
        if not cross.any():
            raise ValueError(
                f"no query has a cross-camera match in the gallery: each of the {self.num_queries} queries' "
                "identities is absent from the gallery or appears there only in the query's own camera"
            )
        self.match_rows, self.match_cols = rows[cross], cols[cross]
        self.junk_rows, self.junk_cols = rows[~cross], cols[~cross]
        # Per block, by its first query: the rows and ranks of its matches (blocks may be ranked in any order).
        self.blocks: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def add_block(self, start: int, block: np.ndarray, name: str, squared: bool = False) -> None:
        """Rank the matches of queries start:start+len(block), whose distances are `block` (C-contiguous), or
        their `_root`s if `squared`."""
        # max() propagates NaN and catches +Inf; a -Inf distance is always a candidate, checked there (a -Inf
        # square is the distance 0).
        if not block.max() < np.inf:
            _raise_not_finite(_root(block.copy()) if squared else block, start, name)
        stop = start + len(block)
        match = slice(*np.searchsorted(self.match_rows, [start, stop]))
        junk = slice(*np.searchsorted(self.junk_rows, [start, stop]))
        rows, cols = self.match_rows[match] - start, self.match_cols[match]
        values = _root(block[rows, cols]) if squared else block[rows, cols]
        # Only entries no farther than their query's last match can precede a match; rows without a match
        # keep none (-inf).
        last = np.full(len(block), -np.inf, dtype=block.dtype)
        np.maximum.at(last, rows, values)
        bound = _squared_bound(last) if squared else last
        flat, row_bounds = _candidates(block, bound, self.junk_rows[junk] - start, self.junk_cols[junk])
        e_values = _root(block.ravel()[flat]) if squared else block.ravel()[flat]
        if not np.all(np.isfinite(e_values)):
            _raise_not_finite(block, start, name)
        e_rows = np.repeat(np.arange(len(block)), np.diff(row_bounds))
        keys = np.sort(_order_keys(e_rows, e_values, flat - e_rows * block.shape[1], block.shape[1]))
        match_keys = _order_keys(rows, values, cols, block.shape[1])
        # The matches are candidates themselves: a match's place among the sorted candidates of its
        # row is the number of kept entries before it.
        position = np.searchsorted(keys, match_keys)
        if block.dtype.itemsize > 4:
            position += _wide_tie_correction(keys, block, squared, match_keys, rows, cols, values)
        order = np.argsort(position)
        rows = rows[order]
        self.blocks[start] = (rows + start, position[order] - row_bounds[rows] + 1)

    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        """The query and rank of every match of the blocks added, in query order."""
        rows, ranks = zip(*(self.blocks[start] for start in sorted(self.blocks)))
        return np.concatenate(rows), np.concatenate(ranks)

    def summary(self, max_rank: int) -> dict:
        """The metrics over the valid queries of every block added."""
        rows, ranks = self.ranked()
        num_matches = np.bincount(rows, minlength=self.num_queries)
        valid = num_matches > 0
        num_valid = int(valid.sum())
        first = np.cumsum(num_matches) - num_matches
        position = np.arange(len(ranks)) - first[rows] + 1
        ap = np.bincount(rows, weights=position / ranks, minlength=self.num_queries)[valid] / num_matches[valid]
        first_rank = ranks[first[valid]]
        last_rank = ranks[first[valid] + num_matches[valid] - 1]
        max_rank = min(max_rank, self.num_gallery)
        hits = np.bincount(np.minimum(first_rank, max_rank + 1), minlength=max_rank + 2)[1 : max_rank + 1]
        return {
            "mAP": float(ap.mean()),
            "cmc": np.cumsum(hits) / num_valid,
            "mINP": float(np.mean(num_matches[valid] / last_rank)),
            "num_valid_queries": num_valid,
            "num_skipped_queries": self.num_queries - num_valid,
        }


def _candidates(block, bound, junk_rows, junk_cols):
    """Flat indices of the kept entries no greater than their row's bound, and where each row's start."""
    candidate = block <= bound[:, None]
    candidate[junk_rows, junk_cols] = False
    flat = np.flatnonzero(candidate)
    return flat, np.searchsorted(flat, np.arange(len(block) + 1) * block.shape[1])


def _order_keys(rows, values, cols, num_gallery):
    """uint64 keys that sort as (row, distance, gallery index): float32 distances exactly, wider ones to float32."""
    # Adding 0 turns -0.0 into +0.0, which compares equal to it.
    with np.errstate(over="ignore"):  # a wider distance beyond float32's range rounds to inf, still in order
        code = (values.astype(np.float32, copy=False) + np.float32(0)).view(np.int32)
    # Flipping the magnitude bits of the negative floats makes their bits order as int32s do; flipping the
    # sign bit then makes them order as uint32s.
    code ^= (code >> 31) & np.int32(2**31 - 1)
    code ^= np.int32(-(2**31))
    # Row and column take at most 32 bits beside the code: a block holds at most _BLOCK_ELEMENTS entries
    # (or one row), so this holds for galleries of fewer than 2**31 entries.
    keys = rows.astype(np.uint64) << np.uint64(32)
    keys |= code.view(np.uint32)
    keys <<= np.uint64(_col_bits(num_gallery))
    keys |= cols.astype(np.uint64, copy=False)
    return keys


def _col_bits(num_gallery: int) -> int:
    """Bits of an order key that hold the gallery index."""
    return int(num_gallery - 1).bit_length()


def _wide_tie_correction(keys, block, squared, match_keys, rows, cols, values):
    """Per match: how many more candidates precede it than its float32 key says (distances wider than float32)."""
    # Candidates whose distance rounds to the match's float32 are sorted by gallery index alone:
    # recount those by their exact distance. Outside such a group the float32 order is exact.
    col_bits = np.uint64(_col_bits(block.shape[1]))
    group = (match_keys >> col_bits) << col_bits
    first = np.searchsorted(keys, group)
    sizes = np.searchsorted(keys, group + (np.uint64(1) << col_bits)) - first
    owner, members = _concatenated_ranges(first, sizes)
    member_cols = (keys[members] & ((np.uint64(1) << col_bits) - np.uint64(1))).astype(np.int64)
    member_values = _root(block[rows[owner], member_cols]) if squared else block[rows[owner], member_cols]
    before_exact = (member_values < values[owner]) | ((member_values == values[owner]) & (member_cols < cols[owner]))
    before_keys = member_cols < cols[owner]
    counts = len(match_keys)
    return np.bincount(owner[before_exact], minlength=counts) - np.bincount(owner[before_keys], minlength=counts)


def _concatenated_ranges(starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the ranges starts[i] : starts[i] + sizes[i] laid end to end: each element's range i and value."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return owner, np.repeat(starts - (np.cumsum(sizes) - sizes), sizes) + np.arange(len(owner))


def _raise_not_finite(block: np.ndarray, start: int, name: str) -> None:
    """Raise the error naming the first NaN or Inf of a block of distances."""
    row, col = np.argwhere(~np.isfinite(block))[0]
    raise ValueError(f"{name} contains NaN or Inf (query {start + row}, gallery {col})")


def _run_blocks(rank_block, starts: range, threads: int) -> None:
    """rank_block(start) for each start, on `threads` threads (numpy releases the GIL in the ranking's work)."""
    if threads == 1:
        for start in starts:
            rank_block(start)
        return
    with ThreadPoolExecutor(threads) as pool:
        # Iterating the results re-raises the error of the first block that failed, in block order.
        for _ in pool.map(rank_block, starts):
            pass


def _threads(threads: int | None, num_distances: int) -> int:
    """Threads that rank chunks of `num_distances` distances: `threads`, or one per core."""
    if threads is not None:
        _validate_positive(threads, "threads")
    if num_distances < _THREADED_ELEMENTS:
        return 1
    return threads or os.cpu_count() or 1


def _block_rows(num_gallery: int) -> int:
    """Queries per ranking block."""
    return max(1, _BLOCK_ELEMENTS // num_gallery)


def _validate_ids(q_pids, g_pids, q_camids, g_camids, num_queries: int, num_gallery: int, source: str):
    """The four id arrays as 1-D arrays, checked against the query and gallery sizes of `source`."""
    arrays = []
    for name, ids, expected, side in (
        ("q_pids", q_pids, num_queries, "queries"),
        ("g_pids", g_pids, num_gallery, "gallery entries"),
        ("q_camids", q_camids, num_queries, "queries"),
        ("g_camids", g_camids, num_gallery, "gallery entries"),
    ):
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {ids.shape}")
        if len(ids) != expected:
            raise ValueError(f"{name} has length {len(ids)} but {source} has {expected} {side}")
        arrays.append(ids)
    if num_queries == 0 or num_gallery == 0:
        raise ValueError(f"empty input: {num_queries} queries and {num_gallery} gallery entries in {source}")
    return arrays


def _validate_features(feats: np.ndarray, name: str) -> np.ndarray:
    """A non-empty 2-D feature array (`_prepare` checks that it is finite)."""
    feats = np.asarray(feats)
    if feats.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples x feature dimensions), got shape {feats.shape}")
    if feats.size == 0:
        raise ValueError(f"{name} is empty (shape {feats.shape})")
    return feats


def _validate_finite(feats: np.ndarray, name: str) -> None:
    """Features must be finite."""
    if not np.all(np.isfinite(feats)):
        raise ValueError(f"{name} contains NaN or Inf (row {int(np.argwhere(~np.isfinite(feats))[0, 0])})")


def _validate_positive(value: int, name: str) -> None:
    """`value` (the argument `name`) must be a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
