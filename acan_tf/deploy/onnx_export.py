"""F as an ONNX model through tf2onnx, and running it with ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import tensorflow as tf
import tf2onnx

from acan_tf.deploy.serving import IMAGES, embedding_function, image_spec
from acan_tf.evaluation.features import l2_normalize
from acan_tf.model.acan import ACAN

OPSET = 17
BATCH_DIMENSION = "batch"


def write_onnx(acan: ACAN, height: int, width: int, path: str, opset: int = OPSET) -> None:
    """Writes F as ONNX: uint8 `images` [N, H, W, 3] → `embeddings` [N, D] (as serving_default), `features` [N, D]."""
    # `features`, F(x) before normalisation, lets an edge runner average a tracklet's frames exactly as
    # embed_tracklets does (the mean of normalised embeddings would differ).
    spec = image_spec(height, width)
    function = tf.function(embedding_function(acan, with_features=True), input_signature=[spec])
    model, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIMENSION  # tf2onnx names it "unk__NN"
    onnx.checker.check_model(model)
    onnx.save(model, path)


def run_onnx(path: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """{"embeddings", "features"} of uint8 `images` [N, H, W, 3] computed by ONNX Runtime on the CPU."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {IMAGES: images})))


def tracklet_embeddings(features: np.ndarray, num_frames: int) -> np.ndarray:
    """L2-normalised mean of each run of `num_frames` consecutive frame features: [N·T, D] → [N, D]."""
    return l2_normalize(features.reshape(-1, num_frames, features.shape[-1]).mean(axis=1))

