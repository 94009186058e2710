"""`python -m acan_tf.train`: trains ACAN (or the triplet-only baseline) and writes a run directory.

Run directory: config.json, run.json (cameras, steps per epoch, versions), dataset.txt, checkpoints/{last,best}.weights.h5,
checkpoints/state/ (the full training state --resume continues from), logs/ (TensorBoard), report.json (config,
versions, per-epoch and final metrics).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

import tensorflow as tf
from absl import app, logging

from acan_tf.callbacks import SCALAR_METRICS, LastCheckpoint, PeriodicEvaluation, TrainingCheckpoint, TrainingLogs
from acan_tf.checkpointing import STATE_FOLDER, CheckpointError, TrainingState, read_progress, weights_digest
from acan_tf.data import DATASET_NAMES, DatasetError, load_dataset
from acan_tf.data.pipeline import Augmentation, TrainingBatches, find_unreadable, training_dataset
from acan_tf.data.records import ReIDDataset
from acan_tf.data.sampling import SamplingError, TrainingSet, training_set
from acan_tf.data.synthetic import SpecMismatchError, SyntheticSpec
from acan_tf.data.summary import summarize
from acan_tf.distribution import DistributionError, build_strategy, check_replica_split, distribute_batches, is_chief
from acan_tf.evaluate import evaluate_run
from acan_tf.evaluation.reid import evaluate_reid, format_metrics
from acan_tf.config import Config, ConfigError
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.io import write_json, write_text
from acan_tf.loop import NonFiniteError, fit, use_jit_compile
from acan_tf.model.backbones import BACKBONES, BackboneError
from acan_tf.model.builder import build_acan
from acan_tf.versions import package_versions


class RunError(RuntimeError):
    """The run cannot start or continue; the message says why and what to do."""


# Errors caused by the user's input: reported as one line, without a traceback.
USER_ERRORS = (ConfigError, DatasetError, SamplingError, BackboneError, SpecMismatchError, DistributionError,
               CheckpointError, RunError)

# Settings a resumed run may change: they change how often the state is saved, how evaluation is batched or on
# what hardware the run continues (another number of GPUs, say), not what the run computes.
RESUMABLE_CHANGES = (
    "resume", "overwrite", "checkpoint_every_steps", "eval_batch_size", "strategy", "jit_compile", "analyses",
)


def check_output_dir(config: Config) -> bool:
    """Whether to resume the run saved in --output_dir; refuses a folder holding files unless --resume or --overwrite."""
    folder = config.output_dir
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RunError(f"--output_dir={folder} is a file; expected a directory")
    check_writable(folder)
    if config.overwrite or not os.path.isdir(folder) or not os.listdir(folder):
        return False
    if config.resume:
        check_same_settings(config, os.path.join(folder, "config.json"))
        return True
    progress = read_progress(folder)
    if os.path.isfile(os.path.join(folder, "report.json")):
        held = "a finished run"
    elif progress is not None:
        held = f"an unfinished run (state saved at step {progress['step']})"
    else:
        held = "files (a previous run?)"
    raise RunError(
        f"--output_dir={folder} already holds {held}; pass --resume to continue it, --overwrite to replace it, "
        f"or choose another --output_dir"
    )


def check_writable(folder: str) -> None:
    """Raises a RunError if `folder`, or the nearest folder above it that exists, cannot be written."""
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"--output_dir={folder}: {existing} is not writable (read-only or no permission)")


def check_same_settings(config: Config, saved_path: str) -> None:
    """Raises a RunError naming every setting, other than RESUMABLE_CHANGES, that differs from the saved run's."""
    try:
        with open(saved_path, encoding="utf-8") as handle:
            saved = Config.from_json(json.load(handle))
    except FileNotFoundError as error:
        raise RunError(f"--resume: {os.path.dirname(saved_path)} holds files but no run (no config.json); "
                       f"choose another --output_dir") from error
    except (OSError, json.JSONDecodeError, TypeError) as error:
        raise RunError(f"--resume: {saved_path} cannot be read ({error}); pass --overwrite to start over") from error
    changed = [f.name for f in dataclasses.fields(Config)
               if f.name not in RESUMABLE_CHANGES and getattr(config, f.name) != getattr(saved, f.name)]
    if changed:
        listing = ", ".join(f"--{name}={getattr(config, name)!r} (saved run: {getattr(saved, name)!r})" for name in changed)
        raise RunError(f"--resume: {listing}; resume with the saved run's settings, or start a new run")


def dataset_options(config: Config) -> dict:
    """Options of `load_dataset` from flags: the spec of a synthetic benchmark still to be generated."""
    if config.dataset != "synthetic" or os.path.exists(os.path.join(config.data_root, "spec.json")):
        return {}  # an existing benchmark is read as it was made (its spec.json says how)
    return {"spec": SyntheticSpec(camera_shift=config.synthetic_camera_shift)}


def run(config: Config) -> dict:
    """Trains according to `config` (continuing a saved run with --resume), evaluates, and returns (and writes) the report."""
    started = time.time()
    strategy = build_strategy(config.strategy)  # first: MultiWorkerMirroredStrategy must precede every other op
    chief = is_chief(strategy)
    resuming = check_output_dir(config)
    report_path = os.path.join(config.output_dir, "report.json")
    if resuming and os.path.isfile(report_path):
        logging.info("%s holds a finished run: nothing to resume", config.output_dir)
        with open(report_path, encoding="utf-8") as handle:
            return json.load(handle)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
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
    check_replica_split(config.num_identities, batches.cameras.per_camera, len(batches.cameras.cameras),
                        strategy.num_replicas_in_sync)

    with strategy.scope():
        acan = build_acan(config, len(train.camera_classes), steps_per_epoch)
    state = TrainingState(acan)
    progress = state.restore(config.output_dir) if resuming else None
    initial_step = progress.step if progress else 0
    if progress:
        logging.info("resuming from step %d (epoch %d, batch %d) saved in %s", initial_step,
                     initial_step // steps_per_epoch + 1, initial_step % steps_per_epoch, config.output_dir)

    # Only the chief writes the run directory. Every worker takes part in each save, so the others save into a
    # scratch folder deleted at the end (TensorFlow's recommendation for multi-worker checkpoints).
    write_dir = config.output_dir if chief else tempfile.mkdtemp(prefix="acan_tf_worker_")
    if chief:
        if config.overwrite and os.path.isdir(config.output_dir):
            shutil.rmtree(config.output_dir)
        write_run_files(config, dataset, train, summary, steps_per_epoch)
    checkpoints = os.path.join(write_dir, "checkpoints")

    def evaluate() -> dict:
        return evaluate_reid(
            acan.encoder, dataset.query, dataset.gallery, config.image_height, config.image_width,
            config.eval_batch_size, config.normalize_features, acan.discriminator, train.camera_classes,
        )

    evaluation = PeriodicEvaluation(evaluate, config.eval_every, config.epochs, os.path.join(checkpoints, "best.weights.h5"),
                                    progress.evaluations if progress else None, progress.best_map if progress else -1.0)
    checkpoint = TrainingCheckpoint(
        state, write_dir, config.checkpoint_every_steps or math.ceil(steps_per_epoch / 2),
        lambda: {"evaluations": evaluation.evaluations, "best_map": evaluation.best_map} if chief else {},
        progress.epoch_logs if progress else None, initial_step,
    )
    callbacks = [LastCheckpoint(os.path.join(checkpoints, "last.weights.h5")), checkpoint]
    if chief:
        logs = TrainingLogs(os.path.join(write_dir, "logs"), max(1, steps_per_epoch // 10),
                            {"F": acan.f_optimizer, "D": acan.d_optimizer})
        callbacks = [evaluation, *callbacks, logs]  # evaluation first: the others record its val_* logs
    data = distribute_batches(
        strategy, lambda: training_dataset(batches, config.image_height, config.image_width, augmentation, initial_step)
    )
    try:
        fit(acan, strategy, data, callbacks, config.epochs, steps_per_epoch, initial_step,
            use_jit_compile(config.jit_compile), verbose=1 if chief else 0)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        bad = find_unreadable(batches.paths.tolist())
        if not bad:
            raise
        listing = "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
        raise RunError(
            f"{len(bad)} training image(s) cannot be decoded ({listing}). {saved(checkpoint.saved_step, config)} "
            f"Remove or replace the files (python -m acan_tf.data.check lists all), then rerun with --resume."
        ) from error
    except NonFiniteError as error:
        raise RunError(f"{error}: training stopped. {saved(checkpoint.saved_step, config)}") from error
    except OSError as error:
        # HDF5's messages run to several lines; the OS's reason and the file say what the user needs.
        reason = os.strerror(error.errno) if error.errno else str(error)
        where = error.filename or write_dir
        raise RunError(f"cannot write {where}: {reason}. {saved(checkpoint.saved_step, config)} "
                       f"Free space or fix permissions, then rerun with --resume.") from error
    finally:
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)

    history: dict[str, list[float]] = {}
    for epoch_logs in checkpoint.epoch_logs:
        for name, value in epoch_logs.items():
            history.setdefault(name, []).append(value)
    report = {
        "config": config.to_json(),
        "versions": package_versions(),
        "steps_per_epoch": steps_per_epoch,
        "history": history,
        "resumed_from_step": initial_step,
        "weights_sha256": weights_digest(acan),
        "seconds": time.time() - started,
    }
    if not chief:
        return report
    final = evaluation.evaluations[-1]
    report.update({
        "dataset": {
            "name": dataset.name,
            "root": dataset.root,
            "num_train": len(train.records),
            "camera_classes": {str(k): v for k, v in train.camera_classes.items()},
            "dropped_cameras": {str(k): v for k, v in train.dropped.items()},
        },
        "evaluations": [_scalars(e) for e in evaluation.evaluations],
        "final": {**_scalars(final), "cmc": final["cmc"][:20], "camera_confusion": final.get("camera_confusion")},
    })
    write_json(report_path, report)
    if config.analyses:  # after report.json, which the convergence figure reads
        evaluate_run(config.output_dir, "last", analyses=True)
    return report


def write_run_files(config: Config, dataset: ReIDDataset, train: TrainingSet, summary: str, steps_per_epoch: int) -> None:
    """Writes config.json, run.json and dataset.txt (what export and evaluation rebuild the model from)."""
    write_json(os.path.join(config.output_dir, "config.json"), config.to_json())
    write_json(os.path.join(config.output_dir, "run.json"), {
        "camera_classes": {str(k): v for k, v in train.camera_classes.items()},
        "steps_per_epoch": steps_per_epoch,
        "dataset": dataset.name,
        "is_video": dataset.is_video,
        "versions": package_versions(),
    })
    write_text(os.path.join(config.output_dir, "dataset.txt"), summary + "\n")


def saved(step: int, config: Config) -> str:
    """Where the last saved training state is, for error messages."""
    if not step:
        return "No training state had been saved yet."
    return f"The last good state, step {step}, is intact in {os.path.join(config.output_dir, STATE_FOLDER)}."


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k == "epoch" or k in SCALAR_METRICS or k == "num_valid_queries"}


def quiet_tensorflow_logging() -> None:
    """Keeps TensorFlow's own INFO lines out of a command's output, leaving ours."""
    # One per checkpoint save and per collective op: they would break up the progress bar. The checkpoint saver
    # logs through absl, which also carries our INFO lines, so only its records are dropped there.
    tf.get_logger().setLevel("WARNING")
    logging.get_absl_logger().addFilter(lambda record: not record.pathname.endswith("functional_saver.py"))


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_tensorflow_logging()
    try:
        report = run(config_from_flags())
    except USER_ERRORS as error:
        sys.exit(f"acan_tf.train: error: {error}")
    if "final" in report:  # a worker other than the chief of a multi-worker run does not evaluate
        print(format_metrics(report["final"]))
    print(f"final weights sha256: {report.get('weights_sha256')}")
    print(f"run directory: {os.path.abspath(report['config']['output_dir'])}")


if __name__ == "__main__":
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)})
    app.run(main)
