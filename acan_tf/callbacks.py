"""Keras callbacks of a training run: periodic Re-ID evaluation and atomic checkpoints."""

from __future__ import annotations

from typing import Callable

import keras

from acan_tf.io import atomic_path

SCALAR_METRICS = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP", "discrepancy", "d_test_accuracy")


def save_weights_atomically(model: keras.Model, path: str) -> None:
    """Saves `model`'s weights to `path` through a temporary file, so a crash never leaves a half-written checkpoint."""
    with atomic_path(path) as temporary:
        model.save_weights(temporary)


class PeriodicEvaluation(keras.callbacks.Callback):
    """Evaluates every `every` epochs and after the last one; adds `val_*` to the epoch logs; keeps the best weights."""

    def __init__(self, evaluate: Callable[[], dict], every: int, epochs: int, best_path: str):
        super().__init__()
        self.evaluate = evaluate
        self.every = every
        self.epochs = epochs
        self.best_path = best_path
        self.evaluations: list[dict] = []
        self.best_map = -1.0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1
        if done != self.epochs and (self.every == 0 or done % self.every):
            return
        metrics = self.evaluate()
        self.evaluations.append({"epoch": done, **metrics})
        if logs is not None:
            logs.update({f"val_{name}": metrics[name] for name in SCALAR_METRICS if name in metrics})
        if metrics["mAP"] > self.best_map:
            self.best_map = metrics["mAP"]
            save_weights_atomically(self.model, self.best_path)


class LastCheckpoint(keras.callbacks.Callback):
    """Saves the weights after every epoch to `path`, atomically."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_weights_atomically(self.model, self.path)
