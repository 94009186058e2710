"""Held-out frames of each local id and their intra-camera retrieval, against a direct computation."""

from __future__ import annotations

import numpy as np

from acan_tf.data.holdout import hold_out_frames
from acan_tf.data.records import ImageRecord
from acan_tf.evaluation.intra_camera import MAP, RANK1, intra_camera_retrieval
from acan_tf.evaluation.reported import format_metrics, summary


def test_the_first_and_last_frames_of_each_long_enough_local_id_are_held_out():
    records = [ImageRecord(f"c{camid}/{pid}/{frame:03d}.jpg", pid, camid)
               for camid, pid, count in ((0, 0, 5), (0, 1, 3), (1, 2, 4)) for frame in range(count)]
    held = hold_out_frames(records[::-1])  # any order in, the frames' order decides
    assert [r.path for r in held.gallery] == ["c0/0/000.jpg", "c1/2/000.jpg"]
    assert [r.path for r in held.query] == ["c0/0/004.jpg", "c1/2/003.jpg"]
    assert len(held.train) == 12 - 4 and not {r.path for r in held.train} & {r.path for r in held.query + held.gallery}


def test_intra_camera_retrieval_ranks_only_the_queries_camera():
    # Camera 0: query of id 0 nearer to id 1's entry than to its own (AP 1/2); camera 1: a perfect query.
    # Camera 1's entries sit nearest to camera 0's query, yet never count.
    q = np.array([[0.0, 0.0], [10.0, 0.0]])
    g = np.array([[2.0, 0.0], [1.0, 0.0], [10.0, 0.5], [0.1, 0.0]])
    q_pids, g_pids = np.array([0, 5]), np.array([0, 1, 5, 6])
    q_camids, g_camids = np.array([0, 1]), np.array([0, 0, 1, 1])
    result = intra_camera_retrieval(q, g, q_pids, q_camids, g_pids, g_camids)
    assert result == {MAP: (0.5 + 1.0) / 2, RANK1: 0.5, "num_valid_queries": 2}


def test_the_table_of_a_run_without_cross_camera_labels_says_so():
    final = {MAP: 0.625, RANK1: 0.5, "association_links": 12, "association_components": 5,
             "association_mean_size": 2.4, "association_coverage": 0.75, "association_cycle_consistency": 0.9}
    assert summary(final) == final  # no CMC curve to keep
    assert format_metrics(final) == "\n".join([
        "No cross-camera labels exist, so retrieval across cameras cannot be measured.",
        "Intra-camera retrieval (held-out first and last frames of each local id)",
        "  mAP         62.50 %",
        "  rank-1      50.00 %",
        "Cross-camera association (last round, without labels)",
        "  cycle-consistent links                   12",
        "  pseudo-identities (components)           5",
        "  mean component size (cameras)            2.4000",
        "  local ids linked into a component        75.00 %",
        "  component pairs that are links           90.00 %",
    ])
