"""Held-out frames of each local id: what retrieval can still measure when a dataset has no cross-camera labels.

Of every (camera, local id) with enough items, the first item (by path: the earliest frame of an ingested track)
becomes a gallery entry and the last one a query, and both leave training; the query must find its own local id's
gallery entry among the held-out items of its camera (acan_tf.evaluation.intra_camera). Nothing crosses cameras.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from acan_tf.data.records import Record, frame_paths

MIN_ITEMS = 4  # a local id keeps at least two items for training after giving one query and one gallery entry


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """Training records without the held-out items, and the held-out queries and gallery (camera-local pids)."""

    train: tuple[Record, ...]
    query: tuple[Record, ...]
    gallery: tuple[Record, ...]


def hold_out_frames(records: Sequence[Record], min_items: int = MIN_ITEMS) -> HeldOut:
    """The first and last item of each (camera, local id) with at least `min_items` items, held out of training."""
    items: dict[tuple[int, int], list[Record]] = {}
    for record in records:
        items.setdefault((record.camid, record.pid), []).append(record)
    query, gallery, held = [], [], set()
    for key in sorted(items):
        ordered = sorted(items[key], key=frame_paths)
        if len(ordered) >= min_items:
            gallery.append(ordered[0])
            query.append(ordered[-1])
            held.update((id(ordered[0]), id(ordered[-1])))
    return HeldOut(tuple(r for r in records if id(r) not in held), tuple(query), tuple(gallery))
