"""`python -m acan_tf.evaluate`: Re-ID metrics of a training run or an exported SavedModel on a dataset's query and gallery.

    python -m acan_tf.evaluate --run_dir=runs/acan [--checkpoint=best|last] [--dataset=... --data_root=...]
    python -m acan_tf.evaluate --saved_model=models/acan/1 [--dataset=... --data_root=...]

Prints mAP, rank-1/5/10/20, mINP, the inter-camera discrepancy (Table VII) and, for a run evaluated on its
own dataset, D's camera accuracy; writes them as JSON (--output). --rerank applies k-reciprocal
re-ranking before ranking. --analyses also writes the paper's figures (acan_tf.evaluation.analysis) into
the run directory (or the folder of --output for a SavedModel) and TensorBoard.

The dataset defaults to the one the model was trained on: the run's config.json, or for a SavedModel the
model card's dataset and, when its run directory is still there, that run's data root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from typing import Any, Iterator, Sequence

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from acan_tf.config import Config, ConfigError
from acan_tf.data import DATASET_NAMES, DatasetError, load_dataset
from acan_tf.data.pipeline import find_unreadable, inference_dataset
from acan_tf.data.records import Record, ReIDDataset, TrackletRecord, frame_paths
from acan_tf.evaluation.analysis import write_analyses
from acan_tf.evaluation.features import extract_features
from acan_tf.evaluation.reid import Reranking, evaluate_reid, evaluate_reid_features, format_metrics
from acan_tf.io import write_json
from acan_tf.model.restore import CHECKPOINTS, RunDirectoryError, load_run, read_json

# Marks the JSON files this command writes: only those may be replaced by a later evaluation.
KIND = "acan_tf.evaluation"
MODEL_CARD = "model.json"
REPORTED = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP", "num_valid_queries", "discrepancy", "d_test_accuracy")


class EvaluateError(ValueError):
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
) -> dict:
    """The evaluation document of a run's checkpoint; with `analyses`, the figures go into the run directory."""
    config, acan, info = load_run(run_dir, checkpoint)
    data = load_test_data(dataset or config.dataset, _data_root(dataset, data_root, config, f"the run {run_dir}"))
    # D's classes are the training dataset's cameras: its confusion means nothing on another dataset.
    same_data = dataset in (None, config.dataset) and data_root in (None, config.data_root)
    camera_classes = {int(camid): index for camid, index in info["camera_classes"].items()}
    with _named_failures(data):
        evaluation = evaluate_reid(
            acan.encoder, data.query, data.gallery, config.image_height, config.image_width,
            batch_size or config.eval_batch_size, config.normalize_features,
            acan.discriminator if same_data else None, camera_classes, reranking, keep_features=analyses,
        )
    written = {}
    if analyses:
        history = _history(run_dir)
        names = [f"cam {camid}" for camid, _ in sorted(camera_classes.items(), key=lambda item: item[1])]
        step = history[-1]["epoch"] if history else 0
        written = write_analyses(run_dir, evaluation, data.query, data.gallery, history, names, step, max_points)
    model = {"run_dir": os.path.abspath(run_dir), "checkpoint": checkpoint}
    return evaluation_document(model, data, reranking, evaluation, written)


def evaluate_saved_model(
    path: str,
    dataset: str | None = None,
    data_root: str | None = None,
    batch_size: int = 128,
    reranking: Reranking | None = None,
    analyses_dir: str | None = None,
    max_points: int = 2000,
) -> dict:
    """The evaluation document of an exported SavedModel (its `serving_default`, or `embed_tracklets` for tracklets)."""
    card = read_model_card(path)
    height, width = card["input"]["height"], card["input"]["width"]
    config = _training_config(card)
    name = dataset or card.get("dataset")
    if name is None:
        raise EvaluateError(f"{os.path.join(path, MODEL_CARD)} names no dataset: pass --dataset")
    data = load_test_data(name, _data_root(dataset, data_root, config, f"the model {path}"))
    model = tf.saved_model.load(path)
    with _named_failures(data):
        raw_query, raw_gallery = (saved_model_features(model, records, height, width, batch_size)
                                  for records in (data.query, data.gallery))
        evaluation = evaluate_reid_features(raw_query, raw_gallery, data.query, data.gallery, reranking=reranking,
                                            keep_features=analyses_dir is not None)
    written = {}
    if analyses_dir is not None:
        written = write_analyses(analyses_dir, evaluation, data.query, data.gallery, max_points=max_points)
    model_info = {"saved_model": os.path.abspath(path), "name": card.get("name"), "version": card.get("version")}
    return evaluation_document(model_info, data, reranking, evaluation, written)


def saved_model_features(model: Any, records: Sequence[Record], height: int, width: int, batch_size: int = 128) -> np.ndarray:
    """Embeddings [N, D] of records by a loaded export: `serving_default` per image, `embed_tracklets` per tracklet."""
    if records and isinstance(records[0], TrackletRecord):
        return _tracklet_embeddings(model.signatures["embed_tracklets"], records, height, width, batch_size)
    embed = model.signatures["serving_default"]
    return extract_features(lambda frames: embed(images=_as_uint8(frames))["embeddings"], records, height, width, batch_size)


def load_test_data(name: str, root: str) -> ReIDDataset:
    """The dataset `name` at `root`; a synthetic benchmark must exist already (evaluation never generates one)."""
    if name not in DATASET_NAMES:
        raise EvaluateError(f"--dataset={name}: expected one of {', '.join(DATASET_NAMES)}")
    if name == "synthetic" and not os.path.isfile(os.path.join(root, "spec.json")):
        raise DatasetError(f"no synthetic benchmark at {os.path.abspath(root)} (no spec.json): training generates it; "
                           "pass the --data_root the model was trained on")
    return load_dataset(name, root)


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
                        analyses: dict[str, str]) -> dict:
    """What the evaluation JSON holds: the model, the data, the settings, the metrics, the figures written."""
    metrics = {key: evaluation[key] for key in REPORTED if key in evaluation}
    metrics["cmc"] = np.asarray(evaluation["cmc"])[:20].tolist()
    if "camera_confusion" in evaluation:
        metrics["camera_confusion"] = np.asarray(evaluation["camera_confusion"]).tolist()
    return {
        "kind": KIND,
        "model": model,
        "dataset": {"name": data.name, "root": data.root, "is_video": data.is_video,
                    "num_query": len(data.query), "num_gallery": len(data.gallery)},
        "reranking": None if reranking is None else dataclasses.asdict(reranking),
        "metrics": metrics,
        "analyses": {name: os.path.abspath(path) for name, path in analyses.items()},
    }


def default_output(run_dir: str | None, saved_model: str | None, checkpoint: str, dataset: str | None, rerank: bool) -> str:
    """RUN/evaluation_<checkpoint>[_<dataset>][_rerank].json, or evaluation[_<dataset>][_rerank].json in the SavedModel."""
    parts = ["evaluation"] + ([checkpoint] if run_dir else []) + ([dataset] if dataset else []) + (["rerank"] if rerank else [])
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
    if not run_dir or not os.path.isfile(os.path.join(run_dir, "config.json")):
        return None
    return Config.from_json(read_json(os.path.join(run_dir, "config.json")))


def _history(run_dir: str) -> list[dict]:
    """The run's evaluations during training (report.json), or none for a run still training."""
    path = os.path.join(run_dir, "report.json")
    return read_json(path).get("evaluations", []) if os.path.isfile(path) else []


def _as_uint8(frames: tf.Tensor) -> tf.Tensor:
    """Decoded float pixels as the exported model takes them: rounded to uint8 (model.json's resize note)."""
    return tf.cast(tf.round(frames), tf.uint8)


def _tracklet_embeddings(embed, records: Sequence[Record], height: int, width: int, batch_size: int) -> np.ndarray:
    """One `embed_tracklets` call per tracklet, on its frames decoded in order."""
    lengths = [len(frame_paths(record)) for record in records]
    pending = np.zeros((0, height, width, 3), np.uint8)
    embeddings, index = [], 0
    for batch in inference_dataset(records, height, width, batch_size):
        pending = np.concatenate([pending, _as_uint8(batch).numpy()])
        while index < len(lengths) and len(pending) >= lengths[index]:
            tracklet, pending = pending[: lengths[index]], pending[lengths[index]:]
            embeddings.append(embed(tracklets=tf.constant(tracklet[np.newaxis]))["embeddings"].numpy()[0])
            index += 1
    return np.stack(embeddings)


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


def define_flags() -> None:
    """The command's flags (defined only when run as a program, so the module can be imported next to others)."""
    flags.DEFINE_string("run_dir", None, "Training run directory (config.json, run.json, checkpoints/).")
    flags.DEFINE_string("saved_model", None, "Exported SavedModel folder OUT/NAME/VERSION (with model.json).")
    flags.DEFINE_enum("checkpoint", "best", list(CHECKPOINTS), "Checkpoint of the run to evaluate.")
    flags.DEFINE_enum("dataset", None, list(DATASET_NAMES), "Dataset to evaluate on; default: the training dataset.")
    flags.DEFINE_string("data_root", None, "Dataset folder; default: the training data root (same dataset only).")
    flags.DEFINE_integer("batch_size", None, "Images per batch when extracting features; default: the run's "
                         "--eval_batch_size, 128 for a SavedModel.", lower_bound=1)
    flags.DEFINE_boolean("rerank", False, "Re-rank with k-reciprocal encoding (Zhong et al. 2017).")
    flags.DEFINE_integer("rerank_k1", Reranking.k1, "k1 of re-ranking.", lower_bound=1)
    flags.DEFINE_integer("rerank_k2", Reranking.k2, "k2 of re-ranking.", lower_bound=1)
    flags.DEFINE_float("rerank_lambda", Reranking.lambda_value, "lambda of re-ranking: weight of the original distance.",
                       lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_string("output", None, "JSON file to write; default: evaluation_<checkpoint>[_<dataset>][_rerank].json "
                        "in the run directory, or evaluation[_<dataset>][_rerank].json in the SavedModel folder.")
    flags.DEFINE_boolean("analyses", False, "Also write the analysis figures (plots/*.png) and TensorBoard images and "
                         "projector (logs/analysis/) into the run directory, or the folder of --output for a SavedModel.")
    flags.DEFINE_integer("tsne_points", 2000, "Most points in the t-SNE figure.", lower_bound=3)


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    if not options["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # checkpoint INFO lines of the projector would bury the table
    if (options.run_dir is None) == (options.saved_model is None):
        raise app.UsageError("pass exactly one of --run_dir and --saved_model")
    reranking = Reranking(options.rerank_k1, options.rerank_k2, options.rerank_lambda) if options.rerank else None
    output = options.output or default_output(options.run_dir, options.saved_model, options.checkpoint,
                                              options.dataset, options.rerank)
    try:
        check_output(output)
        if options.run_dir is not None:
            document = evaluate_run(options.run_dir, options.checkpoint, options.dataset, options.data_root,
                                    options.batch_size, reranking, options.analyses, options.tsne_points)
        else:
            document = evaluate_saved_model(options.saved_model, options.dataset, options.data_root,
                                            options.batch_size or 128, reranking,
                                            os.path.dirname(os.path.abspath(output)) if options.analyses else None,
                                            options.tsne_points)
    except (EvaluateError, RunDirectoryError, DatasetError, ConfigError) as error:
        sys.exit(f"acan_tf.evaluate: error: {error}")
    write_json(output, document)
    data = document["dataset"]
    print(f"{data['name']} at {data['root']}: {data['num_query']} queries, {data['num_gallery']} gallery "
          f"{'tracklets' if data['is_video'] else 'images'}"
          + (f"; re-ranked (k1={reranking.k1}, k2={reranking.k2}, lambda={reranking.lambda_value})" if reranking else ""))
    print(format_metrics(document["metrics"]))
    for name, path in document["analyses"].items():
        print(f"{name}: {path}")
    print(f"wrote {os.path.abspath(output)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
