"""`python -m acan_tf.train`: trains ACAN (or the triplet-only baseline) and writes a run directory.

Run directory: config.json, run.json (cameras, steps per epoch, versions), dataset.txt, checkpoints/{last,best}.weights.h5, logs/ (TensorBoard),
report.json (config, versions, per-epoch and final metrics).
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import time

import acan_tf  # first: it sets TensorFlow's environment before TensorFlow is imported

import keras
import numpy as np
import tensorflow as tf
from absl import app, logging

from acan_tf.callbacks import SCALAR_METRICS, LastCheckpoint, PeriodicEvaluation
from acan_tf.data import DATASET_NAMES, DatasetError, load_dataset
from acan_tf.data.pipeline import Augmentation, TrainingBatches, find_unreadable, training_dataset
from acan_tf.data.sampling import SamplingError, training_set
from acan_tf.data.synthetic import SpecMismatchError, SyntheticSpec
from acan_tf.data.summary import summarize
from acan_tf.evaluation.reid import evaluate_reid
from acan_tf.config import Config, ConfigError
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.io import write_json, write_text
from acan_tf.model.backbones import BACKBONES, BackboneError
from acan_tf.model.builder import build_acan, build_strategy


class RunError(RuntimeError):
    """The run cannot start or continue; the message says why and what to do."""


# Errors caused by the user's input: reported as one line, without a traceback.
USER_ERRORS = (ConfigError, DatasetError, SamplingError, BackboneError, SpecMismatchError, RunError)


def check_output_dir(config: Config) -> None:
    """Refuses to train into a folder that already holds files unless --overwrite is given."""
    if os.path.isdir(config.output_dir) and os.listdir(config.output_dir) and not config.overwrite:
        raise RunError(
            f"--output_dir={config.output_dir} already holds files (a previous run?); pass --overwrite "
            f"to replace them or choose another --output_dir"
        )


def dataset_options(config: Config) -> dict:
    """Options of `load_dataset` from flags: the spec of a synthetic benchmark still to be generated."""
    if config.dataset != "synthetic" or os.path.exists(os.path.join(config.data_root, "spec.json")):
        return {}  # an existing benchmark is read as it was made (its spec.json says how)
    return {"spec": SyntheticSpec(camera_shift=config.synthetic_camera_shift)}


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    return {
        "acan_tf": acan_tf.__version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }


def run(config: Config) -> dict:
    """Trains according to `config`, evaluates, and returns (and writes) the report."""
    check_output_dir(config)
    started = time.time()
    dataset = load_dataset(config.dataset, config.data_root, **dataset_options(config))
    summary = summarize(dataset, config.min_ids)
    logging.info("dataset\n%s", summary)
    train = training_set(dataset.train, config.min_ids)
    for camid, count in train.dropped.items():
        logging.warning("camera %d has %d training identities (< %d): dropped from training", camid + 1, count, config.min_ids)

    items_per_batch = config.num_identities * config.num_instances
    steps_per_epoch = config.steps_per_epoch or max(1, math.ceil(len(train.records) / items_per_batch))
    batches = TrainingBatches(
        train.records, train.local_ids, train.classes, config.num_identities, config.num_instances,
        config.camera_batch_size, config.frames_per_tracklet, config.seed, config.camera_sampling,
    )
    augmentation = Augmentation(config.flip, config.pad, config.random_erasing)
    data = training_dataset(batches, config.image_height, config.image_width, augmentation)

    strategy = build_strategy(config.strategy)
    with strategy.scope():
        acan = build_acan(config, len(train.camera_classes), steps_per_epoch)

    if config.overwrite and os.path.isdir(config.output_dir):
        shutil.rmtree(config.output_dir)
    checkpoints = os.path.join(config.output_dir, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)
    write_json(os.path.join(config.output_dir, "config.json"), config.to_json())
    write_json(os.path.join(config.output_dir, "run.json"), {
        "camera_classes": {str(k): v for k, v in train.camera_classes.items()},
        "steps_per_epoch": steps_per_epoch,
        "dataset": dataset.name,
        "is_video": dataset.is_video,
        "versions": versions(),
    })
    write_text(os.path.join(config.output_dir, "dataset.txt"), summary + "\n")

    def evaluate() -> dict:
        return evaluate_reid(
            acan.encoder, dataset.query, dataset.gallery, config.image_height, config.image_width,
            config.eval_batch_size, config.normalize_features, acan.discriminator, train.camera_classes,
        )

    evaluation = PeriodicEvaluation(evaluate, config.eval_every, config.epochs, os.path.join(checkpoints, "best.weights.h5"))
    callbacks = [
        evaluation,
        LastCheckpoint(os.path.join(checkpoints, "last.weights.h5")),
        keras.callbacks.TensorBoard(os.path.join(config.output_dir, "logs"), update_freq=max(1, steps_per_epoch // 10)),
    ]
    try:
        history = acan.fit(data, epochs=config.epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=1, shuffle=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        bad = find_unreadable(batches.paths.tolist())
        if not bad:
            raise
        listing = "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
        raise RunError(
            f"{len(bad)} training image(s) cannot be decoded ({listing}); checkpoints written so far in "
            f"{checkpoints} are intact. Remove or replace the files (python -m acan_tf.data.check lists all)."
        ) from error

    final = evaluation.evaluations[-1]
    report = {
        "config": config.to_json(),
        "versions": versions(),
        "dataset": {
            "name": dataset.name,
            "root": dataset.root,
            "num_train": len(train.records),
            "camera_classes": {str(k): v for k, v in train.camera_classes.items()},
            "dropped_cameras": {str(k): v for k, v in train.dropped.items()},
        },
        "steps_per_epoch": steps_per_epoch,
        "history": {name: [float(v) for v in values] for name, values in history.history.items()},
        "evaluations": [_scalars(e) for e in evaluation.evaluations],
        "final": {**_scalars(final), "cmc": final["cmc"][:20], "camera_confusion": final.get("camera_confusion")},
        "seconds": time.time() - started,
    }
    write_json(os.path.join(config.output_dir, "report.json"), report)
    return report


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k == "epoch" or k in SCALAR_METRICS or k == "num_valid_queries"}


def format_metrics(metrics: dict) -> str:
    """The final metrics as a table: ranking (mAP, CMC, mINP) and camera alignment."""
    rows = [("mAP", metrics["mAP"]), ("rank-1", metrics["rank1"]), ("rank-5", metrics["rank5"]),
            ("rank-10", metrics["rank10"]), ("rank-20", metrics["rank20"]), ("mINP", metrics["mINP"])]
    lines = ["Re-ID (Market-1501 protocol)", *(f"  {name:<10} {100 * value:6.2f} %" for name, value in rows),
             "Camera alignment", f"  {'inter-camera discrepancy (Table VII)':<40} {metrics['discrepancy']:.4f}"]
    if "d_test_accuracy" in metrics:
        lines.append(f"  {'D camera accuracy on test features':<40} {100 * metrics['d_test_accuracy']:.2f} %")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        report = run(config_from_flags())
    except USER_ERRORS as error:
        sys.exit(f"acan_tf.train: error: {error}")
    print(format_metrics(report["final"]))
    print(f"run directory: {os.path.abspath(report['config']['output_dir'])}")


if __name__ == "__main__":
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)})
    app.run(main)
