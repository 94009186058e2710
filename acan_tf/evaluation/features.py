"""Feature extraction for evaluation: every image, or every frame of a tracklet averaged, in bounded batches."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.data.pipeline import inference_dataset
from acan_tf.data.records import Record, frame_paths


def extract_features(
    embed_frames: Callable[[tf.Tensor], tf.Tensor],
    records: Sequence[Record],
    image_height: int,
    image_width: int,
    batch_size: int = 128,
) -> np.ndarray:
    """Features [N, D] of `records`; a tracklet's is the mean of its frames' (temporal average pooling)."""
    batches = inference_dataset(records, image_height, image_width, batch_size)
    # One trace whatever the batch size (the signature's batch axis is None): tracing again for each last, smaller
    # batch made TensorFlow warn of frequent retracing in the middle of training's progress bar. A caller that
    # extracts many times with one model passes a tf.function of its own (`frame_embedder`), traced once for all.
    embed = embed_frames if isinstance(embed_frames, tf.types.experimental.GenericFunction) else tf.function(
        embed_frames, input_signature=[batches.element_spec])
    chunks = [embed(batch).numpy() for batch in batches]
    frame_features = np.concatenate(chunks).astype(np.float32)
    lengths = np.array([len(frame_paths(r)) for r in records])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.add.reduceat(frame_features, starts, axis=0) / lengths[:, None]


def frame_embedder(embed_frames: Callable[[tf.Tensor], tf.Tensor], image_height: int,
                   image_width: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """`embed_frames` as one tf.function over frame batches of any size, for repeated extractions."""
    return tf.function(embed_frames, input_signature=[tf.TensorSpec([None, image_height, image_width, 3], tf.float32)])


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean norm."""
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
