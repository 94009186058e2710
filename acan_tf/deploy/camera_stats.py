"""Per-camera statistics of a deployed model (acan_tf.evaluation.camera_norm): from a run's training images at
export, from a folder of one camera's images afterwards, and the probe that ties them to a model without its card.

Only images are read, never identities: a deployment takes them from each camera's footage.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.data.datasets.layout import is_image_name
from acan_tf.data.pipeline import find_unreadable
from acan_tf.data.records import ImageRecord, Record, ReIDDataset
from acan_tf.deploy.model_card import MODEL_CARD, ONNX_FILE
from acan_tf.deploy.onnx_export import run_onnx
from acan_tf.deploy.quantize import onnx_features
from acan_tf.deploy.saved_model_features import saved_model_features
from acan_tf.deploy.serving import EMBEDDINGS, IMAGE_SIGNATURE, IMAGES
from acan_tf.evaluation.camera_norm import STATISTICS_FILE, CameraStatistics, CameraStatisticsError
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.model.identity import MODEL_HASH, ModelIdentityError, read_model_hash
from acan_tf.run_dir import RunDirectoryError, read_json

# A mean converges long before this; the cap bounds the export's time on large (or video) training sets.
MAX_IMAGES_PER_CAMERA = 1000
SAMPLE_SEED = 0
# The statistics file keeps the model's embeddings of these, for a client that cannot read the model's card.
PROBE_IMAGES = 2
RUNTIMES = ("auto", "onnx", "saved_model")


def probe_images(height: int, width: int, count: int = PROBE_IMAGES) -> np.ndarray:
    """Fixed uint8 probe images [count, H, W, 3], computable anywhere without a random generator (export/ too)."""
    rows, columns, channels = np.arange(height)[:, None, None], np.arange(width)[None, :, None], np.arange(3)
    return np.stack([(rows * 13 + columns * 29 + channels * 61 + index * 101) % 256
                     for index in range(count)]).astype(np.uint8)


def run_statistics(embed_frames: Callable, config: Config, data: ReIDDataset, model_hash: str,
                   probe: np.ndarray) -> CameraStatistics:
    """Statistics of each training camera of a run (named by `ReIDDataset.camera_keys`), from at most
    MAX_IMAGES_PER_CAMERA of its training images or tracklets (a seeded draw), unlabelled."""
    chosen = _sample_per_camera(data.train)
    features = extract_features(embed_frames, chosen, config.image_height, config.image_width,
                                config.eval_batch_size)
    source = (f"the run's training images of {data.name} (unlabelled; at most {MAX_IMAGES_PER_CAMERA} per camera, "
              f"seed {SAMPLE_SEED})")
    return CameraStatistics.from_features(features, [data.camera_keys[record.camid] for record in chosen], model_hash,
                                          source, probe)


def folder_records(folder: str) -> list[ImageRecord]:
    """The images directly inside `folder`, as records (no identity: pid -1) of an unnamed camera."""
    if not os.path.isdir(folder):
        raise CameraStatisticsError(f"--images={folder}: no such folder; expected a folder of one camera's images")
    names = sorted(name for name in os.listdir(folder) if is_image_name(name))
    if not names:
        raise CameraStatisticsError(f"--images={folder}: no image files (.jpg, .jpeg, .png, .bmp, .gif) in it")
    return [ImageRecord(os.path.join(folder, name), -1, -1) for name in names]


def _sample_per_camera(records: Sequence[Record]) -> list[Record]:
    """At most MAX_IMAGES_PER_CAMERA records of each camera, drawn with SAMPLE_SEED, in their original order."""
    rng = np.random.default_rng(SAMPLE_SEED)
    camids = np.array([record.camid for record in records])
    kept = []
    for camid in sorted(set(camids.tolist())):
        indices = np.flatnonzero(camids == camid)
        if len(indices) > MAX_IMAGES_PER_CAMERA:
            indices = rng.choice(indices, MAX_IMAGES_PER_CAMERA, replace=False)
        kept.extend(indices.tolist())
    return [records[index] for index in sorted(kept)]


def update_camera(model: str, camera: str, images: str, runtime: str = "auto", statistics_path: str | None = None,
                  batch_size: int = 64) -> tuple[CameraStatistics, str]:
    """Computes `camera`'s statistics from the folder `images` with the export `model` (its folder, or a model file
    in it) and adds them to (or replaces them in) its statistics file; returns the statistics and where they went.

    Nothing is written if anything is wrong: the file holds another model's statistics, is malformed, an image
    cannot be read.
    """
    folder, model_file, runtime = resolve_model(model, runtime)
    card = read_card(folder)
    model_hash, height, width = card[MODEL_HASH], card["input"]["height"], card["input"]["width"]
    _check_camera_name(camera)
    path = statistics_path or os.path.join(folder, STATISTICS_FILE)
    existing = None
    if os.path.exists(path):
        existing = CameraStatistics.load(path)
        existing.check_model(model_hash, path)
    records = folder_records(images)
    embed = _runtime_features(folder, model_file, runtime)
    try:
        features = embed(records, height, width, batch_size)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        bad = find_unreadable([record.path for record in records])
        if not bad:
            raise
        listing = "; ".join(f"{name}: {reason}" for name, reason in bad[:5])
        raise CameraStatisticsError(f"--images={images}: {len(bad)} image(s) cannot be decoded ({listing})") from error
    added = f"camera {camera}: {len(records)} images of {os.path.abspath(images)} (unlabelled)"
    if existing is None:
        probe = l2_normalize(embed_pixels(folder, model_file, runtime, probe_images(height, width)))
        statistics = CameraStatistics.from_features(features, [camera] * len(features), model_hash, added, probe)
    else:
        statistics = dataclasses.replace(existing.with_camera(camera, features), source=f"{existing.source}; {added}")
    statistics.save(path)
    return statistics, path


def resolve_model(model: str, runtime: str) -> tuple[str, str | None, str]:
    """(export folder, ONNX file or None, runtime) of --model and --runtime (auto: ONNX if there, else SavedModel)."""
    if runtime not in RUNTIMES:
        raise CameraStatisticsError(f"--runtime={runtime}: expected one of {', '.join(RUNTIMES)}")
    if os.path.isfile(model):
        if runtime == "saved_model" or not model.endswith(".onnx"):
            raise CameraStatisticsError(f"--model={model}: a file must be an ONNX model (model.onnx, "
                                        "model_int8.onnx); pass the export folder for the SavedModel")
        return os.path.dirname(os.path.abspath(model)), model, "onnx"
    if not os.path.isdir(model):
        raise CameraStatisticsError(f"--model={model}: no such export; expected OUT/NAME/VERSION written by "
                                    "python -m acan_tf.export, or a model.onnx in it")
    has_onnx = os.path.isfile(os.path.join(model, ONNX_FILE))
    has_saved_model = os.path.isfile(os.path.join(model, "saved_model.pb"))
    if runtime == "auto":
        runtime = "onnx" if has_onnx else "saved_model"
    if (runtime == "onnx" and not has_onnx) or (runtime == "saved_model" and not has_saved_model):
        raise CameraStatisticsError(f"--model={model}: no {ONNX_FILE if runtime == 'onnx' else 'saved_model.pb'} "
                                    f"there for --runtime={runtime}")
    return model, os.path.join(model, ONNX_FILE) if runtime == "onnx" else None, runtime


def read_card(folder: str) -> dict:
    """The export's model.json, checked to name its model_hash and input size."""
    path = os.path.join(folder, MODEL_CARD)
    try:
        card = read_json(path)
    except RunDirectoryError as error:
        raise CameraStatisticsError(f"{error}; expected the model card of an export") from error
    try:
        named = read_model_hash(card, path)
    except ModelIdentityError as error:
        raise CameraStatisticsError(str(error)) from error
    if not named:
        raise CameraStatisticsError(f"{path} names no {MODEL_HASH}: the model was exported before camera statistics "
                                    "existed; export the run again")
    size = card.get("input", {})
    if not isinstance(size.get("height"), int) or not isinstance(size.get("width"), int):
        raise CameraStatisticsError(f"{path}: expected input.height and input.width (integers)")
    return card


def embed_pixels(folder: str, model_file: str | None, runtime: str, pixels: np.ndarray) -> np.ndarray:
    """Embeddings of uint8 images [N, H, W, 3] by the export's ONNX model or SavedModel."""
    if runtime == "onnx":
        return run_onnx(model_file, pixels)[EMBEDDINGS]
    return tf.saved_model.load(folder).signatures[IMAGE_SIGNATURE](**{IMAGES: tf.constant(pixels)})[EMBEDDINGS].numpy()


def _runtime_features(folder: str, model_file: str | None, runtime: str) -> Callable:
    """records, height, width, batch size → features [N, D], by ONNX Runtime or by the SavedModel."""
    if runtime == "onnx":
        return lambda records, height, width, batch: onnx_features(model_file, records, height, width, batch)
    model = tf.saved_model.load(folder)
    return lambda records, height, width, batch: saved_model_features(model, records, height, width, batch)


def _check_camera_name(camera: str) -> None:
    """Accepts a camera name that reads as one word in a file and on a command line."""
    if not camera or not camera.isprintable() or camera != camera.strip():
        raise CameraStatisticsError(f"--camera={camera!r}: expected a non-empty printable name without leading or "
                                    "trailing spaces")
