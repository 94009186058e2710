"""Exports a training run's F: stage the version folder, write the formats, check them, write the card, rename."""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from acan_tf.config import Config
from acan_tf.data import DatasetError, load_existing_dataset, load_trained_dataset
from acan_tf.data.records import ReIDDataset
from acan_tf.deploy import calibration, parity, quantize
from acan_tf.deploy.calibration import (
    DEFAULT_FPR,
    CalibrationError,
    check_distance_threshold,
    check_fpr,
    identified_records,
)
from acan_tf.deploy.calibration_plots import plot_calibration
from acan_tf.deploy.camera_stats import probe_images, run_statistics
from acan_tf.deploy.model_card import MODEL_CARD, ONNX_FILE, ONNX_INT8_FILE, model_card
from acan_tf.deploy.onnx_export import OPSET, write_onnx
from acan_tf.deploy.saved_model_features import saved_model_features
from acan_tf.deploy.serving import write_saved_model
from acan_tf.deploy.versioning import check_model_name, resolve_version, staged_version
from acan_tf.errors import UserError
from acan_tf.evaluation.camera_norm import STATISTICS_FILE, CameraStatistics
from acan_tf.evaluation.reid import record_ids
from acan_tf.io import write_json
from acan_tf.model.builder import load_run
from acan_tf.model.identity import model_hash
from acan_tf.run_dir import RunDir

FORMATS = ("saved_model", "onnx", "onnx_int8")
DEFAULT_FORMATS = ("saved_model", "onnx")
SAVED_MODEL_TOLERANCE = 1e-5
ONNX_TOLERANCE = 1e-4


class ExportError(UserError, ValueError):
    """An export option is unusable; the message names the flag."""


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Where an export went and its model card."""

    path: str
    version: int
    card: dict


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The requested formats, in canonical order; unknown or no formats are an error."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ExportError(f"--formats={','.join(formats)}: expected one or more of {', '.join(FORMATS)}")
    if "onnx_int8" in formats and "onnx" not in formats:
        raise ExportError(f"--formats={','.join(formats)}: onnx_int8 needs onnx too (it is quantized from model.onnx)")
    return tuple(name for name in FORMATS if name in formats)


def final_metrics(run_dir: str) -> dict | None:
    """The "final" metrics of the run's report.json, or None for a run that has not finished."""
    folder = RunDir(run_dir)
    if not folder.is_finished():
        logging.warning("%s not found: the model card will have no metrics", folder.report_file)
        return None
    return folder.read_report().get("final")


def export_run(
    run_dir: str,
    output_dir: str,
    model_name: str,
    version: int | None = None,
    formats: Sequence[str] = DEFAULT_FORMATS,
    checkpoint: str = "best",
    opset: int = OPSET,
    saved_model_tolerance: float = SAVED_MODEL_TOLERANCE,
    onnx_tolerance: float = ONNX_TOLERANCE,
    int8_map_tolerance: float = quantize.MAP_TOLERANCE,
    int8_quantization: str = "static",
    int8_calibration_images: int = quantize.CALIBRATION_IMAGES,
    calibration_fpr: float = DEFAULT_FPR,
    threshold: float | None = None,
) -> ExportResult:
    """Writes OUT/NAME/VERSION (SavedModel files, model.onnx, model_int8.onnx, camera_stats.json, model.json) only if
    every format passes.

    The float formats must match Keras on sample inputs; the int8 model must keep the Keras model's test mAP
    within `int8_map_tolerance`. Each format is calibrated on its own embeddings of the labelled test split
    (the threshold at `calibration_fpr`); without one, the card records `threshold` (the user's) or none.
    camera_stats.json holds each training camera's statistics (camera-aware normalisation) from the run's training
    images, unlabelled; it is left out, with a warning, if they are gone.
    """
    formats = check_formats(formats)
    check_fpr(calibration_fpr)
    check_distance_threshold(threshold)
    check_model_name(model_name)
    if "onnx_int8" in formats:
        quantize.check_options(int8_quantization, int8_calibration_images)
    model_dir = os.path.join(output_dir, model_name)
    version = resolve_version(model_dir, version)  # before the slow model loading: refuse early
    config, acan, info = load_run(run_dir, checkpoint)
    metrics = final_metrics(run_dir)
    # Loaded before anything is written: a run whose data is gone is refused at once when int8 needs it.
    data = load_existing_dataset(config.dataset, config.data_root) if "onnx_int8" in formats else None
    data, missing = (data, None) if data is not None else _calibration_data(config)
    height, width = config.image_height, config.image_width
    images, tracklets = parity.sample_inputs(height, width)
    reference = {"images": parity.keras_embeddings(acan, images), "tracklets": parity.keras_embeddings(acan, tracklets)}
    identity = model_hash(acan.encoder)
    statistics = _camera_statistics(acan, config, data, run_dir, identity)

    with staged_version(model_dir, version) as staging:
        differences, tolerances = {}, {}
        if "saved_model" in formats:
            write_saved_model(acan, height, width, staging)
            differences["saved_model"] = parity.saved_model_differences(staging, images, tracklets, reference)
            tolerances["saved_model"] = saved_model_tolerance
        if "onnx" in formats:
            onnx_path = os.path.join(staging, ONNX_FILE)
            write_onnx(acan, height, width, onnx_path, opset)
            differences["onnx"] = parity.onnx_differences(onnx_path, images, tracklets, reference)
            tolerances["onnx"] = onnx_tolerance
        for name, values in differences.items():
            parity.check_tolerance(name, values, tolerances[name])
        int8 = None
        if "onnx_int8" in formats:  # quantized only from a float model that passed
            int8 = quantize.export_int8(acan, config, data, onnx_path, os.path.join(staging, ONNX_INT8_FILE),
                                        int8_quantization, int8_calibration_images, int8_map_tolerance,
                                        (images, tracklets), reference)
        export = {"model_name": model_name, "version": version, "formats": formats, "checkpoint": checkpoint,
                  "run_dir": os.path.abspath(run_dir), "opset": opset}
        figures = {
            "reference": "the Keras model of the checkpoint (TensorFlow), L2-normalised",
            "inputs": f"{len(images)} random uint8 images and {len(tracklets)} tracklets of "
                      f"{tracklets.shape[1]} frames (seed 0)",
            "max_abs_difference": differences,
            "tolerance": tolerances,
        }
        if int8 is not None:
            figures["onnx_int8"] = int8
            export["quantization"] = int8["quantization"]
        if statistics is not None:
            statistics.save(os.path.join(staging, STATISTICS_FILE))
        card = model_card(config, info, metrics, int(reference["images"].shape[1]), export, figures, identity,
                          statistics)
        card["calibration"] = _calibrate_formats(formats, staging, config, data, missing, calibration_fpr, threshold)
        write_json(os.path.join(staging, MODEL_CARD), card)
    return ExportResult(os.path.join(model_dir, str(version)), version, card)


def _camera_statistics(acan, config, data, run_dir: str, identity: str) -> CameraStatistics | None:
    """The training cameras' statistics for camera_stats.json, or None (warned) if the training data is gone."""
    try:
        data = data or load_trained_dataset(config.dataset, config.data_root)
    except DatasetError as error:
        logging.warning("no %s in the export: the training data of %s cannot be read (%s); compute each camera's "
                        "statistics with python -m acan_tf.camera_stats", STATISTICS_FILE, run_dir, error)
        return None
    probe = parity.keras_embeddings(acan, probe_images(config.image_height, config.image_width))
    return run_statistics(acan.encoder, config, data, identity, probe)


def _calibration_data(config: Config) -> tuple[ReIDDataset | None, str | None]:
    """The run's test split, or None and why it cannot be read."""
    try:
        return load_existing_dataset(config.dataset, config.data_root), None
    except UserError as error:
        return None, f"the run's dataset cannot be read ({error})"


def _calibrate_formats(formats: Sequence[str], staging: str, config: Config, data: ReIDDataset | None,
                       missing: str | None, fpr: float, threshold: float | None) -> dict:
    """The card's calibration: every format's own test embeddings calibrated, their figures written beside."""
    if data is None:
        return calibration.uncalibrated(missing, threshold)
    records = identified_records(data)
    pids, cameras = record_ids(records)
    height, width, batch = config.image_height, config.image_width, config.eval_batch_size
    embeddings = {}
    for name in formats:
        if name == "saved_model":
            embeddings[name] = saved_model_features(tf.saved_model.load(staging), records, height, width, batch)
        else:
            path = os.path.join(staging, ONNX_FILE if name == "onnx" else ONNX_INT8_FILE)
            embeddings[name] = quantize.onnx_features(path, records, height, width, batch)
    split = {"dataset": data.name, "root": data.root, "split": "test (query + gallery)", "items": len(records),
             "cameras": int(len(np.unique(cameras))), "identities": int(len(np.unique(pids)))}
    try:
        document = calibration.export_calibration(embeddings, cameras, pids, fpr, config.association_centering,
                                                  split)
    except CalibrationError as error:
        return calibration.uncalibrated(f"the test split of {data.root} cannot calibrate: {error}", threshold)
    for name, kinds in document["formats"].items():
        plot_calibration(kinds["items"], name, os.path.join(staging, calibration.figure_file(name)))
    if threshold is not None:  # the user's threshold wins; the measured figures stay beside it
        document.update(status="user", threshold=threshold)
    return document
