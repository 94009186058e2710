"""Keras callbacks of a training run: periodic Re-ID evaluation, checkpoints for export and for --resume,
TensorBoard scalars. Each reads the step and epoch from the run's RunState (acan_tf.training.run_state), which the
loop advances, and records what it produces there; acan_tf.training.trainer.build_callbacks orders them."""

from __future__ import annotations

import math
import os
from typing import Callable, Mapping

import keras
import tensorflow as tf

from acan_tf.evaluation.reported import SCALARS
from acan_tf.io import atomic_path
from acan_tf.training.run_state import RunState
from acan_tf.training.state import TrainingState

# What an evaluation made with keep_features=True adds: kept in memory for the figures, never saved with the state.
FEATURE_KEYS = ("query_features", "gallery_features", "distances")


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """Saves `model`'s weights to `path` through a temporary file, so a crash never leaves a half-written checkpoint."""
    with atomic_path(path) as temporary:
        model.save_weights(temporary)


class PeriodicEvaluation(keras.callbacks.Callback):
    """Evaluates every `every` epochs and after the last one; adds `val_*` to the epoch logs; keeps the best weights.

    `evaluate(final)` is told whether it is the last epoch's evaluation, whose features (if it keeps them) stay in
    `run.final_features` for the end-of-run figures. The evaluations and the best mAP go into `run`. `selection`
    names the metric that picks the best weights (the intra-camera mAP when there are no cross-camera labels).
    """

    def __init__(self, evaluate: Callable[[bool], dict], every: int, epochs: int, best_path: str, run: RunState,
                 selection: str = "mAP"):
        super().__init__()
        self.selection = selection
        self.evaluate = evaluate
        self.every = every
        self.epochs = epochs
        self.best_path = best_path
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = self.run.epoch + 1
        if done != self.epochs and (self.every == 0 or done % self.every):
            return
        metrics = self.evaluate(done == self.epochs)
        self.run.final_features = {key: metrics.pop(key) for key in FEATURE_KEYS if key in metrics}
        self.run.evaluations.append({"epoch": done, **metrics})
        if logs is not None:
            logs.update({f"val_{name}": metrics[name] for name in SCALARS if name in metrics})
        if metrics.get(self.selection, -math.inf) > self.run.best_map:
            self.run.best_map = metrics[self.selection]
            save_weights_atomically(self.model, self.best_path)


class LastCheckpoint(keras.callbacks.Callback):
    """Saves the weights after every epoch to `path`, atomically."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_weights_atomically(self.model, self.path)


class TrainingCheckpoint(keras.callbacks.Callback):
    """Records each epoch's logs in `run`; saves the full training state for --resume every `every` steps and after
    every epoch.

    While `run.hold_saves` (the collapse guard suspects a collapse) no state is saved, so the last one saved stays a
    good one; `run.saved_step` is the step of the last save.
    """

    def __init__(self, state: TrainingState, run_dir: str, every: int, run: RunState):
        super().__init__()
        self.state = state
        self.run_dir = run_dir
        self.every = every
        self.run = run

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        # An epoch's last step is saved at the epoch's end, after its evaluation.
        if self.run.step % self.every == 0 and not self.run.at_epoch_end and not self.run.hold_saves:
            self.save()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.run.epoch_logs.append({name: float(value) for name, value in (logs or {}).items()})
        if not self.run.hold_saves:
            self.save()

    def save(self) -> None:
        """Saves the training state as of the step the model has just completed."""
        self.state.save(self.run_dir, self.run.progress())
        self.run.saved_step = self.run.step


class TrainingLogs(keras.callbacks.Callback):
    """TensorBoard scalars at the run's global step, so a resumed run continues its curves.

    train/: batch_<metric> every `every` steps, epoch_<metric> and each optimizer's learning rate per epoch;
    validation/: epoch_<metric> of every evaluation (the `val_*` logs).
    """

    def __init__(self, log_dir: str, every: int, optimizers: Mapping[str, keras.optimizers.Optimizer], run: RunState):
        super().__init__()
        self.every = every
        self.optimizers = dict(optimizers)
        self.run = run
        self.train_writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.validation_writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.run.step % self.every == 0:
            with self.train_writer.as_default(step=self.run.step):
                for name, value in (logs or {}).items():
                    tf.summary.scalar(f"batch_{name}", value)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        done = self.run.epoch + 1
        with self.train_writer.as_default(step=done):
            for name, value in logs.items():
                if not name.startswith("val_"):
                    tf.summary.scalar(f"epoch_{name}", value)
            for name, optimizer in self.optimizers.items():
                rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                tf.summary.scalar(f"epoch_learning_rate_{name}", rate)
        with self.validation_writer.as_default(step=done):
            for name, value in logs.items():
                if name.startswith("val_"):
                    tf.summary.scalar(f"epoch_{name[len('val_'):]}", value)
        self.train_writer.flush()
        self.validation_writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        self.train_writer.close()
        self.validation_writer.close()
