"""The trainer: from a Config to a finished run directory (acan_tf.run_dir) and its report.

`run` applies the rules of the output folder (refuse, resume or overwrite) and holds the run's lock; then four
steps: `prepare` (data, model, restored state, run files), `build_callbacks` (their order, in one place), `train`
(the loop; a stop signal saves the state; the failures a user can fix become one-line RunErrors) and `report`
(report.json and the analysis figures drawn from the final evaluation). The callbacks share one RunState.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tempfile
import time
from typing import Callable

import keras
import tensorflow as tf
from absl import logging

from acan_tf.config import Config, ConfigError
from acan_tf.data import load_dataset
from acan_tf.data.holdout import HeldOut, hold_out_frames
from acan_tf.data.pipeline import Augmentation, TrainingBatches, find_unreadable, training_dataset
from acan_tf.data.records import ReIDDataset
from acan_tf.data.sampling import TrainingSet, training_set
from acan_tf.data.summary import summarize
from acan_tf.data.validation import carve_validation
from acan_tf.errors import UserError
from acan_tf.evaluation import reported
from acan_tf.evaluation.analysis import write_analyses
from acan_tf.evaluation.features import frame_embedder
from acan_tf.evaluation.intra_camera import MAP as INTRA_CAMERA_MAP
from acan_tf.evaluation.intra_camera import evaluate_intra_camera
from acan_tf.evaluation.reid import evaluate_reid
from acan_tf.model.acan import ACAN
from acan_tf.model.builder import build_acan
from acan_tf.model.identity import weights_digest
from acan_tf.run_dir import RunDir, RunDirectoryError
from acan_tf.training.callbacks import LastCheckpoint, PeriodicEvaluation, TrainingCheckpoint, TrainingLogs
from acan_tf.training.collapse import CollapseCallback, CollapseError, CollapseGuard, DeadDiscriminatorCallback
from acan_tf.training.cross_camera import CrossCameraStage, CrossCameraState, describe_stages, is_round_epoch
from acan_tf.training.distribution import (
    broadcast_from_chief,
    build_strategy,
    check_replica_split,
    distribute_batches,
    is_chief,
)
from acan_tf.training.loop import NonFiniteError, fit, use_jit_compile
from acan_tf.training.preemption import StopRequested, StopSignals
from acan_tf.training.run_lock import RunLock
from acan_tf.training.run_state import RunState
from acan_tf.training.state import TrainingState, read_progress
from acan_tf.versions import package_versions


class RunError(UserError, RuntimeError):
    """The run cannot start or continue; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """The dataset, its printed summary and what training consumes of it; without cross-camera labels, the frames
    held out of training for the intra-camera retrieval (acan_tf.data.holdout)."""

    dataset: ReIDDataset
    summary: str
    train: TrainingSet
    held_out: HeldOut | None = None


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
    if config.cross_camera == "supervised" and not dataset.train_ids_cross_camera:
        raise RunError(f"--cross_camera=supervised trains on true cross-camera identities, and {dataset.name} has "
                       "none (its training ids are camera-local); use --cross_camera=association")
    held_out = None
    if not dataset.has_evaluation:  # no cross-camera labels: frames of each local id are held out instead
        held_out = hold_out_frames(dataset.train)
        dataset = dataclasses.replace(dataset, train=held_out.train)
        logging.info("no query/ and gallery/: no cross-camera labels, so retrieval across cameras cannot be measured; "
                     "%d frames of %d local ids held out for the intra-camera retrieval", 2 * len(held_out.query),
                     len(held_out.query))
    summary = summarize(dataset, config.min_ids)
    logging.info("dataset\n%s", summary)
    train = training_set(dataset.train, config.min_ids, dataset.camera_names)
    for camid, count in train.dropped.items():
        logging.warning("%s has %d training identities (< %d): dropped from training", dataset.camera_names[camid],
                        count, config.min_ids)
    return TrainingData(dataset, summary, train, held_out)


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
    resuming = check_output_dir(config)
    if resuming and RunDir(config.output_dir).is_finished():
        logging.info("%s holds a finished run: nothing to resume", config.output_dir)
        return RunDir(config.output_dir).read_report()
    session = prepare(config, strategy, write_dir, lock, resuming)
    # Also the one that saves the state of the step in flight when a signal stops the run (train).
    checkpoint = TrainingCheckpoint(session.training_state, write_dir.path,
                                    config.checkpoint_every_steps or math.ceil(session.steps_per_epoch / 2),
                                    session.run)
    train(session, build_callbacks(session, checkpoint), checkpoint)
    return report(session, time.time() - started)


@dataclasses.dataclass
class Session:
    """Everything a run trains with, once prepared: its data and batches, the model and its saved state, the
    cross-camera stage, and the RunState that the loop advances and the callbacks share."""

    config: Config
    strategy: tf.distribute.Strategy
    write_dir: RunDir  # where this worker writes: the run directory, or a scratch folder for a non-chief worker
    data: TrainingData
    batches: TrainingBatches
    acan: ACAN
    training_state: TrainingState
    stage: CrossCameraStage
    run: RunState
    initial_step: int
    # One trace of F for every evaluation and association round: a new one each time made TensorFlow warn of
    # frequent retracing in the middle of the progress bar.
    embed: Callable[[tf.Tensor], tf.Tensor]
    # The rounds' embedder: F's teacher with --association_teacher_momentum, else `embed`.
    association_embed: Callable[[tf.Tensor], tf.Tensor]

    @property
    def chief(self) -> bool:
        """Whether this worker writes the run directory and evaluates."""
        return is_chief(self.strategy)

    @property
    def folder(self) -> RunDir:
        """The run directory."""
        return RunDir(self.config.output_dir)

    @property
    def steps_per_epoch(self) -> int:
        """Training steps per epoch."""
        return self.run.steps_per_epoch

    def evaluate(self, final: bool) -> dict:
        """One evaluation on the query and gallery (the last one keeps its features for the figures); without
        cross-camera labels, the intra-camera retrieval of the held-out frames."""
        config = self.config
        held_out = self.data.held_out
        if held_out is not None:
            return evaluate_intra_camera(self.embed, held_out.query, held_out.gallery, config.image_height,
                                         config.image_width, config.eval_batch_size, config.normalize_features)
        return evaluate_reid(
            self.embed, self.data.dataset.query, self.data.dataset.gallery, config.image_height, config.image_width,
            config.eval_batch_size, config.normalize_features, self.acan.discriminator,
            self.data.train.camera_classes, keep_features=final and config.analyses, camera_normalization=True,
        )

    def stream(self, step: int) -> tf.distribute.DistributedDataset:
        """The training batches from `step` on, with the pseudo-identities in force."""
        config = self.config
        state = self.run.cross_camera
        current = self.batches.with_pseudo_ids(state.pseudo_ids, state.confidences)
        augmentation = Augmentation(config.flip, config.pad, config.random_erasing)
        return distribute_batches(
            self.strategy,
            lambda: training_dataset(current, config.image_height, config.image_width, augmentation, step),
        )

    def before_epoch(self, epoch: int, step: int) -> tf.distribute.DistributedDataset | None:
        """Runs the association round due before `epoch`; a resumed epoch keeps the saved pseudo-identities."""
        if step % self.steps_per_epoch or not is_round_epoch(self.config, epoch):
            return None
        self.run.cross_camera = self.stage.associate(self.run.cross_camera, self.association_embed, epoch, step)
        return self.stream(step)


def prepare(config: Config, strategy: tf.distribute.Strategy, write_dir: RunDir, lock: RunLock,
            resuming: bool) -> Session:
    """Step 1, prepare the run: data, batches, model (restored when resuming), the run directory made, locked and
    its start files written."""
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_training_data(config)
    train = data.train
    items_per_batch = config.num_identities * config.num_instances
    steps_per_epoch = config.steps_per_epoch or max(1, math.ceil(len(train.records) / items_per_batch))
    batches = TrainingBatches(
        train.records, train.local_ids, train.classes, config.num_identities, config.num_instances,
        config.camera_batch_size, config.frames_per_tracklet, config.seed, config.camera_sampling, train.class_names,
    )
    check_replica_split(config.num_identities, batches.cameras.per_camera, len(batches.cameras.cameras),
                        strategy.num_replicas_in_sync)

    keras.utils.set_random_seed(config.seed)  # the one seeding of a run: F's and D's initial weights
    with strategy.scope():
        acan = build_acan(config, len(train.camera_classes), steps_per_epoch, train.ids_per_camera)
    training_state = TrainingState(acan)
    progress = training_state.restore(config.output_dir) if resuming else None
    run = RunState.resumed(steps_per_epoch, progress)
    if progress:
        logging.info("resuming from step %d (epoch %d, batch %d) saved in %s", run.step,
                     run.step // steps_per_epoch + 1, run.step % steps_per_epoch, config.output_dir)

    if not lock.held:  # a new folder: made, and locked, only now that the run is known to start
        os.makedirs(write_dir.path, exist_ok=True)
        lock.acquire()
    chief = is_chief(strategy)
    if chief:
        folder = RunDir(config.output_dir)
        if config.overwrite:
            folder.clear()
        folder.write_start(config, _run_info(data, steps_per_epoch), data.summary)

    stage = CrossCameraStage(config, train, write_dir.association_logdir if chief else None,
                             lambda ids: broadcast_from_chief(strategy, ids), data.dataset.train_ids_cross_camera)
    run.cross_camera = stage.start(run.cross_camera)
    embed = frame_embedder(acan.encoder, config.image_height, config.image_width)
    association_embed = embed if acan.teacher is None else frame_embedder(acan.teacher, config.image_height,
                                                                          config.image_width)
    return Session(config, strategy, write_dir, data, batches, acan, training_state, stage, run, run.step, embed,
                   association_embed)


def build_callbacks(session: Session, checkpoint: TrainingCheckpoint) -> list[keras.callbacks.Callback]:
    """Step 2, the callbacks in the order they must run: the one place to add one.

    Evaluation first: the others record its val_* logs. The collapse guard before every save: at the step where it
    fires, nothing is saved. The chief alone evaluates, writes TensorBoard and warns of a dead D.
    """
    config, run, write_dir = session.config, session.run, session.write_dir
    chief = session.chief
    selection = "mAP" if session.data.held_out is None else INTRA_CAMERA_MAP
    evaluation = [PeriodicEvaluation(session.evaluate, config.eval_every, config.epochs, write_dir.checkpoint("best"),
                                     run, selection)] if chief else []
    guard = CollapseCallback(CollapseGuard(warn_only=config.collapse_guard == "warn"), run)
    reporting = [
        TrainingLogs(write_dir.logs_dir, max(1, session.steps_per_epoch // 10),
                     {"F": session.acan.f_optimizer, "D": session.acan.d_optimizer}, run),
        DeadDiscriminatorCallback(len(session.data.train.camera_classes), run),
    ] if chief else []
    return [*evaluation, guard, LastCheckpoint(write_dir.checkpoint("last")), checkpoint, *reporting]


def train(session: Session, callbacks: list[keras.callbacks.Callback], checkpoint: TrainingCheckpoint) -> None:
    """Step 3, train to the last epoch; a stop signal saves the state of the step in flight, and the failures a user
    can fix become RunErrors saying what is kept."""
    config, run, folder = session.config, session.run, session.folder
    try:
        # The signals' handlers stay in place through the save after a stop: a second signal must not cut it short.
        with StopSignals() as signals:
            try:
                fit(session.acan, session.strategy, session.stream(run.step), callbacks, run, config.epochs,
                    use_jit_compile(config.jit_compile), verbose=1 if session.chief else 0,
                    before_epoch=session.before_epoch, signals=signals)
            except StopRequested as stop:
                if run.saved_step != run.step and not run.hold_saves:
                    checkpoint.save()  # every worker takes part, as in a periodic save
                stop.saved_step, stop.saved_in = run.saved_step, folder.state_dir
                raise
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        bad = find_unreadable(session.batches.paths.tolist())
        if not bad:
            raise
        listing = "; ".join(f"{path}: {reason}" for path, reason in bad[:5])
        raise RunError(
            f"{len(bad)} training image(s) cannot be decoded ({listing}). {_saved(run.saved_step, folder)} "
            f"Remove or replace the files (python -m acan_tf.data.check lists all), then rerun with --resume."
        ) from error
    except (NonFiniteError, CollapseError) as error:
        raise RunError(f"{error}: training stopped. {_saved(run.saved_step, folder)}") from error
    except OSError as error:
        # HDF5's messages run to several lines; the OS's reason and the file say what the user needs.
        reason = os.strerror(error.errno) if error.errno else str(error)
        where = error.filename or session.write_dir.path
        raise RunError(f"cannot write {where}: {reason}. {_saved(run.saved_step, folder)} "
                       f"Free space or fix permissions, then rerun with --resume.") from error


def report(session: Session, seconds: float) -> dict:
    """Step 4, the report: returned, and on the chief written as report.json, then the analysis figures."""
    config, run, data = session.config, session.run, session.data
    result = {
        "config": config.to_json(),
        "stages": describe_stages(config),
        "uses_cross_camera_labels": config.cross_camera == "supervised",
        "versions": package_versions(),
        "steps_per_epoch": session.steps_per_epoch,
        "history": _history(run.epoch_logs),
        "resumed_from_step": session.initial_step,
        "weights_sha256": weights_digest(session.acan),
        "seconds": seconds,
    }
    if not session.chief:
        return result
    train = data.train
    result.update({
        "dataset": {
            "evaluated_on": _evaluated_on(config, data),
            "name": data.dataset.name,
            "root": data.dataset.root,
            "num_train": len(train.records),
            "camera_classes": {str(k): v for k, v in train.camera_classes.items()},
            "camera_names": list(data.dataset.camera_names),
            "dropped_cameras": {str(k): v for k, v in train.dropped.items()},
        },
        "evaluations": [reported.scalars(e) for e in run.evaluations],
        "final": reported.summary({**run.evaluations[-1], **_last_round(run.cross_camera)}),
        "camera_normalization": reported.camera_normalization_note(),
        "association": list(run.cross_camera.rounds),
    })
    folder = session.folder
    folder.write_report(result)
    if config.analyses and run.final_features:  # after report.json, the run's result, is safe
        final = {**run.evaluations[-1], **run.final_features}
        write_analyses(folder.plots_dir, folder.analysis_logdir, final, data.dataset.query, data.dataset.gallery,
                       result["evaluations"], list(train.class_names), config.epochs,
                       dataset_camera_names=data.dataset.camera_names)
    return result


def _last_round(state: CrossCameraState) -> dict:
    """The reported figures of the last association round, if there was one: measured against the true ids when
    the training ids are cross-camera, else the figures that need no labels."""
    if not state.rounds:
        return {}
    last = state.rounds[-1]
    if "pair_precision" in last:
        return {"association_precision": last["pair_precision"], "association_recall": last["pair_recall"]}
    return {"association_links": last["num_links"], "association_components": last["num_components"],
            "association_mean_size": last["mean_component_size"], "association_coverage": last["coverage"],
            "association_cycle_consistency": last["cycle_consistent_share"]}


def _evaluated_on(config: Config, data: TrainingData) -> str:
    """What the run's evaluations measured, for report.json."""
    if data.held_out is not None:
        return (f"no cross-camera labels exist (no query/ and gallery/), so retrieval across cameras cannot be "
                f"measured: intra-camera retrieval of the first and last frames of {len(data.held_out.query)} local "
                "ids, held out of training")
    if config.validation_identities:
        return f"validation: {config.validation_identities} held-out training identities"
    return "test split"


def _run_info(data: TrainingData, steps_per_epoch: int) -> dict:
    """run.json: what evaluation and export rebuild the model from."""
    return {
        "camera_classes": {str(k): v for k, v in data.train.camera_classes.items()},
        "camera_names": list(data.dataset.camera_names),
        "ids_per_camera": list(data.train.ids_per_camera),  # sizes the --intra_id_loss head
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

