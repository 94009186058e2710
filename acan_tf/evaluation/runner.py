"""Evaluation of a training run or of an exported SavedModel on a dataset's query and gallery, as a JSON document.

The dataset defaults to the one the model was trained on: the run's config.json, or for a SavedModel the
model card's dataset and, when its run directory is still there, that run's data root. With `analyses`, the
paper's figures (acan_tf.evaluation.analysis) go into the run directory, or a given folder for a SavedModel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Iterator

import tensorflow as tf

from acan_tf.config import Config
from acan_tf.data import load_existing_dataset
from acan_tf.data.pipeline import find_unreadable
from acan_tf.data.records import ReIDDataset, frame_paths
from acan_tf.deploy.model_card import MODEL_CARD
from acan_tf.deploy.saved_model_features import saved_model_features
from acan_tf.errors import UserError
from acan_tf.evaluation import reported
from acan_tf.evaluation.analysis import camera_names, write_analyses
from acan_tf.evaluation.reid import Reranking, evaluate_reid, evaluate_reid_features
from acan_tf.model.builder import load_run
from acan_tf.run_dir import RunDir, RunDirectoryError, read_json

# Marks the JSON files acan_tf.evaluate writes: only those may be replaced by a later evaluation.
KIND = "acan_tf.evaluation"


class EvaluateError(UserError, ValueError):
    """An option or input of the evaluation is unusable; the message names the flag or file."""


def evaluate_run(
    run_dir: str,
    checkpoint: str = "best",
    dataset: str | None = None,
    data_root: str | None = None,
    batch_size: int | None = None,
    reranking: Reranking | None = None,
    analyses: bool = False,
    max_points: int = 2000,
    camera_normalization: bool = False,
) -> dict:
    """The evaluation document of a run's checkpoint; with `analyses`, the figures go into the run directory.

    With `camera_normalization` the ranking metrics are reported again on features normalised by unlabelled
    per-camera statistics of the test images (acan_tf.evaluation.camera_norm).
    """
    config, acan, info = load_run(run_dir, checkpoint)
    root = _data_root(dataset, data_root, config, f"the run {run_dir}")
    data = load_existing_dataset(dataset or config.dataset, root)
    # D's classes are the training dataset's cameras: its confusion means nothing on another dataset.
    same_data = dataset in (None, config.dataset) and data_root in (None, config.data_root)
    camera_classes = {int(camid): index for camid, index in info["camera_classes"].items()}
    with _named_failures(data):
        evaluation = evaluate_reid(
            acan.encoder, data.query, data.gallery, config.image_height, config.image_width,
            batch_size or config.eval_batch_size, config.normalize_features,
            acan.discriminator if same_data else None, camera_classes, reranking, keep_features=analyses,
            camera_normalization=camera_normalization,
        )
    written = {}
    if analyses:
        folder = RunDir(run_dir)
        history = folder.evaluations()
        step = history[-1]["epoch"] if history else 0
        # run.json names the training cameras since "Your own cameras"; older runs' cameras are numbered.
        written = write_analyses(folder.plots_dir, folder.analysis_logdir, evaluation, data.query, data.gallery,
                                 history, camera_names(camera_classes, info.get("camera_names")), step, max_points,
                                 dataset_camera_names=data.camera_names)
    model = {"run_dir": os.path.abspath(run_dir), "checkpoint": checkpoint}
    return evaluation_document(model, data, reranking, evaluation, written, camera_normalization)


def evaluate_saved_model(
    path: str,
    dataset: str | None = None,
    data_root: str | None = None,
    batch_size: int = 128,
    reranking: Reranking | None = None,
    analyses_dir: str | None = None,
    max_points: int = 2000,
    camera_normalization: bool = False,
) -> dict:
    """The evaluation document of an exported SavedModel (its `serving_default`, or `embed_tracklets` for tracklets).

    `camera_normalization` as in `evaluate_run`.
    """
    card = read_model_card(path)
    height, width = card["input"]["height"], card["input"]["width"]
    config = _training_config(card)
    name = dataset or card.get("dataset")
    if name is None:
        raise EvaluateError(f"{os.path.join(path, MODEL_CARD)} names no dataset: pass --dataset")
    data = load_existing_dataset(name, _data_root(dataset, data_root, config, f"the model {path}"))
    model = tf.saved_model.load(path)
    with _named_failures(data):
        raw_query, raw_gallery = (saved_model_features(model, records, height, width, batch_size)
                                  for records in (data.query, data.gallery))
        evaluation = evaluate_reid_features(raw_query, raw_gallery, data.query, data.gallery, reranking=reranking,
                                            keep_features=analyses_dir is not None,
                                            camera_normalization=camera_normalization)
    written = {}
    if analyses_dir is not None:
        folder = RunDir(analyses_dir)
        written = write_analyses(folder.plots_dir, folder.analysis_logdir, evaluation, data.query, data.gallery,
                                 max_points=max_points, dataset_camera_names=data.camera_names)
    model_info = {"saved_model": os.path.abspath(path), "name": card.get("name"), "version": card.get("version")}
    return evaluation_document(model_info, data, reranking, evaluation, written, camera_normalization)


def read_model_card(path: str) -> dict:
    """model.json of an export, checked to be one: a SavedModel with the input size."""
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise EvaluateError(f"--saved_model={path}: no saved_model.pb there; expected an export folder "
                            "OUT/NAME/VERSION written by python -m acan_tf.export")
    try:
        card = read_json(os.path.join(path, MODEL_CARD))
    except RunDirectoryError as error:
        raise EvaluateError(f"--saved_model={path}: {error}") from error
    size = card.get("input", {})
    if not isinstance(size.get("height"), int) or not isinstance(size.get("width"), int):
        raise EvaluateError(f"{os.path.join(path, MODEL_CARD)}: expected input.height and input.width (integers)")
    return card


def evaluation_document(model: dict, data: ReIDDataset, reranking: Reranking | None, evaluation: dict,
                        analyses: dict[str, str], camera_normalization: bool = False) -> dict:
    """What the evaluation JSON holds: the model, the data, the settings, the metrics, the figures written."""
    return {
        "kind": KIND,
        "model": model,
        "dataset": {"name": data.name, "root": data.root, "is_video": data.is_video,
                    "num_query": len(data.query), "num_gallery": len(data.gallery)},
        "reranking": None if reranking is None else dataclasses.asdict(reranking),
        "camera_normalization": reported.camera_normalization_note() if camera_normalization else None,
        "metrics": reported.summary(evaluation),
        "analyses": {name: os.path.abspath(path) for name, path in analyses.items()},
    }


def default_output(
    run_dir: str | None, saved_model: str | None, checkpoint: str, dataset: str | None, rerank: bool,
    camera_normalization: bool = False,
) -> str:
    """RUN/evaluation_<checkpoint>[_<dataset>][_rerank][_camnorm].json, or evaluation[_<dataset>][_rerank][_camnorm]
    .json in the SavedModel folder."""
    parts = (["evaluation"] + ([checkpoint] if run_dir else []) + ([dataset] if dataset else [])
             + (["rerank"] if rerank else []) + (["camnorm"] if camera_normalization else []))
    return os.path.join(run_dir or saved_model, "_".join(parts) + ".json")


def check_output(path: str) -> None:
    """Refuses to replace a file that is not an earlier evaluation's JSON."""
    if not os.path.exists(path):
        return
    try:
        previous = read_json(path)
    except RunDirectoryError:
        previous = {}
    if previous.get("kind") != KIND:
        raise EvaluateError(f"--output={path} exists and is not an evaluation written by acan_tf.evaluate; "
                            "choose another path")


def _data_root(dataset: str | None, data_root: str | None, config: Config | None, source: str) -> str:
    """--data_root, else the training data root when the dataset is the training one."""
    if data_root:
        return data_root
    if config is None:
        raise EvaluateError(f"--data_root is required: the training run directory of {source} is not there to name it")
    if dataset in (None, config.dataset):
        return config.data_root
    raise EvaluateError(f"--data_root is required with --dataset={dataset}: {source} was trained on {config.dataset}")


def _training_config(card: dict) -> Config | None:
    """The config of the run an export came from, if that run directory is still there."""
    run_dir = card.get("run_dir")
    if not run_dir or not RunDir(run_dir).has_config():
        return None
    return RunDir(run_dir).read_config()


@contextlib.contextmanager
def _named_failures(data: ReIDDataset) -> Iterator[None]:
    """Turns an unreadable image or a protocol failure (e.g. no valid query) into an EvaluateError naming the data."""
    try:
        yield
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        bad = find_unreadable([path for record in (*data.query, *data.gallery) for path in frame_paths(record)])
        if not bad:
            raise
        listing = "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
        raise EvaluateError(f"{len(bad)} test image(s) of {data.root} cannot be decoded ({listing})") from error
    except EvaluateError:
        raise
    except ValueError as error:
        raise EvaluateError(f"dataset {data.name} at {data.root}: {error}") from error
