"""Guards against two silent failures that no NaN would reveal: a collapsed embedding and a dead discriminator.

At too high a learning rate F can map every image to the same point: every triplet's loss is then the margin,
D's loss ln C, and training runs on to chance-level metrics. The train step reports the spread of its triplet
batch's embeddings in units of the margin; `CollapseGuard` stops the run (or warns) once it has stayed below a
threshold in most steps of a window.

D can die on its own while F is healthy: measured with EfficientNet-Lite0, whose pooled features have a norm of about
130, D's ReLUs all switched off in the first steps at --lr_new=0.01, and from then on it output the same
probabilities for every image (loss ln C, accuracy 1/C to five digits). Its output no longer depends on F's
features, so the adversarial term passes no gradient to F: the run trains as `--scheme=none` whatever the scheme.
`DeadDiscriminatorCallback` warns at the end of such an epoch.
"""

from __future__ import annotations

import collections
import math

import keras
from absl import logging

from acan_tf.model.acan import SPREAD_LOG
from acan_tf.training.run_state import RunState

SPREAD_THRESHOLD = 1e-2  # in margins; see BUILD.md for the values measured in healthy and collapsed runs
WINDOW = 50
LOW_SHARE = 0.9  # of the window's steps


class CollapseError(RuntimeError):
    """The embedding collapsed at `step`; `symptom` says what was measured."""

    def __init__(self, step: int, symptom: str):
        super().__init__(f"step {step}: the embedding collapsed ({symptom}); start a new run with a lower "
                         f"--lr_pretrained (e.g. a tenth) or a learning-rate warm-up (--warmup_steps or "
                         f"--lr_warmup_epochs)")
        self.step = step
        self.symptom = symptom


class CollapseGuard:
    """Raises CollapseError (or, with `warn_only`, warns) once the spread has been below `threshold` in at least
    LOW_SHARE of the last `window` steps."""

    def __init__(self, threshold: float = SPREAD_THRESHOLD, window: int = WINDOW, warn_only: bool = False):
        if threshold <= 0.0 or window < 1:
            raise ValueError(f"collapse guard: expected a threshold > 0 and a window >= 1 step, "
                             f"got {threshold}, {window}")
        self.threshold = threshold
        self.window = window
        self.warn_only = warn_only
        # (step, whether its spread was low) of the last `window` steps. A share, not a run of consecutive steps:
        # measured, a collapsed embedding still blips above the threshold now and then (0.03, 0.2 margins).
        self.recent: collections.deque[tuple[int, bool]] = collections.deque(maxlen=window)
        self.warned = False

    @property
    def suspects(self) -> bool:
        """Whether any of the last `window` steps had a low spread (a collapse may be under way)."""
        return any(low for _, low in self.recent)

    def update(self, step: int, spread: float) -> bool:
        """Records step `step`'s spread; whether the embedding counts as collapsed now."""
        self.recent.append((step, spread < self.threshold))  # NaN is not low: the loop's NaN check reports it
        lows = sum(low for _, low in self.recent)
        if len(self.recent) < self.window or lows < LOW_SHARE * self.window:
            self.warned = False
            return False
        since = next(seen for seen, low in self.recent if low)
        symptom = (f"embedding spread below {self.threshold:g} margins for {lows} of the last {self.window} steps, "
                   f"since step {since}, now {spread:.2g}: every triplet's loss is the margin")
        if not self.warn_only:
            raise CollapseError(step, symptom)
        if not self.warned:  # once per collapse, not at every later step
            logging.warning("%s", CollapseError(step, symptom))
            self.warned = True
        return True


class CollapseCallback(keras.callbacks.Callback):
    """Feeds each step's SPREAD_LOG to `guard`, at the run's step; holds saving while the guard suspects a collapse.

    It must run before the checkpoint callback, so that no state is saved at the step where it fires.
    """

    def __init__(self, guard: CollapseGuard, run: RunState):
        super().__init__()
        self.guard = guard
        self.run = run

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.guard.update(self.run.step, float((logs or {})[SPREAD_LOG]))
        self.run.hold_saves = self.guard.suspects and not self.guard.warn_only


UNIFORM_TOLERANCE = 1e-3  # a live D, even one fooled by F, strays further from ln C and 1/C over an epoch (measured)


def discriminator_is_dead(d_loss: float, d_accuracy: float, num_cameras: int) -> bool:
    """Whether an epoch's mean D loss and accuracy are those of an output that ignores its input (ln C and 1/C)."""
    return (abs(d_loss - math.log(num_cameras)) < UNIFORM_TOLERANCE
            and abs(d_accuracy - 1.0 / num_cameras) < UNIFORM_TOLERANCE)


class DeadDiscriminatorCallback(keras.callbacks.Callback):
    """Warns at the end of every epoch whose mean D loss and accuracy say that D's output ignores its input."""

    def __init__(self, num_cameras: int, run: RunState):
        super().__init__()
        self.num_cameras = num_cameras
        self.run = run

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        d_loss, d_accuracy = float(logs["d_loss"]), float(logs["d_accuracy"])
        if discriminator_is_dead(d_loss, d_accuracy, self.num_cameras):
            logging.warning(
                "epoch %d: D's output no longer depends on its input (loss %.4f = ln %d, accuracy %.4f = 1/%d): its "
                "units have died, so the adversarial term passes no gradient to F and D's camera accuracy means "
                "nothing; start a new run with a lower --lr_new (e.g. a tenth)",
                self.run.epoch + 1, d_loss, self.num_cameras, d_accuracy, self.num_cameras)
