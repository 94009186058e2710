"""Tests of the camera-alignment measures: inter-camera discrepancy and the camera confusion matrix."""

import numpy as np
import pytest

from acan_tf.evaluation.alignment import camera_confusion_matrix, inter_camera_discrepancy


def test_discrepancy_matches_direct_numpy():
    rng = np.random.default_rng(0)
    features = rng.standard_normal((40, 5)).astype(np.float32)
    camids = rng.choice([0, 2, 5], 40)  # camera ids need not be contiguous
    overall = features.astype(np.float64).mean(axis=0)
    expected = np.mean([np.linalg.norm(features[camids == c].mean(axis=0) - overall) for c in (0, 2, 5)])
    assert inter_camera_discrepancy(features, camids) == pytest.approx(expected, rel=1e-6)


def test_discrepancy_hand_worked():
    # Camera 0 has 3 samples at (0, 0), camera 1 one at (4, 0): mean (1, 0), camera distances 1 and 3.
    features = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [4.0, 0.0]])
    assert inter_camera_discrepancy(features, np.array([0, 0, 0, 1])) == pytest.approx(2.0)


def test_discrepancy_is_zero_for_aligned_cameras():
    features = np.tile(np.array([[1.0, 2.0], [3.0, -1.0]]), (3, 1))
    assert inter_camera_discrepancy(features, np.repeat([0, 1, 2], 2)) == pytest.approx(0.0)


def test_confusion_from_integer_predictions():
    true = np.array([0, 0, 0, 0, 2, 2])
    predicted = np.array([0, 1, 1, 2, 2, 2])
    matrix = camera_confusion_matrix(true, predicted, 3)
    np.testing.assert_allclose(matrix, [[0.25, 0.5, 0.25], [0, 0, 0], [0, 0, 1]])


def test_confusion_from_probabilities_averages_rows():
    rng = np.random.default_rng(1)
    true = rng.integers(0, 4, 30)
    true[:4] = np.arange(4)  # every camera present
    probabilities = rng.random((30, 4))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    matrix = camera_confusion_matrix(true, probabilities, 4)
    np.testing.assert_allclose(matrix.sum(axis=1), 1)
    np.testing.assert_allclose(matrix[2], probabilities[true == 2].mean(axis=0))


@pytest.mark.parametrize(
    "true, predicted, message",
    [
        (np.array([0, 3]), np.array([0, 1]), r"true_camids must lie in \[0, 3\)"),
        (np.array([0, 1]), np.array([0, 1, 1]), "predicted has 3 rows but true_camids has 2"),
        (np.array([0, 1]), np.array([[2.0, -1.0, 0.0], [0.0, 1.0, 0.0]]), "finite and non-negative"),
        (np.array([0, 1]), np.array([[2.0, 1.0, 0.0], [0.0, 1.0, 0.0]]), "apply softmax"),
        (np.array([0, 1]), np.array([[1.0, 0.0], [0.0, 1.0]]), "have 2 columns, expected num_cameras=3"),
        (np.array([0, 1]), np.array([0.5, 0.5]), "integer camera ids of shape"),
    ],
)
def test_confusion_rejects_bad_input(true, predicted, message):
    with pytest.raises(ValueError, match=message):
        camera_confusion_matrix(true, predicted, 3)


@pytest.mark.parametrize(
    "features, camids, message",
    [
        (np.zeros((3, 2)), np.array([0, 1]), "one id per feature row"),
        (np.zeros(3), np.array([0, 1, 2]), "non-empty 2-D"),
        (np.array([[0.0, np.nan]]), np.array([0]), "NaN or Inf"),
    ],
)
def test_discrepancy_rejects_bad_input(features, camids, message):
    with pytest.raises(ValueError, match=message):
        inter_camera_discrepancy(features, camids)
