"""Pre-emption and exclusive run directories, end to end: SIGTERM/SIGINT save and exit 128 + signal, --resume
continues bit for bit, a second trainer on a live folder changes nothing, a live run can be evaluated, an
interrupted experiment continues, and a collapsed embedding stops the run keeping the last good state."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from acan_tf.evaluation.runner import evaluate_run
from acan_tf.run_dir import RunDir
from acan_tf.training.run_lock import RunLock
from acan_tf.training.state import read_progress
from acan_tf.training.trainer import RunError, run
from tests.tiny_runs import REPO, h5_arrays, subprocess_env, tiny_config, train_command

pytestmark = pytest.mark.slow

# 2 epochs of 60 steps, with no periodic save inside an epoch (a cadence longer than the run): only the signal's
# save can keep a mid-epoch step.
LONG = dict(epochs=2, steps_per_epoch=60, checkpoint_every_steps=10_000, deterministic=True, lr_decay_epochs=(1,))
GRACE = 30.0  # seconds a scheduler usually waits between SIGTERM and SIGKILL


def wait_for(condition, process, seconds=300.0):
    deadline = time.time() + seconds
    while not condition() and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)


def saved_step(run_dir) -> int:
    progress = read_progress(str(run_dir)) if os.path.isfile(RunDir(str(run_dir)).progress_file) else None
    return progress["step"] if progress else 0


@pytest.fixture(scope="module")
def reference(tiny_tree, tmp_path_factory):
    """The uninterrupted run's last weights."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run(tiny_config(tiny_tree, str(out), **LONG))
    return h5_arrays(str(out / "checkpoints" / "last.weights.h5"))


@pytest.mark.parametrize("signals", [(signal.SIGTERM,), (signal.SIGINT, signal.SIGTERM)],
                         ids=["SIGTERM", "SIGINT+second"])
def test_a_signal_saves_the_step_exits_128_plus_signal_and_resume_is_bit_identical(tiny_tree, tmp_path, reference,
                                                                                 signals):
    out = tmp_path / "run"
    command = train_command(tiny_config(tiny_tree, str(out), **LONG))
    victim = subprocess.Popen(command, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for(lambda: saved_step(out) >= LONG["steps_per_epoch"], victim)  # epoch 1 saved: epoch 2 is running
        sent = time.time()
        for number in signals:  # a second signal while the first one's save runs must not harm it
            victim.send_signal(number)
            time.sleep(0.05)
        _, stderr = victim.communicate(timeout=120)
        took = time.time() - sent
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 128 + signals[0], stderr[-2000:]
    assert took < GRACE, f"exit {took:.1f} s after the signal"
    step = saved_step(out)
    assert LONG["steps_per_epoch"] < step < 2 * LONG["steps_per_epoch"], f"stopped mid-epoch 2, saved {step}"
    line = [text for text in stderr.splitlines() if "training stopped after step" in text]
    assert line and f"{signal.Signals(signals[0]).name}: training stopped after step {step}, the state of step {step}" \
        in line[0] and line[0].endswith("--resume"), stderr[-2000:]
    assert not (out / "report.json").exists()

    resumed = subprocess.run(command + ["--resume"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from step {step}" in resumed.stderr
    actual = h5_arrays(str(out / "checkpoints" / "last.weights.h5"))
    different = [name for name in reference if not np.array_equal(reference[name], actual[name])]
    assert not different, f"--deterministic: resumed weights must equal the uninterrupted run's: {different}"


def test_a_second_trainer_on_a_live_folder_fails_at_once_and_changes_nothing(tiny_tree, tmp_path):
    out, alone = tmp_path / "run", tmp_path / "alone"
    settings = dict(epochs=1, steps_per_epoch=80, checkpoint_every_steps=10_000, deterministic=True, eval_every=0)
    reference = subprocess.Popen(train_command(tiny_config(tiny_tree, str(alone), **settings)), cwd=REPO,
                                 env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = subprocess.Popen(train_command(tiny_config(tiny_tree, str(out), **settings)), cwd=REPO,
                             env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lock = RunDir(str(out)).lock_file
    second = []
    try:
        # Locked, its run files written and its TensorBoard folder made: the first trainer is training.
        wait_for(lambda: os.path.isfile(lock) and str(first.pid) in open(lock).read()
                 and os.path.isdir(RunDir(str(out)).logs_dir), first)
        # Paused mid-training (holding its lock) while three more trainers try the folder, then let go on.
        os.kill(first.pid, signal.SIGSTOP)
        before = sorted(os.listdir(out))
        recorded = open(lock).read()
        second = [subprocess.Popen(train_command(tiny_config(tiny_tree, str(out), **settings)) + extra, cwd=REPO,
                                   env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                  for extra in ([], ["--resume"], ["--overwrite"])]
        results = [(process.wait(timeout=300), process.stderr.read()) for process in second]
        assert first.poll() is None, "the first trainer must outlive the attempts for the test to mean anything"
        assert sorted(os.listdir(out)) == before and open(lock).read() == recorded
        os.kill(first.pid, signal.SIGCONT)
    except BaseException:
        first.kill()
        reference.kill()
        raise
    finally:
        for process in second:
            if process.poll() is None:
                process.kill()
    for status, stderr in results:
        assert status == 1
        assert re.search(rf"acan_tf.train: error: {re.escape(str(out))} is in use by another trainer \(pid {first.pid} "
                         rf"on {re.escape(socket.gethostname())}, since ", stderr), stderr[-2000:]
    assert first.wait(timeout=600) == 0, first.stderr.read()[-3000:]
    assert reference.wait(timeout=600) == 0
    assert (out / "report.json").exists()
    expected, actual = (json.loads((folder / "report.json").read_text())["weights_sha256"] for folder in (alone, out))
    assert actual == expected, "the first run ends with the weights it has when trained alone"


def test_a_locked_run_can_be_evaluated(tiny_tree, tmp_path):
    out = tmp_path / "run"
    run(tiny_config(tiny_tree, str(out), epochs=1, steps_per_epoch=2))
    with RunLock(RunDir(str(out)).lock_file):  # as a live trainer holds it
        document = evaluate_run(str(out), "last")
    assert 0.0 <= document["metrics"]["mAP"] <= 1.0


def test_an_interrupted_experiment_continues_from_its_saved_step(tiny_tree, tmp_path):
    out = tmp_path / "experiment"
    flags = [f"--{name}={value}" for name, value in dict(
        dataset="synthetic", data_root=tiny_tree, backbone="tiny", backbone_weights="none", image_height=32,
        image_width=16, pad=4, lr_pretrained=0.01, lr_new=0.01, num_identities=4, num_instances=2, camera_batch_size=6,
        epochs=2, steps_per_epoch=60, eval_batch_size=64, checkpoint_every_steps=10_000, output_dir=str(out)).items()]
    command = [sys.executable, "-m", "acan_tf.experiments", "schemes", "--values=none", "--seeds=0", "--noanalyses",
               "--lr_decay_epochs=", *flags]
    run_dir = out / "scheme-none_seed0"
    victim = subprocess.Popen(command, cwd=REPO, env=subprocess_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: saved_step(run_dir) >= 60, victim)
        victim.send_signal(signal.SIGTERM)
        _, stderr = victim.communicate(timeout=120)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert victim.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    step = saved_step(run_dir)
    again = subprocess.run(command, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir / "report.json").read_text())["resumed_from_step"] == step > 0


def test_a_collapsed_embedding_stops_the_run_and_keeps_the_last_good_state(tiny_tree, tmp_path):
    out = tmp_path / "run"
    # Measured: at this learning rate the tiny model's embedding collapses to a point within ~200 steps, no NaN.
    config = tiny_config(tiny_tree, str(out), lr_pretrained=50.0, epochs=3, steps_per_epoch=100,
                         checkpoint_every_steps=10, lr_decay_epochs=())
    with pytest.raises(RunError) as caught:
        run(config)
    message = str(caught.value)
    found = re.search(r"step (\d+): the embedding collapsed \(embedding spread below .* since step (\d+)", message)
    assert found and "--lr_pretrained" in message and "training stopped" in message, message
    fired, since = int(found.group(1)), int(found.group(2))
    assert fired < 300, "caught before the run ends"
    assert saved_step(out) < since, "the state kept predates the collapse"
    assert not (out / "report.json").exists()
