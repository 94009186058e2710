"""One evaluation of a model on a dataset's query and gallery: ranking metrics and the camera-alignment analyses."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.data.records import Record
from acan_tf.evaluation import reported
from acan_tf.evaluation.alignment import camera_confusion_matrix, inter_camera_discrepancy
from acan_tf.evaluation.camera_norm import CameraStatistics
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.evaluation.metrics import evaluate, evaluate_features, pairwise_distance
from acan_tf.evaluation.rerank import re_ranking

CMC_RANKS = (1, 5, 10, 20)


@dataclasses.dataclass(frozen=True)
class Reranking:
    """Settings of k-reciprocal re-ranking (Zhong et al. 2017; their defaults)."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


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
    reranking: Reranking | None = None,
    keep_features: bool = False,
    camera_normalization: bool = False,
) -> dict:
    """mAP, rank-1/5/10/20, mINP, the inter-camera discrepancy (Table VII) and, given D, its camera confusion (Fig. 8).

    `camera_classes` maps a dataset camid to D's class index (training may drop cameras). With
    `camera_normalization` the ranking metrics are also reported on camera-normalised features (`*_camnorm`).
    """
    raw_query = extract_features(embed_frames, query, image_height, image_width, batch_size)
    raw_gallery = extract_features(embed_frames, gallery, image_height, image_width, batch_size)
    return evaluate_reid_features(
        raw_query, raw_gallery, query, gallery, normalize, discriminator, camera_classes, reranking, keep_features,
        camera_normalization,
    )


def evaluate_reid_features(
    raw_query: np.ndarray,
    raw_gallery: np.ndarray,
    query: Sequence[Record],
    gallery: Sequence[Record],
    normalize: bool = True,
    discriminator: Callable[[tf.Tensor], tf.Tensor] | None = None,
    camera_classes: Mapping[int, int] | None = None,
    reranking: Reranking | None = None,
    keep_features: bool = False,
    camera_normalization: bool = False,
) -> dict:
    """`evaluate_reid` on features already extracted (F(x), one row per record), optionally re-ranked.

    With `camera_normalization`, the ranking metrics again (`*_camnorm`) on the features normalised by each
    camera's mean over the query and gallery images of that camera (unlabelled: no pid is read).
    """
    # Re-ranking changes only the ranking metrics, not the discrepancy or D's confusion. keep_features adds the
    # ranked features ("query_features", "gallery_features") and any re-ranked "distances" (queries x gallery),
    # which the analysis figures need.
    q_feats, g_feats = (l2_normalize(raw_query), l2_normalize(raw_gallery)) if normalize else (raw_query, raw_gallery)
    q_pids, q_camids = record_ids(query)
    g_pids, g_camids = record_ids(gallery)
    metrics = {
        **ranking_metrics(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids, reranking),
        "discrepancy": inter_camera_discrepancy(
            np.concatenate([q_feats, g_feats]), np.concatenate([q_camids, g_camids])
        ),
    }
    distances = metrics.pop("distances")
    if camera_normalization:
        camids = np.concatenate([q_camids, g_camids])
        statistics = CameraStatistics.from_features(np.concatenate([raw_query, raw_gallery]), camids)
        normalised = ranking_metrics(statistics.apply(raw_query, q_camids), statistics.apply(raw_gallery, g_camids),
                                     q_pids, g_pids, q_camids, g_camids, reranking)
        metrics.update(reported.camera_normalised(normalised))
    if discriminator is not None and camera_classes:
        metrics.update(_camera_confusion(discriminator, raw_query, raw_gallery, q_camids, g_camids, camera_classes))
    if keep_features:
        metrics.update(query_features=q_feats, gallery_features=g_feats)
        if distances is not None:
            metrics["distances"] = distances
    return metrics


def ranking_metrics(
    q_feats: np.ndarray,
    g_feats: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    reranking: Reranking | None = None,
) -> dict:
    """mAP, rank-1/5/10/20, mINP, the CMC curve, the valid queries, and the re-ranked "distances" (None if not)."""
    distances = None
    if reranking is None:
        result = evaluate_features(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids)
    else:
        distances = re_ranking(
            pairwise_distance(q_feats, g_feats), pairwise_distance(q_feats, q_feats),
            pairwise_distance(g_feats, g_feats), reranking.k1, reranking.k2, reranking.lambda_value,
        )
        result = evaluate(distances, q_pids, g_pids, q_camids, g_camids)
    return {
        "mAP": float(result["mAP"]),
        **{f"rank{k}": float(result["cmc"][min(k, len(result["cmc"])) - 1]) for k in CMC_RANKS},
        "mINP": float(result["mINP"]),
        "num_valid_queries": int(result["num_valid_queries"]),
        "cmc": result["cmc"],
        "distances": distances,
    }


def record_ids(records: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    """(pids, camids) of records, as arrays."""
    return np.array([r.pid for r in records]), np.array([r.camid for r in records])


def _camera_confusion(discriminator, raw_query, raw_gallery, q_camids, g_camids, camera_classes) -> dict:
    """D's accuracy and row-normalised confusion on the test features of the cameras it was trained on."""
    features = np.concatenate([raw_query, raw_gallery])
    camids = np.concatenate([q_camids, g_camids])
    known = np.isin(camids, list(camera_classes))
    classes = np.array([camera_classes[c] for c in camids[known]])
    logits = np.concatenate([np.asarray(discriminator(chunk))
                             for chunk in np.array_split(features[known], max(1, len(classes) // 4096))])
    predicted = logits.argmax(axis=1)
    return {
        "d_test_accuracy": float(np.mean(predicted == classes)),
        "camera_confusion": camera_confusion_matrix(classes, predicted, len(camera_classes)),
    }
