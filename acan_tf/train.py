"""`python -m acan_tf.train`: trains ACAN (or the triplet-only baseline) and writes a run directory.

Every flag is a field of acan_tf.config.Config (`--helpfull` lists them); the run directory's files are
described in acan_tf.run_dir. SIGTERM or SIGINT stops the run after the step in flight, with its
state saved, and exits with status 128 + the signal's number.
"""

from __future__ import annotations

import os
import sys

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app

from acan_tf.data import DATASET_NAMES
from acan_tf.errors import UserError
from acan_tf.evaluation.reported import format_metrics
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.logs import quiet_tensorflow_logging
from acan_tf.model.backbones import BACKBONES
from acan_tf.training.preemption import StopRequested, resume_command, stop_message
from acan_tf.training.trainer import run


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    quiet_tensorflow_logging()
    try:
        report = run(config_from_flags())
    except UserError as error:
        sys.exit(f"acan_tf.train: error: {error}")
    except StopRequested as stop:
        print(stop_message(stop, resume_command(sys.argv)), file=sys.stderr)
        sys.exit(stop.exit_status)
    print(f"stages: {report['stages']}")
    if "final" in report:  # a worker other than the chief of a multi-worker run does not evaluate
        print(format_metrics(report["final"]))
    print(f"final weights sha256: {report.get('weights_sha256')}")
    print(f"run directory: {os.path.abspath(report['config']['output_dir'])}")


if __name__ == "__main__":
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)})
    app.run(main)
