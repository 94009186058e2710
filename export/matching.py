"""Embeddings to answers: tracklet averaging, nearest gallery items, the JSON lines the kit prints. Needs only numpy."""

from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

# An item is (name, image paths): one image, or the frames of one tracklet.
Item = Tuple[str, List[str]]


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm (the norm floored at 1e-12, as in training's evaluation)."""
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)


def tracklet_embedding(frame_features: np.ndarray) -> np.ndarray:
    """A tracklet's embedding [D]: the L2-normalised mean of its frames' unnormalised features [T, D]."""
    return l2_normalize(frame_features.mean(axis=0))


def top_matches(query: np.ndarray, gallery: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, Euclidean distances) [Q, k] of each query's k nearest gallery embeddings, nearest first."""
    # float64: in float32 the expansion's rounding (~1e-7) becomes ~3e-4 after the sqrt at distance 0.
    query, gallery = query.astype(np.float64), gallery.astype(np.float64)
    squared = (query**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :] - 2.0 * query @ gallery.T
    distances = np.sqrt(np.maximum(squared, 0.0))
    order = np.argsort(distances, axis=1, kind="stable")[:, :top_k]
    return order, np.take_along_axis(distances, order, axis=1)


def embedding_records(names: list[str], embeddings: np.ndarray) -> list[dict]:
    """One {"item", "embedding"} record per item."""
    return [{"item": name, "embedding": [float(v) for v in row]} for name, row in zip(names, embeddings)]


def match_records(
    query_names: list[str], query: np.ndarray, gallery_names: list[str], gallery: np.ndarray, top_k: int
) -> list[dict]:
    """One {"query", "matches": [{"item", "distance"}, ...]} record per query, nearest match first."""
    order, distances = top_matches(query, gallery, top_k)
    return [
        {"query": name, "matches": [{"item": gallery_names[j], "distance": float(d)} for j, d in zip(row, dist)]}
        for name, row, dist in zip(query_names, order, distances)
    ]


def answer_records(
    queries: Sequence[Item],
    gallery: Optional[Sequence[Item]],
    embed: Callable[[Sequence[Item]], np.ndarray],
    top_k: int,
    embed_gallery: Optional[Callable[[Sequence[Item]], np.ndarray]] = None,
) -> list[dict]:
    """The records printed for `queries`: their embeddings, or with a gallery their nearest gallery items.

    `embed_gallery` embeds the gallery when it differs from the queries' (another camera's normalisation).
    """
    query = embed(queries)
    names = [name for name, _ in queries]
    if gallery is None:
        return embedding_records(names, query)
    return match_records(names, query, [name for name, _ in gallery], (embed_gallery or embed)(gallery), top_k)
