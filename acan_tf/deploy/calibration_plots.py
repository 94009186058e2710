"""The calibration figure of one exported format: the ROC and the two distance histograms (same / different person)."""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from acan_tf.io import atomic_path


def plot_calibration(calibration: dict, title: str, path: str) -> str:
    """Writes the ROC (log FPR) with the chosen threshold and the same/different-person histograms to `path`."""
    figure = Figure(figsize=(10, 4), dpi=120)
    FigureCanvasAgg(figure)
    roc_axes, histogram_axes = figure.subplots(1, 2)
    fpr, tpr = np.asarray(calibration["roc"]["fpr"]), np.asarray(calibration["roc"]["tpr"])
    shown = fpr > 0  # a log axis has no 0
    roc_axes.semilogx(fpr[shown], 100 * tpr[shown], color="#4575b4")
    roc_axes.plot([calibration["fpr"]], [100 * calibration["tpr"]], "o", color="#d73027",
                  label=f"threshold {calibration['threshold']:.3f}: FPR {calibration['fpr']:.2g}, "
                        f"TPR {100 * calibration['tpr']:.1f} %")
    roc_axes.set(xlabel="false-positive rate (different people, different cameras)",
                 ylabel="true-positive rate (%)", title=f"{title}: ROC", ylim=(0, 100))
    roc_axes.grid(alpha=0.3)
    roc_axes.legend(loc="lower right", fontsize=8)
    edges = np.asarray(calibration["histogram"]["edges"])
    for name, colour in (("same_person", "#1a9850"), ("different_person", "#d73027")):
        counts = np.asarray(calibration["histogram"][name], dtype=np.float64)
        histogram_axes.stairs(counts / max(counts.sum(), 1), edges, color=colour, fill=True, alpha=0.5,
                              label=f"{name.replace('_', ' ')} ({int(counts.sum())} pairs)")
    histogram_axes.axvline(calibration["threshold"], color="black", linestyle="--", label="threshold")
    histogram_axes.set(xlabel="distance between L2-normalised embeddings", ylabel="share of pairs",
                       title=f"{title}: cross-camera pair distances")
    histogram_axes.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    return path
