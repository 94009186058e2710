"""Every command reports an error the user can fix as one line `acan_tf.<command>: error: ...`, exit status 1.

The commands run in this process (as `python -m` runs them, through runpy), so that the whole matrix of commands
and error families takes seconds; one subprocess per kind of output shows what a shell sees on stderr.
"""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
import warnings

import pytest
from absl import flags

from acan_tf.data.datasets.market1501 import LAYOUT as MARKET_LAYOUT
from acan_tf.errors import UserError
from tests import tiny_runs
from tests.run_fixtures import make_run

# TensorFlow 2.21's C++ start-up lines, printed before absl's C++ logging is set up even at TF_CPP_MIN_LOG_LEVEL=2.
TENSORFLOW_STARTUP = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)|[IWE]\d{4} ")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> str:
    """A tiny run folder (one step trained), as acan_tf.train lays it out."""
    out = str(tmp_path_factory.mktemp("errors") / "run")
    make_run(out, steps=1)
    return out


def run_command(module: str, argv: list[str]) -> SystemExit:
    """Runs `python -m module *argv` in this process; the SystemExit it ends with.

    The command's flags are removed afterwards, so that the next command can define its own.
    """
    defined = set(flags.FLAGS)
    saved_argv = sys.argv
    sys.argv = [module, *argv]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: the module may have been imported already
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        return exit_
    finally:
        sys.argv = saved_argv
        for name in set(flags.FLAGS) - defined:
            delattr(flags.FLAGS, name)
    raise AssertionError(f"{module} {' '.join(argv)} did not exit")


def tiny_flags(data_root: str, output_dir: str, **overrides) -> list[str]:
    """The training flags of the tiny run."""
    return tiny_runs.cli_flags(tiny_runs.tiny_config(data_root, output_dir, **overrides))


NO_DATASET = "dataset root {tmp}/nowhere is not a directory; expected layout:"
# (command, family, argv with {tmp} and {run} for the trained run's folder, what the line must say)
CASES = [
    ("acan_tf.train", "bad flag value", ["--margin=-1"], "--margin=-1.0: expected a number > 0"),
    ("acan_tf.train", "bad flag value", ["--lr_decay_epochs=ten"], "--lr_decay_epochs=ten: expected integers"),
    ("acan_tf.train", "missing run", ["--resume", "--output_dir={tmp}/notes"],
     "--resume: {tmp}/notes holds files but no run"),
    ("acan_tf.train", "missing dataset", ["--dataset=market1501", "--data_root={tmp}/nowhere", "--output_dir={tmp}/r"],
     NO_DATASET),
    ("acan_tf.train", "missing weights", ["TINY", "--backbone_weights={tmp}/gone.weights.h5"],
     "--backbone_weights='{tmp}/gone.weights.h5': no such file"),
    ("acan_tf.evaluate", "bad flag value", ["--run_dir={run}", "--dataset=market1501"],
     "--data_root is required with --dataset=market1501"),
    ("acan_tf.evaluate", "missing run", ["--run_dir={tmp}/none"], "{tmp}/none/config.json not found"),
    ("acan_tf.evaluate", "missing dataset", ["--run_dir={run}", "--dataset=market1501", "--data_root={tmp}/nowhere"],
     NO_DATASET),
    ("acan_tf.export", "bad flag value", ["--run_dir={run}", "--output_dir={tmp}/m", "--model_name=a",
                                          "--formats=tflite"], "--formats=tflite: expected one or more of"),
    ("acan_tf.export", "missing run", ["--run_dir={tmp}/none", "--output_dir={tmp}/m", "--model_name=a"],
     "{tmp}/none/config.json not found"),
    ("acan_tf.export", "failed parity", ["--run_dir={run}", "--output_dir={tmp}/m", "--model_name=a",
                                         "--formats=saved_model,onnx", "--onnx_tolerance=1e-12"],
     "the onnx export differs from the Keras model by more than 1e-12"),
    ("acan_tf.convert_weights", "bad flag value", ["--output={tmp}/lite.h5"], "must end in .weights.h5"),
    ("acan_tf.convert_weights", "missing weights", ["--input={tmp}/gone.pth", "--output={tmp}/lite.weights.h5"],
     "{tmp}/gone.pth: cannot read the file"),
    ("acan_tf.experiments", "bad flag value", ["lambda_sweep", "--values=high", "--output_dir={tmp}/e"],
     "--values: cannot read 'high'"),
    ("acan_tf.experiments", "missing dataset", ["schemes", "--values=none", "--seeds=0", "--dataset=market1501",
                                                "--data_root={tmp}/nowhere", "--output_dir={tmp}/e"],
     NO_DATASET),
    ("acan_tf.data.check", "missing dataset", ["--dataset=market1501", "--data_root={tmp}/nowhere"],
     NO_DATASET),
]


@pytest.mark.parametrize("module, family, argv, expected", [
    # The parity check exports both formats first: seconds, so in the full suite only.
    pytest.param(*case, id=f"{case[0]}: {case[1]}", marks=[pytest.mark.slow] if case[1] == "failed parity" else [])
    for case in CASES
])
def test_each_command_reports_each_user_error_in_one_line(module, family, argv, expected, trained, tiny_tree,
                                                          tmp_path):
    argv = [arg.format(tmp=tmp_path, run=trained) for arg in argv]
    if argv[0] == "TINY":
        argv = tiny_flags(tiny_tree, str(tmp_path / "r")) + argv[1:]
    (tmp_path / "notes").mkdir()  # a folder holding files but no run
    (tmp_path / "notes" / "notes.txt").write_text("")
    exit_ = run_command(module, argv)
    message = str(exit_.code)
    command = module.removesuffix(".__main__")
    assert message.startswith(f"{command}: error: "), message
    assert expected.format(tmp=tmp_path) in message
    first, *rest = message.splitlines()
    if family == "missing dataset":  # the expected layout follows the line, as the dataset's own drawing
        assert "\n".join(rest) == MARKET_LAYOUT
    else:
        assert rest == []
    assert not os.path.exists(tmp_path / "m" / "a" / "1")  # nothing half-exported


def test_every_error_class_a_user_can_fix_derives_from_user_error():
    import acan_tf.deploy.exporter  # noqa: F401  (every library module defining an error class is imported)
    import acan_tf.experiments.runner  # noqa: F401
    import acan_tf.training.trainer  # noqa: F401

    # The trainer turns these into a RunError saying what is kept; StopRequested is a signal, not an error.
    internal = {"NonFiniteError", "CollapseError", "StopRequested"}
    defined = {cls.__name__: cls for cls in _subclasses(Exception) if cls.__module__.startswith("acan_tf.")}
    assert {"ConfigError", "DatasetError", "BackboneError", "TorchCheckpointError", "CheckpointError", "ParityError",
            "RunDirectoryError", "RunLockedError", "RunError", "EvaluateError", "ExportError"} <= set(defined)
    assert [name for name, cls in sorted(defined.items())
            if name not in internal and not issubclass(cls, UserError)] == []


def _subclasses(cls: type) -> set[type]:
    """Every subclass of `cls`, at any depth."""
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("argv, line", [
    (["acan_tf.evaluate", "--run_dir={tmp}/none"],
     "acan_tf.evaluate: error: {tmp}/none/config.json not found: is {tmp}/none a training run directory?"),
    (["acan_tf.data.check", "--dataset=market1501", "--data_root={tmp}/nowhere"],
     "acan_tf.data.check: error: dataset root {tmp}/nowhere is not a directory; expected layout:"),
])
def test_a_shell_sees_the_line_and_no_traceback(argv, line, tmp_path):
    result = subprocess.run([sys.executable, "-m", *(arg.format(tmp=tmp_path) for arg in argv)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=tiny_runs.subprocess_env())
    assert result.returncode == 1
    lines = [text for text in result.stderr.splitlines() if not TENSORFLOW_STARTUP.match(text)]
    assert lines[0] == line.format(tmp=tmp_path)
    assert "Traceback" not in result.stderr
