"""Calibration of "same person?": distances of same-person and different-person cross-camera pairs, their ROC, and
the distance threshold that keeps a chosen false-positive rate (used at export, and to choose linking's threshold
on a validation split), and the model card's calibration: each exported format calibrated on its own embeddings
of the labelled test split, its figure's file name, and the table the export prints.

Distances are Euclidean between L2-normalised embeddings, in [0, 2], as the deployment kit reports them. Pairs are
counted into fine histograms (BINS bins of width 2 / BINS) in row chunks, never as an N x N matrix, so the ROC is
exact at every bin edge and a chosen threshold is a bin edge whose false-positive rate is counted, not estimated.
Two calibrations: `calibrate` of items (one image or tracklet against another: the kit's searches) and
`calibrate_links` of the association rule's per-camera centred proxies, one per (camera, person): what linking
compares.
"""

from __future__ import annotations

import numpy as np

from acan_tf.data.datasets.cameras import NAME as CAMERAS
from acan_tf.data.records import Record, ReIDDataset
from acan_tf.errors import UserError
from acan_tf.training.association import build_proxies

FPR_POINTS = (1e-4, 1e-3, 1e-2)
DEFAULT_FPR = 1e-3
MAX_DISTANCE = 2.0
BINS = 20_000  # a threshold's resolution: 1e-4 in distance
PLOT_BINS = 100
ROC_POINTS = 200
# Similarity entries per row chunk: 2**22 float32 values = 16 MiB.
CHUNK_ELEMENTS = 2**22


class CalibrationError(UserError):
    """A calibration setting is unusable, or the data has no cross-camera pairs to calibrate on."""


def unit_rows(features: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit norm (the norm floored at 1e-12), as training hands features to the association."""
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def identified_records(dataset: ReIDDataset) -> list[Record]:
    """The query and gallery records of identified people: benchmarks mark junk with pid -1 and distractors (one-off
    people) with pid 0, while your own cameras number people from 0."""
    first = 0 if dataset.name == CAMERAS else 1
    return [record for record in (*dataset.query, *dataset.gallery) if record.pid >= first]


def check_fpr(fpr: float, flag: str = "--calibration_fpr") -> None:
    """Accepts a false-positive rate strictly between 0 and 1."""
    if not 0.0 < fpr < 1.0:
        raise CalibrationError(f"{flag}={fpr}: expected a false-positive rate in (0, 1), e.g. {DEFAULT_FPR:g}")


def check_distance_threshold(threshold: float | None, flag: str = "--threshold") -> None:
    """Accepts None or a distance between L2-normalised embeddings, in [0, 2]."""
    if threshold is not None and not 0.0 <= threshold <= MAX_DISTANCE:
        raise CalibrationError(f"{flag}={threshold}: a distance between L2-normalised embeddings lies in "
                               f"[0, {MAX_DISTANCE:g}]")


def distance_to_similarity(distance: float) -> float:
    """The cosine similarity of unit vectors at Euclidean `distance`: 1 - d^2 / 2."""
    return 1.0 - distance**2 / 2.0


def pair_histograms(embeddings: np.ndarray, cameras: np.ndarray, pids: np.ndarray, bins: int = BINS
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Counts [bins] over [0, 2] of the distances of same-person and of different-person pairs of items from
    different cameras, each unordered pair once; rows are L2-normalised first."""
    embeddings = unit_rows(embeddings)
    cameras, pids = np.asarray(cameras), np.asarray(pids)
    count = len(embeddings)
    positive, negative = np.zeros(bins, dtype=np.int64), np.zeros(bins, dtype=np.int64)
    chunk = max(1, CHUNK_ELEMENTS // max(count, 1))
    for start in range(0, count, chunk):
        stop = min(start + chunk, count)
        # Rows start..stop against columns start..count: every pair (i, j > i) is seen once.
        products = embeddings[start:stop] @ embeddings[start:].T
        distances = np.sqrt(np.maximum(2.0 - 2.0 * products, 0.0))
        rows, columns = np.arange(start, stop)[:, None], np.arange(start, count)[None, :]
        cross = (columns > rows) & (cameras[rows] != cameras[columns])
        same = pids[rows] == pids[columns]
        index = np.minimum((distances * (bins / MAX_DISTANCE)).astype(np.int64), bins - 1)
        positive += np.bincount(index[cross & same], minlength=bins)
        negative += np.bincount(index[cross & ~same], minlength=bins)
    return positive, negative


def roc(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, TPR, FPR) [bins + 1] at every bin edge t: the shares of pairs with distance < t."""
    thresholds = np.linspace(0.0, MAX_DISTANCE, len(positive) + 1)
    tpr = np.r_[0, np.cumsum(positive)] / max(int(positive.sum()), 1)
    fpr = np.r_[0, np.cumsum(negative)] / max(int(negative.sum()), 1)
    return thresholds, tpr, fpr


def operating_point(thresholds: np.ndarray, tpr: np.ndarray, fpr: np.ndarray, target: float) -> dict:
    """The largest threshold whose false-positive rate is at most `target`, with its TPR and FPR."""
    index = int(np.flatnonzero(fpr <= target)[-1])  # fpr[0] = 0: always found
    return {"threshold": float(thresholds[index]), "tpr": float(tpr[index]), "fpr": float(fpr[index])}


def coarse_histograms(positive: np.ndarray, negative: np.ndarray, bins: int = PLOT_BINS) -> dict:
    """The fine histograms summed into about `bins` bins over the distances that occur (from 0), for the figure:
    a model whose distances all lie below 0.05 still gets a readable histogram."""
    occupied = int(np.flatnonzero(positive + negative)[-1]) + 1
    group = -(-occupied // bins)  # fine bins per coarse bin, rounded up
    count = -(-occupied // group)

    def regroup(counts: np.ndarray) -> list[int]:
        return np.pad(counts[:occupied], (0, count * group - occupied)).reshape(count, group).sum(1).tolist()

    width = MAX_DISTANCE / len(positive)
    return {"edges": (np.arange(count + 1) * group * width).tolist(), "same_person": regroup(positive),
            "different_person": regroup(negative)}


def calibrate(embeddings: np.ndarray, cameras: np.ndarray, pids: np.ndarray, fpr: float = DEFAULT_FPR) -> dict:
    """The calibration of labelled items (JSON-ready): pair counts, TPR at FPR_POINTS, the threshold at `fpr`,
    a sampled ROC and coarse histograms for the figures."""
    check_fpr(fpr)
    positive, negative = pair_histograms(embeddings, cameras, pids)
    if not positive.sum() or not negative.sum():
        raise CalibrationError(
            f"no {'same' if not positive.sum() else 'different'}-person pairs across cameras among "
            f"{len(embeddings)} labelled items: nothing to calibrate on")
    thresholds, tpr, fpr_values = roc(positive, negative)
    # The figures' ROC: log-spaced in FPR where thresholds matter, with the exact points at FPR_POINTS.
    wanted = np.unique(np.r_[np.geomspace(1e-5, 1.0, ROC_POINTS), FPR_POINTS])
    sampled = np.unique([np.flatnonzero(fpr_values <= value)[-1] for value in wanted])
    return {
        "distance": "Euclidean between L2-normalised embeddings (0: identical, 2: opposite)",
        "pairs": {"same_person": int(positive.sum()), "different_person": int(negative.sum()),
                  "counted": "unordered pairs of items from different cameras"},
        "fpr_target": fpr,
        **operating_point(thresholds, tpr, fpr_values, fpr),
        "tpr_at_fpr": {f"{value:g}": operating_point(thresholds, tpr, fpr_values, value)["tpr"]
                       for value in FPR_POINTS},
        "roc": {"threshold": thresholds[sampled].tolist(), "tpr": tpr[sampled].tolist(),
                "fpr": fpr_values[sampled].tolist()},
        "histogram": coarse_histograms(positive, negative),
    }


def calibrate_links(embeddings: np.ndarray, cameras: np.ndarray, pids: np.ndarray, fpr: float = DEFAULT_FPR,
                    centre_per_camera: bool = True) -> dict:
    """The calibration of the association rule's proxies (one per (camera, person), centred per camera as the rule
    centres them), with the threshold as the rule takes it: a cosine similarity."""
    _, person_index = np.unique(np.asarray(pids), return_inverse=True)  # the rule wants non-negative local ids
    # Unit items, as training hands them to the rule: a proxy is the mean direction of its items.
    proxies = build_proxies(unit_rows(embeddings), np.asarray(cameras, dtype=np.int64),
                            person_index.reshape(-1).astype(np.int64), centre_per_camera)
    # A camera's only proxy is zero once centred: it has no direction and is never linked.
    directed = np.any(proxies.features != 0, axis=1)
    calibration = calibrate(proxies.features[directed], proxies.cameras[directed], proxies.local_ids[directed], fpr)
    calibration["similarity_threshold"] = distance_to_similarity(calibration["threshold"])
    calibration["centre_per_camera"] = centre_per_camera
    return calibration


def figure_file(format_name: str) -> str:
    """The calibration figure of one format, in the export folder."""
    return f"calibration_{format_name}.png"


def format_table(calibrations: dict[str, dict]) -> str:
    """The printed table: per format and kind, pair counts, TPR at FPR_POINTS and the chosen threshold."""
    header = ["format", "pairs of", "same person", "different"] + [f"TPR@FPR={value:g}" for value in FPR_POINTS] + \
        ["threshold (FPR)"]
    rows = [header]
    for name, kinds in calibrations.items():
        for kind, figures in kinds.items():
            rows.append([name, kind, str(figures["pairs"]["same_person"]), str(figures["pairs"]["different_person"])]
                        + [f"{100 * figures['tpr_at_fpr'][f'{value:g}']:.2f} %" for value in FPR_POINTS]
                        + [f"{figures['threshold']:.4f} ({figures['fpr']:.2g})"])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


def export_calibration(embeddings: dict[str, np.ndarray], cameras: np.ndarray, pids: np.ndarray, fpr: float,
                       centre_per_camera: bool, split: dict) -> dict:
    """The model card's calibration: each format's `items` and `links` calibration on its own test embeddings."""
    formats = {name: {"items": calibrate(values, cameras, pids, fpr),
                      "links": calibrate_links(values, cameras, pids, fpr, centre_per_camera)}
               for name, values in embeddings.items()}
    return {"status": "calibrated", "split": split, "fpr_target": fpr, "formats": formats}


def uncalibrated(reason: str, threshold: float | None) -> dict:
    """The model card's calibration when there is no labelled split: the reason, and the user's threshold if any."""
    check_distance_threshold(threshold)
    return {"status": "uncalibrated" if threshold is None else "user", "reason": reason, "threshold": threshold}
