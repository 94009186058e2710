"""The run directory (`--output_dir`): the one place that names a run's files, reads them and writes them.

    runs/acan/
      config.json          every setting (a frozen Config; also what export and evaluation rebuild from)
      run.json             training cameras (dataset camid -> D's class), steps per epoch, versions
      dataset.txt          the dataset summary printed at start
      checkpoints/
        last.weights.h5    F and D after every epoch, written to a temporary file and renamed (never half-written)
        best.weights.h5    the evaluation with the best mAP so far
        state/             the full training state --resume continues from (acan_tf.training.state: model, both
                           optimizers, step, evaluations so far; progress.json names the checkpoint to load),
                           saved every half epoch by default (--checkpoint_every_steps)
      logs/                TensorBoard: train/ (losses per step and epoch), validation/ (evaluation metrics),
                           analysis/ (the figures below as images, and the embedding projector), association/
                           (each association round's precision, recall and components)
      report.json          config, versions, per-epoch training metrics, every evaluation, final metrics
                           (mAP, CMC, mINP, inter-camera discrepancy, D's test accuracy and camera confusion)
      plots/               written after report.json from the final evaluation (--noanalyses skips it):
                           camera_confusion.png (Fig. 8), tsne.png (Figs. 1, 7), cmc.png, ranked_list.png,
                           convergence.png (Fig. 6; with two or more evaluations)
      .lock                held by the process training the run, with its pid and host

The figures of an exported model's evaluation go into a folder laid out the same way (plots/, logs/analysis/).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any

from acan_tf.config import Config
from acan_tf.errors import UserError
from acan_tf.io import write_json, write_text

CHECKPOINTS = ("best", "last")


class RunDirectoryError(UserError, ValueError):
    """A run directory is missing a file or holds an unusable one; the message names it."""


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The files of one run directory."""

    path: str

    @property
    def config_file(self) -> str:
        """config.json: every setting of the run."""
        return os.path.join(self.path, "config.json")

    @property
    def info_file(self) -> str:
        """run.json: D's camera classes, steps per epoch, dataset kind, versions."""
        return os.path.join(self.path, "run.json")

    @property
    def dataset_file(self) -> str:
        """dataset.txt: the dataset summary."""
        return os.path.join(self.path, "dataset.txt")

    @property
    def report_file(self) -> str:
        """report.json: the finished run's report."""
        return os.path.join(self.path, "report.json")

    @property
    def checkpoints_dir(self) -> str:
        """The folder of the weights files and the training state."""
        return os.path.join(self.path, "checkpoints")

    @property
    def state_dir(self) -> str:
        """The folder of the training state --resume reads."""
        return os.path.join(self.checkpoints_dir, "state")

    @property
    def progress_file(self) -> str:
        """progress.json: the step saved and what the run recorded until then; the only way into the state."""
        return os.path.join(self.state_dir, "progress.json")

    @property
    def logs_dir(self) -> str:
        """TensorBoard's log folder."""
        return os.path.join(self.path, "logs")

    @property
    def analysis_logdir(self) -> str:
        """TensorBoard folder of the analysis figures and the projector."""
        return os.path.join(self.logs_dir, "analysis")

    @property
    def association_logdir(self) -> str:
        """TensorBoard folder of the association rounds' figures."""
        return os.path.join(self.logs_dir, "association")

    @property
    def plots_dir(self) -> str:
        """The folder of the analysis figures."""
        return os.path.join(self.path, "plots")

    @property
    def lock_file(self) -> str:
        """The lock file the training process holds."""
        return os.path.join(self.path, ".lock")

    def checkpoint(self, which: str) -> str:
        """The weights file of checkpoint `which` ("best" or "last")."""
        if which not in CHECKPOINTS:
            raise RunDirectoryError(f"checkpoint {which!r}: expected one of {', '.join(CHECKPOINTS)}")
        return os.path.join(self.checkpoints_dir, f"{which}.weights.h5")

    def contents(self) -> list[str]:
        """The folder's entries other than the lock file (which a trainer made before it knew it would start)."""
        return sorted(entry for entry in os.listdir(self.path) if entry != os.path.basename(self.lock_file))

    def clear(self) -> None:
        """Deletes everything in the folder but the lock file, which the trainer replacing the run holds."""
        for entry in self.contents():
            path = os.path.join(self.path, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)

    def is_finished(self) -> bool:
        """Whether the run wrote its report."""
        return os.path.isfile(self.report_file)

    def has_config(self) -> bool:
        """Whether the folder holds a run's config.json."""
        return os.path.isfile(self.config_file)

    def read_config(self) -> Config:
        """The run's Config."""
        return Config.from_json(read_json(self.config_file))

    def read_info(self) -> dict:
        """run.json."""
        return read_json(self.info_file)

    def read_report(self) -> dict:
        """report.json."""
        return read_json(self.report_file)

    def evaluations(self) -> list[dict]:
        """The evaluations during training (report.json), or none for a run still training."""
        return self.read_report().get("evaluations", []) if self.is_finished() else []

    def write_start(self, config: Config, info: dict[str, Any], summary: str) -> None:
        """Writes config.json, run.json and dataset.txt: what evaluation and export rebuild the model from."""
        write_json(self.config_file, config.to_json())
        write_json(self.info_file, info)
        write_text(self.dataset_file, summary + "\n")

    def write_report(self, report: dict) -> None:
        """Writes report.json."""
        write_json(self.report_file, report)


def read_json(path: str) -> dict:
    """A JSON object from `path`, or an error naming the file."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError as error:
        raise RunDirectoryError(f"{path} not found: is {os.path.dirname(path)} a training run directory?") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunDirectoryError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(value, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object")
    return value
