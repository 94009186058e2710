"""The model card's calibration: each exported format calibrated on its own embeddings of the labelled test split
(acan_tf.evaluation.calibration), its figure's file name, and the table the export prints."""

from __future__ import annotations

import numpy as np

from acan_tf.evaluation.calibration import FPR_POINTS, calibrate, calibrate_links, check_distance_threshold


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
