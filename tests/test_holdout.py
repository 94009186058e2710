"""Held-out frames of each local id and their intra-camera retrieval, against a direct computation."""

from __future__ import annotations

import numpy as np

from acan_tf.data.holdout import hold_out_frames
from acan_tf.data.records import ImageRecord
from acan_tf.evaluation.intra_camera import MAP, RANK1, intra_camera_retrieval


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
    result = intra_camera_retrieval(q, g, q_pids, g_pids, q_camids, g_camids)
    assert result == {MAP: (0.5 + 1.0) / 2, RANK1: 0.5, "num_valid_queries": 2}
