"""How well features are aligned across cameras: the inter-camera discrepancy (paper Table VII) and the
camera discriminator's confusion matrix (paper Fig. 8).

`camera_confusion_matrix` takes the discriminator's output either as integer camera predictions, shape
(N,), which it counts per true camera, or as probability rows, shape (N, C), which it averages per true
camera (the soft confusion). Either way row c is the share of camera c's samples given to each camera and
sums to 1; the row of a camera without samples is all zero.
"""

from __future__ import annotations

import numpy as np

# Probability rows must sum to 1 within this (float32 softmax outputs do); a wider gap means logits.
_PROBABILITY_TOLERANCE = 1e-3


def inter_camera_discrepancy(features: np.ndarray, camids: np.ndarray) -> float:
    """d = 1/C sum_c ||mean_c - mean||_2 over the C cameras present; mean is over all samples."""
    features = np.asarray(features)
    camids = np.asarray(camids)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty 2-D array (samples x dims), got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError("features contains NaN or Inf")
    if camids.shape != (len(features),):
        raise ValueError(f"camids must be 1-D with one id per feature row ({len(features)}), got shape {camids.shape}")
    cameras, camera_of = np.unique(camids, return_inverse=True)
    camera_means = _group_means(features, camera_of, len(cameras))
    overall_mean = features.mean(axis=0, dtype=np.float64)
    return float(np.linalg.norm(camera_means - overall_mean, axis=1).mean())


def camera_confusion_matrix(
    true_camids: np.ndarray, predicted: np.ndarray, num_cameras: int
) -> np.ndarray:
    """(C, C) row-normalised confusion of true cameras (rows) and predicted ids or probabilities (columns)."""
    true_camids = _camera_ids(true_camids, num_cameras, "true_camids")
    predicted = np.asarray(predicted)
    if predicted.ndim == 1 and np.issubdtype(predicted.dtype, np.integer):
        predicted = np.eye(num_cameras)[_camera_ids(predicted, num_cameras, "predicted")]
    elif predicted.ndim == 2:
        if predicted.shape[1] != num_cameras:
            raise ValueError(
                f"predicted probability rows have {predicted.shape[1]} columns, expected num_cameras={num_cameras}"
            )
        if not np.all(np.isfinite(predicted)) or np.any(predicted < 0):
            raise ValueError("predicted probabilities must be finite and non-negative")
        if np.any(np.abs(predicted.sum(axis=1) - 1) > _PROBABILITY_TOLERANCE):
            raise ValueError("predicted probability rows must sum to 1 (apply softmax to logits first)")
    else:
        raise ValueError(
            "predicted must be integer camera ids of shape (N,) or probabilities of shape (N, num_cameras), "
            f"got shape {predicted.shape} and dtype {predicted.dtype}"
        )
    if len(predicted) != len(true_camids):
        raise ValueError(f"predicted has {len(predicted)} rows but true_camids has {len(true_camids)}")
    return _group_means(predicted, true_camids, num_cameras)


def _group_means(values: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Mean row of `values` per group id in [0, num_groups), in float64; zero rows for empty groups."""
    means = np.zeros((num_groups, values.shape[1]))
    for group in np.unique(groups):
        means[group] = values[groups == group].mean(axis=0, dtype=np.float64)
    return means


def _camera_ids(camids: np.ndarray, num_cameras: int, name: str) -> np.ndarray:
    """Non-empty 1-D integer camera ids in [0, num_cameras)."""
    if isinstance(num_cameras, bool) or not isinstance(num_cameras, (int, np.integer)) or num_cameras < 1:
        raise ValueError(f"num_cameras must be a positive integer, got {num_cameras!r}")
    camids = np.asarray(camids)
    if camids.ndim != 1 or len(camids) == 0 or not np.issubdtype(camids.dtype, np.integer):
        raise ValueError(
            f"{name} must be a non-empty 1-D integer array, got shape {camids.shape} and dtype {camids.dtype}"
        )
    if camids.min() < 0 or camids.max() >= num_cameras:
        raise ValueError(f"{name} must lie in [0, {num_cameras}), got values from {camids.min()} to {camids.max()}")
    return camids
