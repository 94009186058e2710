"""Evaluation: exact Re-ID metrics, re-ranking and the paper's camera-alignment analyses (NumPy only at this level)."""

from acan_tf.evaluation.alignment import camera_confusion_matrix, inter_camera_discrepancy
from acan_tf.evaluation.metrics import evaluate, evaluate_features, pairwise_distance
from acan_tf.evaluation.rerank import re_ranking

__all__ = [
    "camera_confusion_matrix",
    "evaluate",
    "evaluate_features",
    "inter_camera_discrepancy",
    "pairwise_distance",
    "re_ranking",
]
