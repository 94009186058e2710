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


def card_threshold(card: Optional[dict], format_name: str, requested: str = "auto") -> Optional[float]:
    """The same-person distance threshold that --threshold asks for: a number in [0, 2] as given, `card` the model
    card's (an error if it has none), `auto` the card's if it has one, `none` no threshold."""
    if requested not in ("auto", "card", "none"):
        try:
            value = float(requested)
        except ValueError:
            raise ValueError(f"--threshold={requested}: expected auto, card, none or a distance in [0, 2]") from None
        if not 0.0 <= value <= 2.0:
            raise ValueError(f"--threshold={requested}: a distance between L2-normalised embeddings lies in [0, 2]")
        return value
    if requested == "none":
        return None
    calibration = (card or {}).get("calibration", {})
    if calibration.get("status") == "user":
        return float(calibration["threshold"])
    formats = calibration.get("formats", {})
    if calibration.get("status") == "calibrated" and format_name in formats:
        return float(formats[format_name]["items"]["threshold"])
    if requested == "card":
        raise ValueError(
            f"--threshold=card: the model card has no calibrated threshold for {format_name} "
            f"({calibration.get('reason', 'no model.json, or an export made before calibration')}); export the run "
            "with its labelled test split present (python -m acan_tf.export), or pass --threshold=DISTANCE")
    return None


def embedding_records(names: list[str], embeddings: np.ndarray) -> list[dict]:
    """One {"item", "embedding"} record per item."""
    return [{"item": name, "embedding": [float(v) for v in row]} for name, row in zip(names, embeddings)]


def match_records(
    query_names: list[str], query: np.ndarray, gallery_names: list[str], gallery: np.ndarray, top_k: int,
    threshold: Optional[float] = None,
) -> list[dict]:
    """One {"query", "matches": [{"item", "distance"}, ...]} record per query, nearest match first; with a threshold
    only matches within it, and "no_match": true when none is."""
    order, distances = top_matches(query, gallery, top_k)
    records = []
    for name, row, dist in zip(query_names, order, distances):
        matches = [{"item": gallery_names[j], "distance": float(d)} for j, d in zip(row, dist)
                   if threshold is None or d <= threshold]
        record = {"query": name, "matches": matches}
        if threshold is not None:
            record.update(threshold=threshold, no_match=not matches)
        records.append(record)
    return records


def answer_records(
    queries: Sequence[Item],
    gallery: Optional[Sequence[Item]],
    embed: Callable[[Sequence[Item]], np.ndarray],
    top_k: int,
    threshold: Optional[float] = None,
    embed_gallery: Optional[Callable[[Sequence[Item]], np.ndarray]] = None,
) -> list[dict]:
    """The records printed for `queries`: their embeddings, or with a gallery their nearest gallery items (within
    `threshold`, if given).

    `embed_gallery` embeds the gallery when it differs from the queries' (another camera's normalisation).
    """
    query = embed(queries)
    names = [name for name, _ in queries]
    if gallery is None:
        return embedding_records(names, query)
    return match_records(names, query, [name for name, _ in gallery], (embed_gallery or embed)(gallery), top_k,
                         threshold)
