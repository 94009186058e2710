"""The training loop: the model's own `train_step` under `strategy.run`, driving Keras callbacks as `fit()` does.

One loop for every strategy. Keras' `fit` cannot be used: under MultiWorkerMirroredStrategy it fails in
Keras 3.15 even for a Sequential model ("Attempt to convert a value (PerReplica...) to a Tensor"), and it
cannot start in the middle of an epoch, which resuming needs. Callbacks see the same calls as under `fit`
(epochs, batches within the epoch, logs), so Keras' progress bar and the run's callbacks work unchanged.
"""

from __future__ import annotations

import math
import signal
from typing import Callable, Sequence

import keras
import tensorflow as tf

from acan_tf.training.preemption import StopRequested, StopSignals, any_replica
from acan_tf.training.run_state import RunState

# The losses whose value stops training when it is NaN or Inf.
GUARDED_LOSSES = ("loss", "triplet_loss", "d_loss", "adv_loss", "identity_loss")


class NonFiniteError(FloatingPointError):
    """A loss or a weight became NaN or Inf; `step` is the 1-based step that produced it."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


def use_jit_compile(setting: str) -> bool:
    """--jit_compile: on, off, or auto (on when a GPU is visible; XLA made CPU training slower here)."""
    return setting == "on" or (setting == "auto" and bool(tf.config.list_logical_devices("GPU")))


def make_step_function(
    model: keras.Model, strategy: tf.distribute.Strategy, jit_compile: bool
) -> Callable[[tf.distribute.DistributedIterator, tf.Tensor], tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]]:
    """One training step on every replica: (logs averaged over replicas, whether every weight is still finite,
    whether any worker was asked to stop, given this worker's `stop` flag)."""
    # Keras updates batch-norm statistics on each replica from its own slice (variables without aggregation);
    # averaging them after each step keeps every replica and worker identical, as Keras 2's MEAN-aggregated
    # moving averages did.
    replica_local = [v for v in model.weights if v.aggregation == "none" and not v.trainable]

    def replica_step(data: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], list[tf.Tensor]]:
        return model.train_step(data), [tf.identity(v) for v in replica_local]

    if jit_compile:
        replica_step = tf.function(replica_step, jit_compile=True)

    def mean(value: tf.distribute.DistributedValues) -> tf.Tensor:
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

    @tf.function
    def step(
        iterator: tf.distribute.DistributedIterator, stop: tf.Tensor
    ) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
        logs, local_values = strategy.run(replica_step, args=(next(iterator),))
        for variable, value in zip(replica_local, local_values):
            variable.assign(mean(value))
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in model.weights])
        # One all-reduce of the stop flag: a signal reaches one worker, and every worker stops after the same step.
        return {name: mean(value) for name, value in logs.items()}, finite, any_replica(strategy, stop)

    return step


def check_finite(step: int, logs: dict[str, float], weights_finite: bool) -> None:
    """Raises NonFiniteError naming `step` and the loss if a guarded loss or a weight is NaN or Inf."""
    for name in GUARDED_LOSSES:
        if name in logs and not math.isfinite(logs[name]):
            losses = ", ".join(f"{key}={logs[key]:.4g}" for key in GUARDED_LOSSES if key in logs)
            raise NonFiniteError(step, f"step {step}: {name} is {logs[name]} ({losses})")
    if not weights_finite:
        raise NonFiniteError(step, f"step {step}: a weight became NaN or Inf (losses were finite)")


def fit(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    batches: tf.distribute.DistributedDataset,
    callbacks: Sequence[keras.callbacks.Callback],
    run: RunState,
    epochs: int,
    jit_compile: bool = False,
    verbose: int = 1,
    before_epoch: Callable[[int, int], tf.distribute.DistributedDataset | None] | None = None,
    signals: StopSignals | None = None,
) -> None:
    """Trains from step `run.step` (possibly mid-epoch) to `epochs * run.steps_per_epoch`, advancing `run`.

    `run.epoch` is set before an epoch's first callback and `run.step` (steps completed) before each step's
    callbacks, which read them there. `batches` must start at `run.step`. `before_epoch(epoch, step)`, if given,
    runs before each epoch's first batch (step: the 0-based step that batch is) and may return a new stream
    starting at that step, which replaces `batches` (the association stage's new pseudo-identities). The model's
    metrics are reset at the start of each epoch, except the epoch being resumed, whose metrics the caller has
    restored. Raises NonFiniteError before the callbacks see a step whose losses or weights are not finite, so no
    checkpoint holds them.

    After a stop signal recorded by `signals` (on any worker), raises StopRequested once the step in flight has
    ended and its callbacks have run; at an epoch's last step, after the epoch's end (evaluation and save), so
    that a resumed run starts the next epoch whole. The caller saves the state of the step it names (`run.step`).
    """
    step_function = make_step_function(model, strategy, jit_compile)
    # One process may stop after the step in flight, as soon as it has the signal; workers of a multi-worker run
    # stop after the step whose all-reduced flag says so (one step later), so that all stop at the same step.
    local = not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    iterator = iter(batches)
    steps_per_epoch = run.steps_per_epoch
    callback_list = keras.callbacks.CallbackList(
        list(callbacks), add_progbar=verbose > 0, model=model, verbose=verbose, epochs=epochs, steps=steps_per_epoch
    )
    first_epoch, first_batch = divmod(run.step, steps_per_epoch)
    callback_list.on_train_begin()
    for epoch in range(first_epoch, epochs):
        run.epoch = epoch
        start = first_batch if epoch == first_epoch else 0
        if before_epoch is not None:
            replaced = before_epoch(epoch, run.step)
            iterator = iterator if replaced is None else iter(replaced)
        if start == 0:
            for metric in model.metrics:
                metric.reset_state()
        callback_list.on_epoch_begin(epoch)
        logs: dict[str, float] = {}
        stop = False
        for batch in range(start, steps_per_epoch):
            callback_list.on_train_batch_begin(batch)
            values, finite, stop = step_function(iterator, tf.constant(bool(signals and signals.requested)))
            stop = bool(stop) or (local and bool(signals and signals.requested))
            logs = {name: float(value) for name, value in values.items()}
            check_finite(epoch * steps_per_epoch + batch + 1, logs, bool(finite))
            run.step = epoch * steps_per_epoch + batch + 1
            callback_list.on_train_batch_end(batch, logs)
            if stop and batch + 1 < steps_per_epoch:
                raise StopRequested(run.step, _signal_number(signals))
        callback_list.on_epoch_end(epoch, logs)
        if stop and epoch + 1 < epochs:
            raise StopRequested(run.step, _signal_number(signals))
    callback_list.on_train_end()


def _signal_number(signals: StopSignals | None) -> int:
    """The signal that stopped this worker, or SIGTERM for a worker stopped because another one got it."""
    return signals.requested.number if signals and signals.requested else signal.SIGTERM
