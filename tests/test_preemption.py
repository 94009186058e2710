"""Graceful stop: SIGTERM and SIGINT are only recorded; old handlers return; exit status, resume line, replicas."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
import tensorflow as tf

from acan_tf.training.preemption import (
    StopRequested,
    StopSignals,
    any_replica,
    exit_status,
    resume_command,
    stop_message,
)
from tests.tiny_runs import subprocess_env


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_is_recorded_and_later_signals_do_not_interrupt(tmp_path, signum):
    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    with StopSignals() as stop:
        assert stop.requested is None  # nothing received yet
        os.kill(os.getpid(), signum)  # no KeyboardInterrupt for SIGINT, no exit for SIGTERM
        assert stop.requested.number == signum
        # A "save" during which a second signal arrives runs to its end.
        path = tmp_path / "state"
        with open(path, "w", encoding="utf-8") as handle:
            for line in range(100):
                if line == 50:
                    os.kill(os.getpid(), signal.SIGTERM)
                handle.write(f"{line}\n")
        assert len(path.read_text().splitlines()) == 100
        assert [r.number for r in stop.received] == [signum, signal.SIGTERM]
        assert stop.requested.number == signum  # the first one decides
        raised = StopRequested(17, stop.requested.number)
    assert (raised.step, raised.signum, raised.exit_status) == (17, signum, 128 + signum)
    assert {number: signal.getsignal(number) for number in before} == before


def test_exit_status_is_what_shells_report():
    assert exit_status(signal.SIGTERM) == 143
    assert exit_status(signal.SIGINT) == 130


def test_outside_the_main_thread_it_changes_nothing():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def enter() -> None:
        with StopSignals() as stop:
            seen.append((signal.getsignal(signal.SIGTERM), stop.requested))

    thread = threading.Thread(target=enter)
    thread.start()
    thread.join()
    assert seen == [(before, None)]


def test_resume_command_resumes_and_never_overwrites():
    argv = ["/x/acan_tf/train.py", "--output_dir=runs/a b", "--overwrite", "--epochs=3", "--noresume"]
    assert resume_command(argv) == "python -m acan_tf.train '--output_dir=runs/a b' --epochs=3 --resume"
    with_file = resume_command(["train.py", "--flagfile=configs/market.cfg", "--overwrite=true"])
    assert with_file == "python -m acan_tf.train --flagfile=configs/market.cfg --resume --nooverwrite"


def test_stop_message_names_signal_step_folder_and_command():
    stop = StopRequested(120, signal.SIGTERM)
    stop.saved_step, stop.saved_in = 120, "runs/a/checkpoints/state"
    line = stop_message(stop, "python -m acan_tf.train --resume")
    assert line == ("SIGTERM: training stopped after step 120, the state of step 120 saved in "
                    "runs/a/checkpoints/state; resume with: python -m acan_tf.train --resume")
    assert "\n" not in line


def test_any_replica_on_one_device():
    step = tf.function(lambda flag: any_replica(tf.distribute.get_strategy(), flag))
    assert bool(step(tf.constant(True))) and not bool(step(tf.constant(False)))


# Two replicas on two logical CPUs (configured before TensorFlow initialises, hence a subprocess): a flag set
# on one replica only is seen by both.
MIRRORED = """
import tensorflow as tf
from acan_tf.training.preemption import any_replica
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
step = tf.function(lambda flag: any_replica(strategy, flag))
for stopping in ([], [1], [0], [0, 1]):
    flags = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant(context.replica_id_in_sync_group in stopping))
    print(int(step(flags)))
"""


def test_any_replica_agrees_across_replicas():
    done = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=subprocess_env(),
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1", "1", "1"]
