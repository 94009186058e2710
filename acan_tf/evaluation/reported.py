"""The reported metrics, defined once: their names in logs, TensorBoard and report.json, their order and format.

Every table (the training command's, the evaluation command's, the experiments' summaries), the `val_*` logs
and TensorBoard scalars, and the `final` and `evaluations` entries of report.json read this list.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Metric:
    """One reported scalar: its key, its titles (a row of the printed table, a column of a results table), and
    whether it is shown in %."""

    key: str
    title: str
    column: str
    percent: bool
    section: str  # the printed table's section


RANKING = "Re-ID (Market-1501 protocol)"
# What every table and report states about the camera-normalised metrics: where the statistics come from.
CAMERA_STATISTICS_SOURCE = ("unlabelled per-camera statistics of the test images: each camera's mean L2-normalised "
                            "embedding over the query and gallery images of that camera (no identity read), "
                            "subtracted, then L2-normalised")
CAMERA_NORMALISED = ("Re-ID, camera-normalised (Market-1501 protocol; unlabelled per-camera statistics of the test "
                     "images)")
CAMERA_NORMALISED_SUFFIX = "_camnorm"
ALIGNMENT = "Camera alignment"
ASSOCIATION = "Cross-camera association (last round, measured against the true ids)"
# Without cross-camera labels (your own cameras with no query/ and gallery/): what can still be measured.
INTRA_CAMERA = ("No cross-camera labels exist, so retrieval across cameras cannot be measured.\n"
                "Intra-camera retrieval (held-out first and last frames of each local id)")
UNLABELLED_ASSOCIATION = "Cross-camera association (last round, without labels)"
# acan_tf.evaluation.linking's figures, under the keys of its document (evaluate --link, the experiments' runs).
LINKING = ("Linking held-out people across cameras (the test split's (camera, person) groups; threshold chosen on "
           "validation identities)")
_RANKING = (
    Metric("mAP", "mAP", "mAP", True, RANKING),
    Metric("rank1", "rank-1", "Rank-1", True, RANKING),
    Metric("rank5", "rank-5", "Rank-5", True, RANKING),
    Metric("rank10", "rank-10", "Rank-10", True, RANKING),
    Metric("rank20", "rank-20", "Rank-20", True, RANKING),
    Metric("mINP", "mINP", "mINP", True, RANKING),
)
RANKING_KEYS = tuple(metric.key for metric in _RANKING)
# The ranking metrics once more, on camera-normalised features (acan_tf.evaluation.camera_norm).
_CAMERA_NORMALISED = tuple(
    Metric(metric.key + CAMERA_NORMALISED_SUFFIX, metric.title, f"{metric.column} cam-norm", True, CAMERA_NORMALISED)
    for metric in _RANKING
)
METRICS = (
    *_RANKING,
    *_CAMERA_NORMALISED,
    Metric("discrepancy", "inter-camera discrepancy (Table VII)", "Discrepancy d", False, ALIGNMENT),
    Metric("d_test_accuracy", "D camera accuracy on test features", "D accuracy", True, ALIGNMENT),
    Metric("association_precision", "pairwise precision of the links", "Assoc. precision", True, ASSOCIATION),
    Metric("association_recall", "pairwise recall of the links", "Assoc. recall", True, ASSOCIATION),
    Metric("intra_camera_mAP", "mAP", "Intra-camera mAP", True, INTRA_CAMERA),
    Metric("intra_camera_rank1", "rank-1", "Intra-camera rank-1", True, INTRA_CAMERA),
    Metric("association_links", "cycle-consistent links", "Links", False, UNLABELLED_ASSOCIATION),
    Metric("association_components", "pseudo-identities (components)", "Components", False, UNLABELLED_ASSOCIATION),
    Metric("association_mean_size", "mean component size (cameras)", "Mean size", False, UNLABELLED_ASSOCIATION),
    Metric("association_coverage", "local ids linked into a component", "Linked", True, UNLABELLED_ASSOCIATION),
    Metric("association_cycle_consistency", "component pairs that are links", "Cycle-consistent", True,
           UNLABELLED_ASSOCIATION),
    Metric("pair_precision", "pairwise precision", "Link precision", True, LINKING),
    Metric("pair_recall", "pairwise recall", "Link recall", True, LINKING),
    Metric("pair_f1", "pairwise F1", "Link F1", True, LINKING),
    Metric("people_recovered_exactly", "people recovered exactly", "Exact ids", True, LINKING),
)
# The sections a benchmark's tables always show; the others only where a run has them.
ALWAYS_SHOWN = (RANKING, ALIGNMENT)
SCALARS = tuple(metric.key for metric in METRICS)
# Kept with every evaluation besides the scalars: the epoch it was made at and the queries it counted.
BOOKKEEPING = ("epoch", "num_valid_queries")
CMC_KEPT = 20  # ranks of the CMC curve kept in report.json and evaluation documents


def scalars(evaluation: Mapping) -> dict:
    """The reported scalars (and bookkeeping) of an evaluation, as JSON-ready numbers."""
    return {key: evaluation[key] for key in (*BOOKKEEPING, *SCALARS) if evaluation.get(key) is not None}


def summary(evaluation: Mapping) -> dict:
    """The scalars plus the CMC curve to rank 20 and D's camera confusion: what report.json keeps of one evaluation."""
    kept = scalars(evaluation)
    if evaluation.get("cmc") is not None:  # intra-camera retrieval alone has none
        kept["cmc"] = np.asarray(evaluation["cmc"])[:CMC_KEPT].tolist()
    if evaluation.get("camera_confusion") is not None:
        kept["camera_confusion"] = np.asarray(evaluation["camera_confusion"]).tolist()
    return kept


def camera_normalised(metrics: Mapping) -> dict:
    """Ranking metrics of camera-normalised features under their reported keys (mAP → mAP_camnorm, ...)."""
    return {key + CAMERA_NORMALISED_SUFFIX: metrics[key] for key in RANKING_KEYS}


def camera_normalization_note() -> dict:
    """What report.json and evaluation documents say of their `*_camnorm` metrics: which, and whose statistics."""
    return {"metrics": [metric.key for metric in _CAMERA_NORMALISED], "statistics": CAMERA_STATISTICS_SOURCE}


def format_value(metric: Metric, value: float, digits: int = 2) -> str:
    """A metric's value as tables show it: in % with `digits` decimals, a count as an integer, else 4 decimals."""
    if metric.percent:
        return f"{100 * value:.{digits}f}"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def format_metrics(evaluation: Mapping) -> str:
    """The metrics of one evaluation as a printable table, section by section."""
    lines: list[str] = []
    section = None
    for metric in METRICS:
        if evaluation.get(metric.key) is None:
            continue
        if metric.section != section:
            section = metric.section
            lines.append(section)
        # Ranking rows are short names with aligned numbers; alignment rows are long descriptions.
        text = format_value(metric, evaluation[metric.key])
        if metric.section in (RANKING, CAMERA_NORMALISED, INTRA_CAMERA):
            lines.append(f"  {metric.title:<10} {text:>6} %")
        else:
            lines.append(f"  {metric.title:<40} {text}" + (" %" if metric.percent else ""))
    return "\n".join(lines)
