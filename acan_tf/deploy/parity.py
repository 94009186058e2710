"""Export-time checks: each exported format must give the Keras model's embeddings on sample inputs."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from acan_tf.deploy import serving
from acan_tf.deploy.onnx_export import run_onnx, tracklet_embeddings
from acan_tf.errors import UserError
from acan_tf.evaluation.features import l2_normalize
from acan_tf.model.acan import ACAN

NUM_IMAGES = 4
NUM_TRACKLETS, NUM_FRAMES = 2, 3


class ParityError(UserError, RuntimeError):
    """An exported model's embeddings differ from the Keras model's by more than the tolerance."""


def sample_inputs(height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded uint8 images [4, H, W, 3] and tracklets [2, 3, H, W, 3], the inputs every format is checked on."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (NUM_IMAGES, height, width, 3), dtype=np.uint8)
    tracklets = rng.integers(0, 256, (NUM_TRACKLETS, NUM_FRAMES, height, width, 3), dtype=np.uint8)
    return images, tracklets


def keras_embeddings(acan: ACAN, pixels: np.ndarray) -> np.ndarray:
    """The reference: the Keras model's L2-normalised embeddings of uint8 images or tracklets."""
    return l2_normalize(acan.embed(tf.constant(pixels, tf.float32), training=False).numpy())


def max_abs_difference(reference: np.ndarray, candidate: np.ndarray) -> float:
    """The largest absolute difference between two arrays of the same shape."""
    if reference.shape != candidate.shape:
        raise ParityError(f"shape {candidate.shape} differs from the reference's {reference.shape}")
    return float(np.max(np.abs(reference.astype(np.float64) - candidate.astype(np.float64))))


def saved_model_differences(path: str, images: np.ndarray, tracklets: np.ndarray, reference: dict) -> dict[str, float]:
    """Largest differences of the SavedModel at `path` (reloaded) from `reference` ({"images", "tracklets"})."""
    loaded = tf.saved_model.load(path)
    signatures = {"images": (serving.IMAGE_SIGNATURE, serving.IMAGES, images),
                  "tracklets": (serving.TRACKLET_SIGNATURE, serving.TRACKLETS, tracklets)}
    differences = {}
    for kind, (signature, name, pixels) in signatures.items():
        outputs = loaded.signatures[signature](**{name: tf.constant(pixels)})
        differences[kind] = max_abs_difference(reference[kind], outputs[serving.EMBEDDINGS].numpy())
    return differences


def onnx_differences(path: str, images: np.ndarray, tracklets: np.ndarray, reference: dict) -> dict[str, float]:
    """Largest differences of the ONNX model at `path` (ONNX Runtime) from `reference`; tracklets average frames."""
    frames = tracklets.reshape(-1, *tracklets.shape[2:])
    frame_features = run_onnx(path, frames)[serving.FEATURES]
    return {
        "images": max_abs_difference(reference["images"], run_onnx(path, images)[serving.EMBEDDINGS]),
        "tracklets": max_abs_difference(reference["tracklets"],
                                        tracklet_embeddings(frame_features, tracklets.shape[1])),
    }


def check_tolerance(format_name: str, differences: dict[str, float], tolerance: float) -> None:
    """Raises ParityError if any difference exceeds `tolerance`."""
    failed = {kind: value for kind, value in differences.items() if not value <= tolerance}
    if failed:
        listing = ", ".join(f"{kind}: {value:.3g}" for kind, value in failed.items())
        raise ParityError(
            f"the {format_name} export differs from the Keras model by more than {tolerance:g} ({listing}); "
            f"nothing was exported"
        )
