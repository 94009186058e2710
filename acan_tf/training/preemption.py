"""Graceful stop on SIGTERM and SIGINT: record the signal, let the trainer finish its step, save, and exit 128 + signal.

Schedulers (Slurm, Kubernetes, spot instances) send SIGTERM and wait a grace period before SIGKILL; Ctrl-C
sends SIGINT. While `StopSignals` is active both only record that a stop was asked: the step in flight and a
save in progress run to their end, however many signals follow, and the trainer stops at its next check.
SIGKILL, which nothing can catch, remains the hard stop. Under MultiWorkerMirroredStrategy a signal reaches
one worker, so `any_replica` turns each worker's flag into one answer for all of them inside the step.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Sequence

import tensorflow as tf

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def exit_status(signum: int) -> int:
    """The exit status of a run stopped by signal `signum`: 128 + signum, as shells report a process killed by it."""
    return 128 + signum


@dataclasses.dataclass(frozen=True)
class ReceivedSignal:
    """A signal that asked the run to stop: its number and when it came (time.time())."""

    number: int
    time: float

    @property
    def name(self) -> str:
        """SIGTERM, SIGINT, ..."""
        return signal.Signals(self.number).name


class StopRequested(Exception):
    """Training stopped after step `step` because of signal `signum`; the trainer has saved (or will save) that step."""

    def __init__(self, step: int, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}")
        self.step = step
        self.signum = signum
        # Set by the trainer once it has saved: the step of the last state saved and its folder.
        self.saved_step = 0
        self.saved_in = ""

    @property
    def exit_status(self) -> int:
        """128 + the signal's number."""
        return exit_status(self.signum)


class StopSignals:
    """While active, SIGTERM and SIGINT only record a request to stop; the previous handlers return on exit.

    Python runs signal handlers only in the main thread and lets only it install them, so entered from any
    other thread this is a no-op: signals keep their handlers and `requested` stays None.
    """

    def __init__(self, signals: Sequence[int] = STOP_SIGNALS):
        self.signals = tuple(signals)
        self.received: list[ReceivedSignal] = []
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> ReceivedSignal | None:
        """The first signal received, or None."""
        return self.received[0] if self.received else None

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(ReceivedSignal(signum, time.time()))

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in self.signals:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        for number, handler in self._previous.items():
            # None: the handler was installed outside Python; the default action is the nearest we can restore.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()


def any_replica(strategy: tf.distribute.Strategy, flag: tf.Tensor | tf.distribute.DistributedValues) -> tf.Tensor:
    """Whether `flag` is true on any replica of any worker: one all-reduce, the same answer on every worker.

    Call it in cross-replica context inside the step's tf.function, so that all workers stop after the same step.
    """
    # tf.distribute reduces by SUM or MEAN only; a sum of 0/1 flags is positive exactly when one is set.
    flags = strategy.run(lambda value: tf.cast(value, tf.float32), args=(flag,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, flags, axis=None) > 0


def resume_command(argv: Sequence[str], module: str = "acan_tf.train") -> str:
    """The shell command continuing the run of `argv` (sys.argv of `python -m module`): --resume, never --overwrite."""
    dropped = ("--resume", "--noresume", "--overwrite", "--nooverwrite")
    flags = [arg for arg in argv[1:] if arg.split("=", 1)[0] not in dropped]
    # A flagfile may set --overwrite; a later flag wins in absl, so it is switched off explicitly.
    off = ["--nooverwrite"] if any(arg.startswith("--flagfile") for arg in flags) else []
    return shlex.join(["python", "-m", module, *flags, "--resume", *off])


def stop_message(stop: StopRequested, command: str) -> str:
    """The one line a stopped run prints: the signal, the step saved and where, and the command resuming it."""
    return (f"{signal.Signals(stop.signum).name}: training stopped after step {stop.step}, the state of step "
            f"{stop.saved_step} saved in {stop.saved_in}; resume with: {command}")
