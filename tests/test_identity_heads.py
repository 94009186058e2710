"""The per-camera identity heads of --intra_id_loss: the memory's update against NumPy, sizes, and bad input."""

import numpy as np
import pytest
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.model.identity_heads import CameraMemory, PerCameraClassifier, build_identity_head

IDS_PER_CAMERA = (3, 2)


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_memory_update_moves_the_batchs_ids_and_keeps_the_others():
    rng = np.random.default_rng(0)
    memory = CameraMemory(IDS_PER_CAMERA, feature_dim=4, momentum=0.5, temperature=0.05)
    start = unit(rng.normal(size=(5, 4))).astype(np.float32)
    start[4] = 0.0  # an id not seen yet
    memory.centres.assign(start)
    features = rng.normal(size=(6, 4)).astype(np.float32) * 3.0
    local_ids, camids = np.array([0, 0, 2, 2, 1, 1]), np.array([0, 0, 0, 0, 1, 1])
    memory.update(tf.constant(features), local_ids, camids)

    expected = start.copy()
    for row, members in ((0, [0, 1]), (2, [2, 3]), (4, [4, 5])):  # rows of (cam 0, id 0), (cam 0, id 2), (cam 1, id 1)
        mean = unit(features[members]).mean(axis=0)
        expected[row] = unit((0.5 * start[row] + 0.5 * mean)[None])[0]
    got = memory.centres.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[[1, 3]], start[[1, 3]])  # ids absent from the batch keep their centre
    # A first visit sets the centre to the direction of the batch mean.
    np.testing.assert_allclose(got[4], unit(unit(features[4:6]).mean(axis=0)[None])[0], rtol=1e-5)


def test_heads_are_sized_by_the_ids_of_every_camera_and_only_the_classifier_trains():
    classifier = build_identity_head(Config(intra_id_loss="classifier"), IDS_PER_CAMERA, 8)
    memory = build_identity_head(Config(intra_id_loss="memory", memory_momentum=0.2, memory_temperature=0.1),
                                 IDS_PER_CAMERA, 8)
    assert isinstance(classifier, PerCameraClassifier) and classifier.kernel.shape == (8, 5)
    assert isinstance(memory, CameraMemory) and memory.centres.shape == (5, 8)
    assert (memory.momentum, memory.temperature) == (0.2, 0.1)
    assert len(classifier.trainable_variables) == 1 and not memory.trainable_variables
    assert build_identity_head(Config(), IDS_PER_CAMERA, 8) is None


def test_a_head_without_the_ids_per_camera_is_refused():
    with pytest.raises(ValueError, match="--intra_id_loss=memory needs the training set's ids per camera"):
        build_identity_head(Config(intra_id_loss="memory"), None, 8)
