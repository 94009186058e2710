"""Embeddings of dataset records computed by an exported SavedModel, through its serving signatures."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.data.pipeline import inference_dataset
from acan_tf.data.records import Record, TrackletRecord, frame_paths
from acan_tf.deploy.serving import EMBEDDINGS, IMAGE_SIGNATURE, IMAGES, TRACKLET_SIGNATURE, TRACKLETS
from acan_tf.evaluation.features import extract_features


def saved_model_features(
    model: Any, records: Sequence[Record], height: int, width: int, batch_size: int = 128
) -> np.ndarray:
    """Embeddings [N, D] of records by a loaded export: `serving_default` per image, `embed_tracklets` per tracklet."""
    if records and isinstance(records[0], TrackletRecord):
        return _tracklet_embeddings(model.signatures[TRACKLET_SIGNATURE], records, height, width, batch_size)
    embed = model.signatures[IMAGE_SIGNATURE]
    return extract_features(lambda frames: embed(**{IMAGES: _as_uint8(frames)})[EMBEDDINGS], records, height, width,
                            batch_size)


def _as_uint8(frames: tf.Tensor) -> tf.Tensor:
    """Decoded float pixels as the exported model takes them: rounded to uint8 (model.json's resize note)."""
    return tf.cast(tf.round(frames), tf.uint8)


def _tracklet_embeddings(
    embed: Callable, records: Sequence[Record], height: int, width: int, batch_size: int
) -> np.ndarray:
    """One `embed_tracklets` call per tracklet, on its frames decoded in order."""
    lengths = [len(frame_paths(record)) for record in records]
    pending = np.zeros((0, height, width, 3), np.uint8)
    embeddings, index = [], 0
    for batch in inference_dataset(records, height, width, batch_size):
        pending = np.concatenate([pending, _as_uint8(batch).numpy()])
        while index < len(lengths) and len(pending) >= lengths[index]:
            tracklet, pending = pending[: lengths[index]], pending[lengths[index]:]
            embeddings.append(embed(**{TRACKLETS: tf.constant(tracklet[np.newaxis])})[EMBEDDINGS].numpy()[0])
            index += 1
    return np.stack(embeddings)
