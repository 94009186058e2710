"""The trainer: from a Config to a finished run directory (acan_tf.run_dir) and its report.

It owns the rules of the output folder (refuse, resume or overwrite), writes the run files, drives the loop
with its callbacks, turns the failures a user can fix into one-line RunErrors, and ends with report.json and
the analysis figures drawn from the final evaluation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf
from absl import logging

from acan_tf.config import Config, ConfigError
from acan_tf.data import DatasetError, load_dataset
from acan_tf.data.pipeline import Augmentation, TrainingBatches, find_unreadable, training_dataset
from acan_tf.data.records import ReIDDataset, camera_name
from acan_tf.data.sampling import SamplingError, TrainingSet, training_set
from acan_tf.data.summary import summarize
from acan_tf.data.validation import carve_validation
from acan_tf.evaluation import reported
from acan_tf.evaluation.analysis import camera_names, write_analyses
from acan_tf.evaluation.features import frame_embedder
from acan_tf.evaluation.reid import evaluate_reid
from acan_tf.model.backbones import BackboneError
from acan_tf.model.builder import build_acan
from acan_tf.run_dir import RunDir, RunDirectoryError
from acan_tf.training.callbacks import LastCheckpoint, PeriodicEvaluation, TrainingCheckpoint, TrainingLogs
from acan_tf.training.collapse import CollapseCallback, CollapseError, CollapseGuard, DeadDiscriminatorCallback
from acan_tf.training.cross_camera import CrossCameraStage, CrossCameraState, describe_stages, is_round_epoch
from acan_tf.training.distribution import (
    DistributionError,
    broadcast_from_chief,
    build_strategy,
    check_replica_split,
    distribute_batches,
    is_chief,
)
from acan_tf.training.loop import NonFiniteError, fit, use_jit_compile
from acan_tf.training.preemption import StopRequested, StopSignals
from acan_tf.training.run_lock import RunLock, RunLockedError
from acan_tf.training.state import CheckpointError, TrainingState, read_progress, weights_digest
from acan_tf.versions import package_versions


class RunError(RuntimeError):
    """The run cannot start or continue; the message says why and what to do."""


# Errors caused by the user's input: the commands report them as one line, without a traceback.
USER_ERRORS = (ConfigError, DatasetError, SamplingError, BackboneError, DistributionError, CheckpointError,
               RunDirectoryError, RunLockedError, RunError)


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The dataset, its printed summary and what training consumes of it."""

    dataset: ReIDDataset
    summary: str
    train: TrainingSet


def check_output_dir(config: Config) -> bool:
    """Whether to resume the run in --output_dir; refuses a folder holding files without --resume or --overwrite."""
    folder = config.output_dir
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RunError(f"--output_dir={folder} is a file; expected a directory")
    check_writable(folder)
    if config.overwrite or not os.path.isdir(folder) or not RunDir(folder).contents():
        return False
    if config.resume:
        check_same_run(config, RunDir(folder))
        return True
    progress = read_progress(folder)
    if RunDir(folder).is_finished():
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


def check_same_run(config: Config, folder: RunDir) -> None:
    """Raises a RunError naming every setting that changes what the run computes from the saved run's."""
    if not folder.has_config():
        raise RunError(f"--resume: {folder.path} holds files but no run ({folder.config_file} not found); "
                       "choose another --output_dir")
    try:
        saved = folder.read_config()
    except (RunDirectoryError, ConfigError, TypeError) as error:
        raise RunError(f"--resume: {folder.config_file} cannot be read ({error}); pass --overwrite to start "
                       "over") from error
    ours, theirs = config.computed(), saved.computed()
    changed = [name for name in ours if ours[name] != theirs[name]]
    if changed:
        listing = ", ".join(f"--{name}={getattr(config, name)!r} (saved run: {getattr(saved, name)!r})"
                            for name in changed)
        raise RunError(f"--resume: {listing}; resume with the saved run's settings, or start a new run")


def load_training_data(config: Config) -> TrainingData:
    """The dataset of --dataset (its query and gallery: a validation split with --validation_identities), its summary
    (logged) and its training set, cameras too small dropped (with a warning)."""
    options = ({"camera_shift": config.synthetic_camera_shift, "preset": config.synthetic_preset}
               if config.dataset == "synthetic" else {})
    dataset = load_dataset(config.dataset, config.data_root, **options)
    if config.validation_identities:  # evaluation then sees held-out training identities, never the test split
        dataset = carve_validation(dataset, config.validation_identities, config.seed)
    summary = summarize(dataset, config.min_ids)
    logging.info("dataset\n%s", summary)
    train = training_set(dataset.train, config.min_ids)
    for camid, count in train.dropped.items():
        logging.warning("%s has %d training identities (< %d): dropped from training", camera_name(camid), count,
                        config.min_ids)
    return TrainingData(dataset, summary, train)


def run(config: Config) -> dict:
    """Trains by `config` (continuing a saved run with --resume), evaluates, and returns (and writes) the report.

    The run holds the lock of its run directory while it works (a second trainer on it fails at once); a SIGTERM or
    SIGINT ends it after the step in flight with its state saved, as StopRequested naming the step.
    """
    strategy = build_strategy(config.strategy)  # first: MultiWorkerMirroredStrategy must precede every other op
    chief = is_chief(strategy)
    # Only the chief writes the run directory. Every worker takes part in each save, so the others save into a
    # scratch folder deleted at the end (TensorFlow's recommendation for multi-worker checkpoints).
    write_dir = RunDir(config.output_dir if chief else tempfile.mkdtemp(prefix="acan_tf_worker_"))
    lock = RunLock(write_dir.lock_file)
    try:
        if os.path.isdir(write_dir.path):  # before looking at its files: a live run may be writing them
            check_writable(write_dir.path)  # a read-only folder cannot take the lock file: say so in one line
            lock.acquire()
        return _run(config, strategy, write_dir, lock)
    finally:
        lock.release()
        if not chief:
            shutil.rmtree(write_dir.path, ignore_errors=True)


def _run(config: Config, strategy: tf.distribute.Strategy, write_dir: RunDir, lock: RunLock) -> dict:
    """`run` with the strategy built and the run directory's lock held (or taken when the directory is made)."""
    started = time.time()
    chief = is_chief(strategy)
    folder = RunDir(config.output_dir)
    resuming = check_output_dir(config)
    if resuming and folder.is_finished():
        logging.info("%s holds a finished run: nothing to resume", config.output_dir)
        return folder.read_report()
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_training_data(config)
    train = data.train
    items_per_batch = config.num_identities * config.num_instances
    steps_per_epoch = config.steps_per_epoch or max(1, math.ceil(len(train.records) / items_per_batch))
    batches = TrainingBatches(
        train.records, train.local_ids, train.classes, config.num_identities, config.num_instances,
        config.camera_batch_size, config.frames_per_tracklet, config.seed, config.camera_sampling,
    )
    check_replica_split(config.num_identities, batches.cameras.per_camera, len(batches.cameras.cameras),
                        strategy.num_replicas_in_sync)

    keras.utils.set_random_seed(config.seed)  # the one seeding of a run: F's and D's initial weights
    with strategy.scope():
        acan = build_acan(config, len(train.camera_classes), steps_per_epoch)
    state = TrainingState(acan)
    progress = state.restore(config.output_dir) if resuming else None
    initial_step = progress.step if progress else 0
    if progress:
        logging.info("resuming from step %d (epoch %d, batch %d) saved in %s", initial_step,
                     initial_step // steps_per_epoch + 1, initial_step % steps_per_epoch, config.output_dir)

    if not lock.held:  # a new folder: made, and locked, only now that the run is known to start
        os.makedirs(write_dir.path, exist_ok=True)
        lock.acquire()
    if chief:
        if config.overwrite:
            folder.clear()
        folder.write_start(config, _run_info(data, steps_per_epoch), data.summary)

    # One trace of F for every evaluation and association round: a new one each time made TensorFlow warn of
    # frequent retracing in the middle of the progress bar.
    embed = frame_embedder(acan.encoder, config.image_height, config.image_width)

    def evaluate(final: bool) -> dict:
        return evaluate_reid(
            embed, data.dataset.query, data.dataset.gallery, config.image_height, config.image_width,
            config.eval_batch_size, config.normalize_features, acan.discriminator, train.camera_classes,
            keep_features=final and config.analyses,
        )

    stage = CrossCameraStage(config, train, CrossCameraState.from_json(progress.cross_camera if progress else None),
                             write_dir.association_logdir if chief else None,
                             lambda ids: broadcast_from_chief(strategy, ids))
    augmentation = Augmentation(config.flip, config.pad, config.random_erasing)

    def stream(step: int) -> tf.distribute.DistributedDataset:
        """The training batches from `step` on, with the pseudo-identities in force."""
        current = batches.with_pseudo_ids(stage.state.pseudo_ids)
        return distribute_batches(
            strategy, lambda: training_dataset(current, config.image_height, config.image_width, augmentation, step)
        )

    def before_epoch(epoch: int, step: int) -> tf.distribute.DistributedDataset | None:
        """Runs the association round due before `epoch`; a resumed epoch keeps the saved pseudo-identities."""
        if step % steps_per_epoch or not is_round_epoch(config, epoch):
            return None
        stage.associate(embed, epoch, step)
        return stream(step)

    guard = CollapseGuard(warn_only=config.collapse_guard == "warn")
    evaluation = PeriodicEvaluation(evaluate, config.eval_every, config.epochs, write_dir.checkpoint("best"),
                                    progress.evaluations if progress else None, progress.best_map if progress else -1.0)
    checkpoint = TrainingCheckpoint(
        state, write_dir.path, config.checkpoint_every_steps or math.ceil(steps_per_epoch / 2),
        lambda: {"evaluations": evaluation.evaluations, "best_map": evaluation.best_map,
                 "cross_camera": stage.state.to_json()},
        progress.epoch_logs if progress else None, initial_step,
        hold=lambda: guard.suspects and not guard.warn_only,
    )
    # The guard first: at the step where it fires, nothing is saved.
    callbacks = [CollapseCallback(guard), LastCheckpoint(write_dir.checkpoint("last")), checkpoint]
    if chief:
        logs = TrainingLogs(write_dir.logs_dir, max(1, steps_per_epoch // 10),
                            {"F": acan.f_optimizer, "D": acan.d_optimizer})
        # Evaluation first: the others record its val_* logs. The dead-D warning once, from the chief.
        callbacks = [evaluation, *callbacks, logs, DeadDiscriminatorCallback(len(train.camera_classes))]
    try:
        # The signals' handlers stay in place through the save after a stop: a second signal must not cut it short.
        with StopSignals() as signals:
            try:
                fit(acan, strategy, stream(initial_step), callbacks, config.epochs, steps_per_epoch, initial_step,
                    use_jit_compile(config.jit_compile), verbose=1 if chief else 0, before_epoch=before_epoch,
                    signals=signals)
            except StopRequested as stop:
                if checkpoint.saved_step != stop.step and not checkpoint.hold():
                    checkpoint.save(stop.step)  # every worker takes part, as in a periodic save
                stop.saved_step, stop.saved_in = checkpoint.saved_step, folder.state_dir
                raise
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        bad = find_unreadable(batches.paths.tolist())
        if not bad:
            raise
        listing = "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
        raise RunError(
            f"{len(bad)} training image(s) cannot be decoded ({listing}). {_saved(checkpoint.saved_step, folder)} "
            f"Remove or replace the files (python -m acan_tf.data.check lists all), then rerun with --resume."
        ) from error
    except (NonFiniteError, CollapseError) as error:
        raise RunError(f"{error}: training stopped. {_saved(checkpoint.saved_step, folder)}") from error
    except OSError as error:
        # HDF5's messages run to several lines; the OS's reason and the file say what the user needs.
        reason = os.strerror(error.errno) if error.errno else str(error)
        where = error.filename or write_dir.path
        raise RunError(f"cannot write {where}: {reason}. {_saved(checkpoint.saved_step, folder)} "
                       f"Free space or fix permissions, then rerun with --resume.") from error

    report = {
        "config": config.to_json(),
        "stages": describe_stages(config),
        "uses_cross_camera_labels": config.cross_camera == "supervised",
        "versions": package_versions(),
        "steps_per_epoch": steps_per_epoch,
        "history": _history(checkpoint.epoch_logs),
        "resumed_from_step": initial_step,
        "weights_sha256": weights_digest(acan),
        "seconds": time.time() - started,
    }
    if not chief:
        return report
    report.update({
        "dataset": {
            "evaluated_on": f"validation: {config.validation_identities} held-out training identities"
                            if config.validation_identities else "test split",
            "name": data.dataset.name,
            "root": data.dataset.root,
            "num_train": len(train.records),
            "camera_classes": {str(k): v for k, v in train.camera_classes.items()},
            "dropped_cameras": {str(k): v for k, v in train.dropped.items()},
        },
        "evaluations": [reported.scalars(e) for e in evaluation.evaluations],
        "final": reported.summary({**evaluation.evaluations[-1], **_last_round(stage.state)}),
        "association": list(stage.state.rounds),
    })
    folder.write_report(report)
    if config.analyses and evaluation.final_features:  # after report.json, the run's result, is safe
        final = {**evaluation.evaluations[-1], **evaluation.final_features}
        write_analyses(folder.plots_dir, folder.analysis_logdir, final, data.dataset.query, data.dataset.gallery,
                       report["evaluations"], camera_names(train.camera_classes), config.epochs)
    return report


def _last_round(state: CrossCameraState) -> dict:
    """The reported figures of the last association round, if there was one."""
    if not state.rounds:
        return {}
    last = state.rounds[-1]
    return {"association_precision": last["pair_precision"], "association_recall": last["pair_recall"]}


def _run_info(data: TrainingData, steps_per_epoch: int) -> dict:
    """run.json: what evaluation and export rebuild the model from."""
    return {
        "camera_classes": {str(k): v for k, v in data.train.camera_classes.items()},
        "steps_per_epoch": steps_per_epoch,
        "dataset": data.dataset.name,
        "is_video": data.dataset.is_video,
        "versions": package_versions(),
    }


def _history(epoch_logs: list[dict[str, float]]) -> dict[str, list[float]]:
    """Per-epoch logs as one list per name."""
    history: dict[str, list[float]] = {}
    for logs in epoch_logs:
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
    return history


def _saved(step: int, folder: RunDir) -> str:
    """Where the last saved training state is, for error messages."""
    if not step:
        return "No training state had been saved yet."
    return f"The last good state, step {step}, is intact in {folder.state_dir}."

