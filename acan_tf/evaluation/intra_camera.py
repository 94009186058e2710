"""Intra-camera retrieval of held-out frames (acan_tf.data.holdout): mAP and rank-1 inside each camera.

A query's matches are the gallery entries of its own local id; its candidates are the gallery entries of its own
camera only (a local id says nothing about other cameras), so another camera's entries are ranked after all of
them and never count.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.data.records import Record
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.evaluation.metrics import evaluate, pairwise_distance
from acan_tf.evaluation.reid import record_ids

# Keys of the figures in evaluations and report.json (acan_tf.evaluation.reported names and formats them).
MAP, RANK1 = "intra_camera_mAP", "intra_camera_rank1"


def intra_camera_retrieval(q_feats: np.ndarray, g_feats: np.ndarray, q_pids: np.ndarray, q_camids: np.ndarray,
                           g_pids: np.ndarray, g_camids: np.ndarray) -> dict:
    """{intra_camera_mAP, intra_camera_rank1, num_valid_queries} of the held-out queries against their camera."""
    distances = pairwise_distance(q_feats, g_feats)
    # Beyond every distance inside a camera: another camera's entries rank last, below every candidate.
    distances[np.asarray(q_camids)[:, None] != np.asarray(g_camids)[None, :]] = distances.max(initial=0.0) + 1.0
    # The protocol drops same-camera entries of the query's own id; different camids keep every entry ranked.
    result = evaluate(distances, q_pids, g_pids, np.zeros(len(q_pids), int), np.ones(len(g_pids), int))
    return {MAP: float(result["mAP"]), RANK1: float(result["cmc"][0]),
            "num_valid_queries": int(result["num_valid_queries"])}


def evaluate_intra_camera(embed_frames: Callable[[tf.Tensor], tf.Tensor], query: Sequence[Record],
                          gallery: Sequence[Record], image_height: int, image_width: int, batch_size: int = 128,
                          normalize: bool = True) -> dict:
    """`intra_camera_retrieval` of a model's features of the held-out queries and gallery ({} if none were held out)."""
    if not query or not gallery:
        return {}
    q_feats, g_feats = (extract_features(embed_frames, records, image_height, image_width, batch_size)
                        for records in (query, gallery))
    if normalize:
        q_feats, g_feats = l2_normalize(q_feats), l2_normalize(g_feats)
    return intra_camera_retrieval(q_feats, g_feats, *record_ids(query), *record_ids(gallery))
