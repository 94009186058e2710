"""The int8 ONNX model: ONNX Runtime quantization of model.onnx, judged by the mAP it keeps on the run's test split.

Static quantization (QDQ, per-channel int8 weights, uint8 activations calibrated on training images) is the
default: on this CPU (AVX-512 VNNI) it ran ResNet-50 at 256x128 2.2-2.9x faster than the float model at batch 1,
while dynamic quantization, which quantizes activations on the fly through ConvInteger, ran it about 3x slower.
Dynamic stays selectable for graphs without calibration data.
"""

from __future__ import annotations

import os
import tempfile
from typing import Sequence

import numpy as np
import onnxruntime
import tensorflow as tf
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from acan_tf.config import Config
from acan_tf.data.pipeline import inference_dataset
from acan_tf.data.records import ImageRecord, Record, ReIDDataset, frame_paths
from acan_tf.deploy import parity, serving
from acan_tf.errors import UserError
from acan_tf.evaluation.features import extract_features
from acan_tf.evaluation.reid import evaluate_reid_features
from acan_tf.model.acan import ACAN

QUANTIZATIONS = ("static", "dynamic")
CALIBRATION_IMAGES = 256
CALIBRATION_SEED = 0
MAP_TOLERANCE = 0.01
CALIBRATION_BATCH = 32
COMPARED = ("mAP", "rank1")


class QuantizationError(UserError, ValueError):
    """An int8 option or its data is unusable; the message names the flag or the folder."""


class ImageBatches(CalibrationDataReader):
    """Calibration input for ONNX Runtime: uint8 images [N, H, W, 3] fed as `images` in batches."""

    def __init__(self, images: np.ndarray, batch_size: int = CALIBRATION_BATCH):
        self._batches = iter([images[start:start + batch_size] for start in range(0, len(images), batch_size)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch, or None when all were given."""
        batch = next(self._batches, None)
        return None if batch is None else {serving.IMAGES: batch}


def check_options(quantization: str, calibration_count: int) -> None:
    """Accepts a known quantization method and a positive number of calibration images."""
    if quantization not in QUANTIZATIONS:
        raise QuantizationError(f"--int8_quantization={quantization}: expected one of {', '.join(QUANTIZATIONS)}")
    if calibration_count < 1:
        raise QuantizationError(f"--int8_calibration_images={calibration_count}: expected a positive integer")


def as_uint8(frames: np.ndarray) -> np.ndarray:
    """Decoded float pixels as the exported model takes them: rounded to uint8 (model.json's resize note)."""
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


def calibration_images(records: Sequence[Record], height: int, width: int, count: int = CALIBRATION_IMAGES,
                       seed: int = CALIBRATION_SEED) -> np.ndarray:
    """`count` training frames drawn with `seed` (all if fewer), decoded as for evaluation, as uint8 [N, H, W, 3]."""
    # Un-augmented frames: the calibration must see the activation ranges of deployment, not of augmentation.
    frames = [ImageRecord(path, record.pid, record.camid) for record in records for path in frame_paths(record)]
    check_options("static", count)
    if not frames:
        raise QuantizationError("the run's training split has no images to calibrate the int8 model on")
    chosen = np.sort(np.random.default_rng(seed).choice(len(frames), min(count, len(frames)), replace=False))
    batches = inference_dataset([frames[index] for index in chosen], height, width, CALIBRATION_BATCH)
    return np.concatenate([as_uint8(batch.numpy()) for batch in batches])


def quantize_onnx(fp32_path: str, int8_path: str, quantization: str, calibration: np.ndarray | None) -> dict:
    """Writes the int8 model of the ONNX model at `fp32_path`; returns what the model card says about it."""
    check_options(quantization, CALIBRATION_IMAGES if calibration is None else len(calibration))
    with tempfile.TemporaryDirectory() as folder:
        prepared = os.path.join(folder, "prepared.onnx")
        # ONNX Runtime's recommended pre-processing (graph optimisation, shape inference); sympy-based symbolic
        # shape inference is skipped: ONNX's own inference gives every shape of these fixed-size graphs.
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
        if quantization == "static":
            quantize_static(prepared, int8_path, ImageBatches(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            return {"method": "static", "format": "QDQ", "weights": "int8, per channel", "activations": "uint8",
                    "calibration": {"method": "MinMax", "images": int(len(calibration)), "split": "train",
                                    "seed": CALIBRATION_SEED}}
        quantize_dynamic(prepared, int8_path, per_channel=True, weight_type=QuantType.QInt8)
        return {"method": "dynamic", "weights": "int8, per channel", "activations": "uint8, quantized at run time"}


def onnx_features(path: str, records: Sequence[Record], height: int, width: int, batch_size: int) -> np.ndarray:
    """F(x) [N, D] of records by the ONNX model at `path`; a tracklet's is the mean of its frames'."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run([serving.FEATURES], {serving.IMAGES: as_uint8(pixels)})[0]

    def embed(frames: tf.Tensor) -> tf.Tensor:
        return tf.numpy_function(run, [frames], tf.float32)

    return extract_features(embed, records, height, width, batch_size)


def split_metrics(query_features: np.ndarray, gallery_features: np.ndarray, data: ReIDDataset, normalize: bool) -> dict:
    """mAP and rank-1 of features on the dataset's query and gallery."""
    metrics = evaluate_reid_features(query_features, gallery_features, data.query, data.gallery, normalize)
    return {name: metrics[name] for name in COMPARED}


def check_map_drop(keras: dict, int8: dict, tolerance: float) -> None:
    """Raises ParityError if the int8 model's test mAP is more than `tolerance` below the Keras model's."""
    drop = keras["mAP"] - int8["mAP"]
    if not drop <= tolerance:
        raise parity.ParityError(
            f"the onnx_int8 export loses {100 * drop:.2f} mAP points on the test split "
            f"(Keras {100 * keras['mAP']:.2f} %, int8 {100 * int8['mAP']:.2f} %), "
            f"more than --int8_map_tolerance={tolerance:g} allows; nothing was exported"
        )


def export_int8(acan: ACAN, config: Config, data: ReIDDataset, fp32_path: str, int8_path: str, quantization: str,
                calibration_count: int, map_tolerance: float, samples: tuple[np.ndarray, np.ndarray],
                reference: dict) -> dict:
    """Writes the int8 model and checks its test mAP against the Keras model's; returns its parity figures."""
    height, width, batch = config.image_height, config.image_width, config.eval_batch_size
    calibration = (calibration_images(data.train, height, width, calibration_count)
                   if quantization == "static" else None)
    description = quantize_onnx(fp32_path, int8_path, quantization, calibration)
    # Keras ranked as acan_tf.evaluate ranks it (float pixels), the int8 model as deployed (pixels rounded to uint8).
    keras = split_metrics(*(extract_features(acan.encoder, records, height, width, batch)
                           for records in (data.query, data.gallery)), data, config.normalize_features)
    int8 = split_metrics(*(onnx_features(int8_path, records, height, width, batch)
                          for records in (data.query, data.gallery)), data, config.normalize_features)
    check_map_drop(keras, int8, map_tolerance)
    return {
        "quantization": description,
        "test_split": {"dataset": data.name, "root": data.root, "num_query": len(data.query),
                       "num_gallery": len(data.gallery)},
        "keras": keras,
        "onnx_int8": int8,
        "change": {name: int8[name] - keras[name] for name in COMPARED},
        "map_tolerance": map_tolerance,
        "max_abs_difference": parity.onnx_differences(int8_path, *samples, reference),
    }
