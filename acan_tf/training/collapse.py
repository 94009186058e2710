"""Collapse guard: stop a run whose embedding has collapsed (every image embedded alike), which no NaN would reveal.

At too high a learning rate F can map every image to the same point: every triplet's loss is then the margin,
D's loss ln C, and training runs on to chance-level metrics. The train step reports the spread of its triplet
batch's embeddings in units of the margin; `CollapseGuard` stops the run (or warns) once it has stayed below a
threshold for a window of consecutive steps.
"""

from __future__ import annotations

import keras
from absl import logging

from acan_tf.model.acan import SPREAD_LOG

SPREAD_THRESHOLD = 1e-2  # in margins; see BUILD.md for the values measured in healthy and collapsed runs
WINDOW = 50


class CollapseError(RuntimeError):
    """The embedding collapsed at `step`; `symptom` says what was measured."""

    def __init__(self, step: int, symptom: str):
        super().__init__(f"step {step}: the embedding collapsed ({symptom}); start a new run with a lower "
                         f"--lr_pretrained (e.g. a tenth) or a learning-rate warm-up (--lr_warmup_epochs)")
        self.step = step
        self.symptom = symptom


class CollapseGuard:
    """Raises CollapseError (or, with `warn_only`, warns) once the spread stays below `threshold` for `window` steps."""

    def __init__(self, threshold: float = SPREAD_THRESHOLD, window: int = WINDOW, warn_only: bool = False):
        if threshold <= 0.0 or window < 1:
            raise ValueError(f"collapse guard: expected a threshold > 0 and a window >= 1 step, "
                             f"got {threshold}, {window}")
        self.threshold = threshold
        self.window = window
        self.warn_only = warn_only
        self.since: int | None = None  # the first step of the current run of low spreads

    @property
    def suspects(self) -> bool:
        """Whether the latest steps' spread is below the threshold (a collapse may be under way)."""
        return self.since is not None

    def update(self, step: int, spread: float) -> bool:
        """Records step `step`'s spread; whether the embedding counts as collapsed now."""
        if not spread < self.threshold:  # NaN counts as healthy here: the loop's NaN check reports it
            self.since = None
            return False
        if self.since is None:
            self.since = step
        low_steps = step - self.since + 1
        if low_steps < self.window:
            return False
        symptom = (f"embedding spread below {self.threshold:g} margins for {low_steps} steps since step {self.since}, "
                   f"now {spread:.2g}: every triplet's loss is the margin")
        if not self.warn_only:
            raise CollapseError(step, symptom)
        if low_steps == self.window:  # once per collapse, not at every later step
            logging.warning("%s", CollapseError(step, symptom))
        return True


class CollapseCallback(keras.callbacks.Callback):
    """Feeds each step's SPREAD_LOG to `guard`.

    List it before the checkpoint callback, so that no state is saved at the step where it fires.
    """

    def __init__(self, guard: CollapseGuard):
        super().__init__()
        self.guard = guard
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.guard.update(self.epoch * self.params["steps"] + batch + 1, float((logs or {})[SPREAD_LOG]))
