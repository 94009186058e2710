"""Dataset summary tables: identities, images (or tracklets) and cameras per split, and per training camera."""

from __future__ import annotations

from typing import Sequence

from acan_tf.data.records import Record, ReIDDataset


def identities_per_camera(records: Sequence[Record]) -> dict[int, int]:
    """Number of distinct person ids seen by each camera, keyed by camid."""
    pids: dict[int, set[int]] = {}
    for record in records:
        pids.setdefault(record.camid, set()).add(record.pid)
    return {camid: len(camera_pids) for camid, camera_pids in sorted(pids.items())}


def dropped_cameras(dataset: ReIDDataset, min_ids_per_camera: int) -> tuple[int, ...]:
    """Camids of the data whose training set has fewer than `min_ids_per_camera` identities (they cannot fill P)."""
    counts = identities_per_camera(dataset.train)
    return tuple(camid for camid in dataset.cameras if counts.get(camid, 0) < min_ids_per_camera)


def summarize(dataset: ReIDDataset, min_ids_per_camera: int | None = None) -> str:
    """A printable table of the splits and of the training identities per camera."""
    unit = "tracklets" if dataset.is_video else "images"
    splits = (("train", dataset.train), ("query", dataset.query), ("gallery", dataset.gallery))
    split_rows = [
        (split, len({r.pid for r in records}), len(records), len({r.camid for r in records}))
        for split, records in splits
    ]
    ids = identities_per_camera(dataset.train)
    camera_header: tuple[str, ...] = ("camera", "# ids", f"# {unit}")
    camera_rows = [
        (dataset.camera_names[camid], ids.get(camid, 0), sum(r.camid == camid for r in dataset.train))
        for camid in dataset.cameras
    ]
    if min_ids_per_camera is not None:
        dropped = dropped_cameras(dataset, min_ids_per_camera)
        camera_header += ("training",)
        camera_rows = [
            row + (f"dropped (< {min_ids_per_camera} ids)" if camid in dropped else "kept",)
            for camid, row in zip(dataset.cameras, camera_rows)
        ]
    return "\n".join(
        [f"{dataset.name} at {dataset.root}: {len(dataset.cameras)} cameras"]
        + _table(("subset", "# ids", f"# {unit}", "# cameras"), split_rows)
        + ["train identities per camera:"]
        + _table(camera_header, camera_rows)
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Lines of a table with a ruled header; text columns left-aligned, numbers right-aligned."""
    cells = [list(map(str, header))] + [[str(value) for value in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    numeric = [all(isinstance(row[column], int) for row in rows) for column in range(len(header))]

    def line(row: list[str]) -> str:
        padded = (c.rjust(w) if is_num else c.ljust(w) for c, w, is_num in zip(row, widths, numeric))
        return ("  " + " | ".join(padded)).rstrip()

    rule = "  " + "-" * (sum(widths) + 3 * (len(widths) - 1))
    return [rule, line(cells[0]), rule] + [line(row) for row in cells[1:]] + [rule]
