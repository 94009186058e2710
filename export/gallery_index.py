"""A persistent gallery index: add embeddings with item metadata, search top-k under a distance threshold, remove,
save, load. Needs only numpy; faiss-cpu, where installed, answers the searches.

Embeddings are L2-normalised (the exported model's output), so the Euclidean distance the kit reports is
sqrt(2 - 2 * inner product) and ranking by inner product is ranking by distance. Backends:
- `numpy`: brute force over every stored embedding, in gallery chunks; the reference, and the fallback without faiss.
- `faiss`: an exact inner-product index (IndexFlatIP) while the gallery holds fewer than `exact_below` items, and an
  inverted-file index (IndexIVFFlat, approximate: it scans the `nprobe` lists nearest the query) from then on; the
  lists are trained on the gallery when it crosses that size (`rebuild()` trains them again on a grown gallery);
  `choose_nprobe` sets `nprobe` by the recall it measures on held-out queries.

A saved index carries the encoder's embedding size and model hash (model.json's `model_hash`): loading it for
another encoder is refused, naming both. The file is written to a temporary sibling and renamed, and a SHA-256 of
its contents is checked on loading, so a truncated or corrupt file is refused by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import struct
import uuid
from typing import Sequence

import numpy as np

try:
    import faiss
except ImportError:  # the NumPy reference answers every search
    faiss = None

BACKENDS = ("auto", "numpy", "faiss")
EXACT_BELOW = 50_000
TARGET_RECALL = 0.97  # choose_nprobe's default: recall@10 against exact search, a margin above the usual 0.95
MAGIC = b"ACANIDX1"
FORMAT_VERSION = 1
MAX_DISTANCE = 2.0  # between unit vectors
METADATA_KEYS = ("camera", "time", "source")
# Gallery rows per brute-force block: bounds the [queries, block] product whatever the gallery size.
NUMPY_BLOCK = 65_536


class GalleryIndexError(ValueError):
    """An index file or an index operation is unusable; the message names the file or the argument."""


@dataclasses.dataclass(frozen=True)
class Match:
    """One gallery item found for a query: its id, Euclidean distance and metadata (camera, time, source...)."""

    id: int
    distance: float
    metadata: dict


def check_threshold(threshold: float | None, name: str = "threshold") -> None:
    """Accepts None (no threshold) or a Euclidean distance between unit vectors, in [0, 2]."""
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= threshold <= MAX_DISTANCE):
        raise GalleryIndexError(f"{name}={threshold}: a distance between L2-normalised embeddings lies in "
                                f"[0, {MAX_DISTANCE:g}]")


def inner_products_to_distances(products: np.ndarray) -> np.ndarray:
    """Euclidean distances of unit vectors from their inner products: sqrt(2 - 2 p), floored at 0."""
    return np.sqrt(np.maximum(2.0 - 2.0 * products.astype(np.float64), 0.0))


def exact_top_k(queries: np.ndarray, gallery: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, inner products) [Q, k] of each query's k largest inner products with `gallery`, largest first;
    NumPy brute force in gallery blocks, so memory stays O(Q x block) at any gallery size."""
    top_k = min(top_k, len(gallery))
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    best_products = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(gallery), NUMPY_BLOCK):
        products = queries @ gallery[start:start + NUMPY_BLOCK].T
        rows = np.broadcast_to(np.arange(start, start + products.shape[1]), products.shape)
        products, rows = np.concatenate([best_products, products], 1), np.concatenate([best_rows, rows], 1)
        if products.shape[1] > top_k:
            keep = np.argpartition(-products, top_k - 1, axis=1)[:, :top_k]
            products, rows = np.take_along_axis(products, keep, 1), np.take_along_axis(rows, keep, 1)
        best_products, best_rows = products, rows
    # Largest first; equal products by row, so the order never depends on the blocks.
    order = np.lexsort((best_rows, -best_products), axis=1) if best_rows.size else best_rows
    return np.take_along_axis(best_rows, order, 1), np.take_along_axis(best_products, order, 1)


def recall_at_k(found: Sequence[Sequence[int]], exact: Sequence[Sequence[int]]) -> float:
    """Mean over queries of the share of each query's exact top-k (`exact`) that `found` holds."""
    return float(np.mean([len(set(np.asarray(a).tolist()) & set(np.asarray(b).tolist())) / len(b)
                          for a, b in zip(found, exact)]))


class GalleryIndex:
    """Embeddings [N, D] of one encoder with an id and a metadata dict per item; searchable by distance."""

    def __init__(self, dimension: int, model_hash: str, backend: str = "auto", exact_below: int = EXACT_BELOW,
                 nlist: int | None = None, nprobe: int | None = None):
        if not isinstance(dimension, int) or dimension < 1:
            raise GalleryIndexError(f"dimension={dimension}: expected a positive integer")
        if backend not in BACKENDS:
            raise GalleryIndexError(f"backend={backend}: expected one of {', '.join(BACKENDS)}")
        if backend == "faiss" and faiss is None:
            raise GalleryIndexError("backend=faiss: faiss is not installed (pip install faiss-cpu)")
        if exact_below < 1 or (nlist is not None and nlist < 1) or (nprobe is not None and nprobe < 1):
            raise GalleryIndexError("exact_below, nlist and nprobe must be positive integers")
        self.dimension, self.model_hash = dimension, str(model_hash)
        self.backend = "numpy" if backend == "numpy" or (backend == "auto" and faiss is None) else "faiss"
        self.exact_below, self.nlist, self.nprobe = exact_below, nlist, nprobe
        self._embeddings = np.zeros((0, dimension), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._metadata: list[dict] = []
        self._next_id = 0
        self._faiss = None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def kind(self) -> str:
        """What answers searches: "numpy" (exact), "flat" (faiss, exact) or "ivf" (faiss, approximate)."""
        if self.backend == "numpy":
            return "numpy"
        return "ivf" if self._faiss is not None and _is_ivf(self._faiss) else "flat"

    def add(self, embeddings: np.ndarray, metadata: Sequence[dict] | None = None) -> np.ndarray:
        """Adds embeddings [N, D] (each with a metadata dict: camera, time, source...); returns their new ids [N]."""
        embeddings = self._check_embeddings(embeddings, "embeddings")
        metadata = [{} for _ in embeddings] if metadata is None else [dict(item) for item in metadata]
        if len(metadata) != len(embeddings):
            raise GalleryIndexError(f"metadata: {len(metadata)} entries for {len(embeddings)} embeddings")
        try:
            json.dumps(metadata)
        except (TypeError, ValueError) as error:
            raise GalleryIndexError(f"metadata: every value must be JSON (text, numbers, lists, dicts): {error}") \
                from error
        ids = np.arange(self._next_id, self._next_id + len(embeddings), dtype=np.int64)
        self._embeddings = np.concatenate([self._embeddings, embeddings])
        self._ids = np.concatenate([self._ids, ids])
        self._metadata.extend(metadata)
        self._next_id += len(embeddings)
        if self.backend == "faiss":
            if self._faiss is None or (not _is_ivf(self._faiss) and len(self) >= self.exact_below):
                self.rebuild()
            else:
                self._faiss.add_with_ids(embeddings, ids)
        return ids

    def remove(self, ids: Sequence[int]) -> None:
        """Removes the items with these ids; an unknown id is an error and removes nothing."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        unknown = np.setdiff1d(ids, self._ids)
        if len(unknown):
            raise GalleryIndexError(f"ids: {len(unknown)} not in the index (first: {int(unknown[0])}); nothing removed")
        keep = ~np.isin(self._ids, ids)
        self._embeddings, self._ids = self._embeddings[keep], self._ids[keep]
        self._metadata = [item for item, kept in zip(self._metadata, keep) if kept]
        if self._faiss is not None:
            self._faiss.remove_ids(ids)

    def rebuild(self) -> None:
        """Builds the faiss index anew from the stored embeddings (IVF lists retrained above `exact_below`)."""
        if self.backend != "faiss":
            return
        if len(self) >= self.exact_below:
            nlist = self.nlist or default_nlist(len(self))
            quantizer = faiss.IndexFlatIP(self.dimension)
            index = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_INNER_PRODUCT)
            # faiss warns below 39 points per list and gains little above 64: a seeded sample of 64 per list.
            sample = np.random.default_rng(0).choice(len(self), min(len(self), 64 * nlist), replace=False)
            index.train(self._embeddings[np.sort(sample)])
            index.nprobe = self.nprobe or default_nprobe(nlist)
        else:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        index.add_with_ids(self._embeddings, self._ids)
        self._faiss = index

    def search(self, queries: np.ndarray, top_k: int = 10, threshold: float | None = None) -> list[list[Match]]:
        """Each query's (at most) k nearest items, nearest first, keeping those within distance `threshold`;
        an empty list is the answer "no match within the threshold"."""
        queries = self._check_embeddings(queries, "queries")
        if not isinstance(top_k, (int, np.integer)) or top_k < 1:
            raise GalleryIndexError(f"top_k={top_k}: expected a positive integer")
        check_threshold(threshold)
        rows, products = self._search_rows(queries, top_k)
        distances = inner_products_to_distances(products)
        answers = []
        for row_list, distance_list in zip(rows, distances):
            answers.append([Match(int(self._ids[row]), float(distance), self._metadata[row])
                            for row, distance in zip(row_list, distance_list)
                            if row >= 0 and (threshold is None or distance <= threshold)])
        return answers

    def _search_rows(self, queries: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """(storage rows, inner products) [Q, k'] of each query's nearest items by the backend; row -1: none found."""
        if not len(self):
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        if self._faiss is None:
            return exact_top_k(queries, self._embeddings, top_k)
        products, ids = self._faiss.search(queries, min(top_k, len(self)))
        # faiss answers with our ids; map them back to storage rows (ids stay sorted: added in increasing order).
        rows = np.searchsorted(self._ids, ids)
        found = ids >= 0
        return np.where(found, np.minimum(rows, len(self) - 1), -1), products

    def choose_nprobe(self, held_out_queries: np.ndarray, target_recall: float = TARGET_RECALL,
                      top_k: int = 10) -> dict[int, float]:
        """Sets the IVF index's nprobe to the smallest (of 1, 2, 4, ..., nlist) whose recall@top_k against exact
        search reaches `target_recall` on `held_out_queries`; returns the recall measured at each nprobe tried."""
        # The queries must be held out from those the index will be judged on: recall measured on the queries that
        # chose nprobe is biased upwards.
        if self.kind != "ivf":
            raise GalleryIndexError(f"choose_nprobe: the index is {self.kind} (exact), not ivf: nothing to choose; "
                                    f"it becomes ivf from exact_below={self.exact_below} items")
        if not 0.0 < target_recall <= 1.0:
            raise GalleryIndexError(f"target_recall={target_recall}: expected a recall in (0, 1]")
        queries = self._check_embeddings(held_out_queries, "held_out_queries")
        exact, _ = exact_top_k(queries, self._embeddings, top_k)
        recalls = {}
        nlist, nprobe = self._faiss.nlist, 1
        while True:
            self._faiss.nprobe = nprobe
            found, _ = self._search_rows(queries, top_k)
            recalls[nprobe] = recall_at_k(found, exact)
            if recalls[nprobe] >= target_recall or nprobe >= nlist:
                break
            nprobe = min(2 * nprobe, nlist)
        self.nprobe = nprobe
        return recalls

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids [N], embeddings [N, D]) of the stored items."""
        return self._ids.copy(), self._embeddings.copy()

    def metadata(self, item_id: int) -> dict:
        """The metadata of one item."""
        row = np.searchsorted(self._ids, item_id)
        if row >= len(self) or self._ids[row] != item_id:
            raise GalleryIndexError(f"id {item_id}: not in the index")
        return self._metadata[row]

    def _check_embeddings(self, values: np.ndarray, name: str) -> np.ndarray:
        """`values` as contiguous float32 [N, D] of this index's D, finite."""
        values = np.asarray(values)
        if values.ndim != 2 or values.shape[1] != self.dimension or not np.issubdtype(values.dtype, np.number):
            raise GalleryIndexError(f"{name}: expected numbers of shape [N, {self.dimension}], got {values.shape}")
        if not np.isfinite(values).all():
            raise GalleryIndexError(f"{name}: contains NaN or infinity")
        return np.ascontiguousarray(values, dtype=np.float32)

    def save(self, path: str) -> None:
        """Writes the index to `path` atomically (a temporary sibling, then a rename)."""
        sections = {"ids": self._ids.tobytes(), "embeddings": self._embeddings.tobytes(),
                    "metadata": json.dumps(self._metadata).encode()}
        if self._faiss is not None:
            sections["faiss"] = faiss.serialize_index(self._faiss).tobytes()
        header = {"format_version": FORMAT_VERSION, "dimension": self.dimension, "model_hash": self.model_hash,
                  "count": len(self), "next_id": self._next_id, "backend": self.backend,
                  "exact_below": self.exact_below, "nlist": self.nlist, "nprobe": self.nprobe,
                  "sections": {name: len(data) for name, data in sections.items()},
                  "sha256": _digest(sections.values())}
        encoded = json.dumps(header).encode()
        folder = os.path.dirname(os.path.abspath(path))
        temporary = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as handle:
                handle.write(MAGIC + struct.pack("<Q", len(encoded)) + encoded)
                for data in sections.values():
                    handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

    @classmethod
    def load(cls, path: str, dimension: int | None = None, model_hash: str | None = None,
             backend: str = "auto") -> GalleryIndex:
        """The index saved at `path`; refused if it was built by another encoder than (dimension, model_hash)."""
        header, sections = _read_file(path)
        if (dimension is not None and header["dimension"] != dimension) or \
                (model_hash is not None and header["model_hash"] != str(model_hash)):
            raise GalleryIndexError(
                f"{path}: built by encoder {header['model_hash']} ({header['dimension']}-d), not by this one "
                f"({model_hash}, {dimension}-d); build the index again with this model")
        if backend == "auto":
            backend = header["backend"] if header["backend"] == "numpy" or faiss is not None else "numpy"
        index = cls(header["dimension"], header["model_hash"], backend, header["exact_below"], header["nlist"],
                    header["nprobe"])
        count, size = header["count"], header["dimension"]
        try:
            index._ids = np.frombuffer(sections["ids"], dtype=np.int64).copy()
            index._embeddings = np.frombuffer(sections["embeddings"], dtype=np.float32).reshape(count, size).copy()
            index._metadata = json.loads(sections["metadata"])
        except (ValueError, KeyError) as error:
            raise GalleryIndexError(f"{path}: corrupt index file ({error})") from error
        if len(index._ids) != count or len(index._metadata) != count:
            raise GalleryIndexError(f"{path}: corrupt index file (its sections disagree on the item count)")
        index._next_id = header["next_id"]
        if index.backend == "faiss":
            if "faiss" in sections:
                index._faiss = faiss.deserialize_index(np.frombuffer(sections["faiss"], dtype=np.uint8))
            else:
                index.rebuild()
        return index


def default_nlist(count: int) -> int:
    """IVF lists for a gallery of `count` items: about sqrt(count), a power of two, at least 16."""
    return max(16, 2 ** round(math.log2(math.sqrt(count))))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query: 1/16 of them, at least 8 (benchmarks/index.py: recall@10 >= 0.95 on Re-ID-like
    galleries of 100k and 1M items)."""
    return min(nlist, max(8, nlist // 16))


def _is_ivf(index) -> bool:
    return isinstance(index, faiss.IndexIVF)


def _digest(parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _read_file(path: str) -> tuple[dict, dict[str, bytes]]:
    """The header and sections of an index file, checked: magic, header, sizes, SHA-256."""
    if not os.path.isfile(path):
        raise GalleryIndexError(f"{path}: no such index file")
    with open(path, "rb") as handle:
        data = handle.read()
    stream = io.BytesIO(data)
    if stream.read(len(MAGIC)) != MAGIC:
        raise GalleryIndexError(f"{path}: not a gallery index file (it does not start with {MAGIC.decode()})")
    try:
        (length,) = struct.unpack("<Q", stream.read(8))
        header = json.loads(stream.read(length))
        sizes = header["sections"]
        sections = {name: stream.read(size) for name, size in sizes.items()}
        whole = all(len(sections[name]) == size for name, size in sizes.items()) and not stream.read(1)
    except (struct.error, ValueError, KeyError, TypeError, AttributeError) as error:
        raise GalleryIndexError(f"{path}: corrupt or truncated index file ({error})") from error
    if not whole or _digest(sections.values()) != header.get("sha256"):
        raise GalleryIndexError(f"{path}: corrupt or truncated index file (its contents do not match the "
                                "checksum it was saved with); build or copy it again")
    if header.get("format_version") != FORMAT_VERSION:
        raise GalleryIndexError(f"{path}: index format {header.get('format_version')}, this kit reads "
                                f"{FORMAT_VERSION}")
    return header, sections
