"""One evaluation of a model on a dataset's query and gallery: ranking metrics and the camera-alignment analyses."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.data.records import Record
from acan_tf.evaluation.alignment import camera_confusion_matrix, inter_camera_discrepancy
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.evaluation.metrics import evaluate_features

CMC_RANKS = (1, 5, 10, 20)


def evaluate_reid(
    embed_frames: Callable[[tf.Tensor], tf.Tensor],
    query: Sequence[Record],
    gallery: Sequence[Record],
    image_height: int,
    image_width: int,
    batch_size: int = 128,
    normalize: bool = True,
    discriminator: Callable[[tf.Tensor], tf.Tensor] | None = None,
    camera_classes: Mapping[int, int] | None = None,
) -> dict:
    """mAP, rank-1/5/10/20, mINP, the inter-camera discrepancy (Table VII) and, given D, its camera confusion (Fig. 8).

    `camera_classes` maps a dataset camid to D's class index (training may drop cameras).
    """
    raw_query = extract_features(embed_frames, query, image_height, image_width, batch_size)
    raw_gallery = extract_features(embed_frames, gallery, image_height, image_width, batch_size)
    q_feats, g_feats = (l2_normalize(raw_query), l2_normalize(raw_gallery)) if normalize else (raw_query, raw_gallery)
    q_pids, q_camids = _ids(query)
    g_pids, g_camids = _ids(gallery)
    result = evaluate_features(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids)
    metrics = {
        "mAP": float(result["mAP"]),
        **{f"rank{k}": float(result["cmc"][min(k, len(result["cmc"])) - 1]) for k in CMC_RANKS},
        "mINP": float(result["mINP"]),
        "num_valid_queries": int(result["num_valid_queries"]),
        "cmc": result["cmc"],
        "discrepancy": inter_camera_discrepancy(
            np.concatenate([q_feats, g_feats]), np.concatenate([q_camids, g_camids])
        ),
    }
    if discriminator is not None and camera_classes:
        metrics.update(_camera_confusion(discriminator, raw_query, raw_gallery, q_camids, g_camids, camera_classes))
    return metrics


def _ids(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r.pid for r in records]), np.array([r.camid for r in records])


def _camera_confusion(discriminator, raw_query, raw_gallery, q_camids, g_camids, camera_classes) -> dict:
    """D's accuracy and row-normalised confusion on the test features of the cameras it was trained on."""
    features = np.concatenate([raw_query, raw_gallery])
    camids = np.concatenate([q_camids, g_camids])
    known = np.isin(camids, list(camera_classes))
    classes = np.array([camera_classes[c] for c in camids[known]])
    logits = np.concatenate([np.asarray(discriminator(chunk)) for chunk in np.array_split(features[known], max(1, len(classes) // 4096))])
    predicted = logits.argmax(axis=1)
    return {
        "d_test_accuracy": float(np.mean(predicted == classes)),
        "camera_confusion": camera_confusion_matrix(classes, predicted, len(camera_classes)),
    }
