"""The training state behind --resume: F, D (and F's teacher), both optimizers, the step, and what the run has
recorded so far.

In the run directory's state folder (acan_tf.run_dir):
  step-00000120.index, step-00000120.data-00000-of-00001   tf.train.Checkpoint of F, D, both optimizers
                                                            (momentum, iteration count, loss scale) and the
                                                            --intra_id_loss head (classifier or memory), if any
  progress.json                                             the step saved, its checkpoint, the epoch logs, the
                                                            evaluations and the metrics' running sums so far
progress.json is written last, through a temporary file and a rename, and is the only way in: a checkpoint cut
short by a crash is never named by it, so it is never loaded, and the next save deletes it. The samplers need
no saved state: step k's batches are a function of (seed, k) (acan_tf.data.pipeline), so the step is all a
resumed run needs to draw the batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from typing import Any

import keras
import tensorflow as tf

from acan_tf.errors import UserError
from acan_tf.io import write_json
from acan_tf.model.acan import ACAN
from acan_tf.run_dir import RunDir

KEPT = 2  # complete checkpoints kept: the newest and the one before it


class CheckpointError(UserError, RuntimeError):
    """The training state cannot be written or read; the message names the file and what is still intact."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a run had done at a saved step: steps completed, one log dict per completed epoch, its evaluations, and
    the cross-camera stage's pseudo-identities and rounds (acan_tf.training.cross_camera), if it has one."""

    step: int
    epoch_logs: list[dict[str, float]]
    evaluations: list[dict[str, Any]]
    best_map: float
    cross_camera: dict[str, Any] | None = None


def read_progress(run_dir: str) -> dict[str, Any] | None:
    """The saved progress document of a run, or None if it has saved no state."""
    path = RunDir(run_dir).progress_file
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} cannot be read ({error}); pass --overwrite to start the run over") from error
    expected = {"step": int, "checkpoint": str, "kept": list, "epoch_logs": list, "evaluations": list,
                "best_map": (int, float), "metrics": dict}
    fields = document if isinstance(document, dict) else {}
    wrong = [key for key, kind in expected.items() if not isinstance(fields.get(key), kind)]
    if wrong:
        raise CheckpointError(f"{path} is not a progress file of acan_tf (bad or missing {', '.join(wrong)}); "
                              f"pass --overwrite to start the run over")
    return document


class TrainingState:
    """Saves and restores an ACAN's full training state in a run directory."""

    def __init__(self, acan: ACAN):
        self.acan = acan
        # The teacher (--association_teacher_momentum) and the identity head only when there is one: the states of
        # other runs keep their layout.
        extra = {} if acan.teacher is None else {"teacher": acan.teacher}
        if acan.identity_head is not None:
            extra["identity_head"] = acan.identity_head
        self.checkpoint = tf.train.Checkpoint(
            encoder=acan.encoder, discriminator=acan.discriminator, f_optimizer=acan.f_optimizer,
            d_optimizer=acan.d_optimizer, **extra,
        )

    def save(self, run_dir: str, progress: Progress) -> None:
        """Writes the state at `progress.step`, then progress.json naming it; removes all but the last KEPT."""
        files = RunDir(run_dir)
        folder = files.state_dir
        previous = read_progress(run_dir)
        name = f"step-{progress.step:08d}"
        kept = ([name] + [k for k in previous["kept"] if k != name] if previous else [name])[:KEPT]
        # Every worker of a multi-worker run reads the metrics here (a collective op), in the same order.
        metrics = {m.name: [float(keras.ops.convert_to_numpy(v)) for v in m.variables] for m in self.acan.metrics}
        try:
            os.makedirs(folder, exist_ok=True)
            self.checkpoint.write(os.path.join(folder, name))
            write_json(files.progress_file, {
                "step": progress.step, "checkpoint": name, "kept": kept, "epoch_logs": progress.epoch_logs,
                "evaluations": progress.evaluations, "best_map": progress.best_map, "metrics": metrics,
                "cross_camera": progress.cross_camera,
            })
        except (OSError, tf.errors.OpError) as error:
            intact = f"the state of step {previous['step']} is intact" if previous else "no state had been saved yet"
            raise CheckpointError(f"cannot save the training state in {folder}: {_reason(error)}; {intact}") from error
        _remove_all_but(folder, kept, os.path.basename(files.progress_file))

    def restore(self, run_dir: str) -> Progress | None:
        """Loads the state progress.json names (and the metrics' running sums); None if the run saved none."""
        document = read_progress(run_dir)
        if document is None:
            return None
        files = RunDir(run_dir)
        prefix = os.path.join(files.state_dir, document["checkpoint"])
        try:
            self.checkpoint.read(prefix).assert_consumed()
        except (tf.errors.OpError, AssertionError, ValueError) as error:
            raise CheckpointError(
                f"the training state {prefix} named by {files.progress_file} cannot be restored ({error}); "
                f"was the run made with other settings? Pass --overwrite to start it over"
            ) from error
        for metric in self.acan.metrics:
            for variable, value in zip(metric.variables, document["metrics"].get(metric.name, ())):
                variable.assign(value)
        return Progress(document["step"], document["epoch_logs"], document["evaluations"], float(document["best_map"]),
                        document.get("cross_camera"))


def _reason(error: Exception) -> str:
    """The cause of a failed write in a line: the OS's words, or TensorFlow's message without its op decorations."""
    if isinstance(error, tf.errors.OpError):
        return re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]", "", error.message).strip()
    if isinstance(error, OSError) and error.errno:
        return os.strerror(error.errno) + (f" ({error.filename})" if error.filename else "")
    return str(error)


def _remove_all_but(folder: str, kept: list[str], progress_name: str) -> None:
    """Deletes everything in `folder` but the progress file and the files of the checkpoints in `kept`.

    What goes is what a crashed save left: files of unnamed checkpoints, TensorFlow's `*_temp` folders of a
    sharded write, temporary progress files.
    """
    keep = re.compile(rf"({'|'.join(map(re.escape, kept))})\.(index|data-\d+-of-\d+)")
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        if entry == progress_name or keep.fullmatch(entry):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
