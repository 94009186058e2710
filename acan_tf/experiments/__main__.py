"""`python -m acan_tf.experiments EXPERIMENT`: the paper's ablations as repeated training runs and one table.

The experiments, their outputs and how finished runs are reused: acan_tf.experiments.runner; `calibration` (one
seed, the realistic preset's figures against real data's): acan_tf.experiments.calibration.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
import time
from typing import Callable, Sequence

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app, flags

from acan_tf.data import DATASET_NAMES
from acan_tf.errors import UserError
from acan_tf.experiments import calibration
from acan_tf.experiments.runner import EXPERIMENT_DEFAULTS, EXPERIMENTS, ExperimentError, Linking, run_experiment
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.logs import quiet_tensorflow_logging
from acan_tf.model.backbones import BACKBONES
from acan_tf.training.preemption import StopRequested, stop_message


def parse_list(flag: str, items: Sequence[str], parse: Callable[[str], object]) -> list:
    """The items of a list flag, parsed; an error names the flag and the item."""
    parsed = []
    for item in items:
        try:
            parsed.append(parse(item))
        except ValueError as error:
            raise ExperimentError(f"--{flag}: cannot read {item!r} ({error})") from error
    return parsed


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) != 2 or argv[1] not in (*EXPERIMENTS, calibration.NAME):
        raise app.UsageError(f"name one experiment: {' | '.join((*EXPERIMENTS, calibration.NAME))}")
    name = argv[1]
    quiet_tensorflow_logging()
    options = flags.FLAGS
    output_dir = options.output_dir if options["output_dir"].present else os.path.join("runs", "experiments", name)
    started = time.time()
    try:
        command = shlex.join(["python", "-m", "acan_tf.experiments", *sys.argv[1:]])
        if name == calibration.NAME:  # one seed (--seed), its own settings unless given
            unset = {flag: value for flag, value in calibration.CALIBRATION_DEFAULTS.items()
                     if not options[flag].present}
            base = dataclasses.replace(config_from_flags(), **unset)
            results = calibration.run_calibration(base, output_dir, command)
        else:
            values = parse_list("values", options.values, EXPERIMENTS[name].parse) if options.values else None
            seeds = parse_list("seeds", options.seeds, int)
            linking = Linking(options.link_validation_identities, options.link_fpr)
            results = run_experiment(name, config_from_flags(), seeds, output_dir, values, command, linking)
    except UserError as error:
        sys.exit(f"acan_tf.experiments: error: {error}")
    except StopRequested as stop:  # rerunning the command reuses the finished runs and resumes this one
        print(stop_message(stop, command), file=sys.stderr)
        sys.exit(stop.exit_status)
    with open(os.path.join(output_dir, "results.md"), encoding="utf-8") as handle:
        print(handle.read())
    trained = sum(not run["reused"] for run in results["runs"])
    print(f"{len(results['runs'])} runs ({trained} trained now) in {time.time() - started:.0f} s; results in "
          f"{os.path.abspath(output_dir)}")


if __name__ == "__main__":
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)})
    for flag, default in EXPERIMENT_DEFAULTS.items():
        flags.FLAGS.set_default(flag, default)
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds: every setting is trained once per seed.")
    flags.DEFINE_list("values", [], "The values of the experiment's parameter; default: the paper's.")
    flags.DEFINE_integer("link_validation_identities", Linking.validation_identities, "association: training "
                         "identities (carved with each run's seed) on which the linking threshold is chosen.",
                         lower_bound=1)
    flags.DEFINE_float("link_fpr", Linking.fpr, "association: the false-positive rate of cross-camera proxy pairs "
                       "(validation identities) at which the linking threshold is chosen.")
    app.run(main)
