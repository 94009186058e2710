"""--resume: a run killed with SIGKILL mid-epoch continues from its saved state and ends with the weights of an
uninterrupted run; the training state is saved atomically; an output directory holding a run is never reused by
mistake."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from acan_tf.config import ConfigError
from acan_tf.model.builder import build_acan
from acan_tf.run_dir import RunDir
from acan_tf.training.state import CheckpointError, Progress, TrainingState
from acan_tf.training.trainer import RunError, run
from tests.tiny_runs import REPO, h5_arrays, make_tree, subprocess_env, tiny_config, train_command

pytestmark = pytest.mark.slow  # killed and resumed training subprocesses: the full suite only

# 2 epochs of 5 steps, the state saved every 2 steps: saves at steps 2, 4, 5 (epoch end), 6, 8, 10.
RESUMABLE = dict(epochs=2, steps_per_epoch=5, checkpoint_every_steps=2, deterministic=True, resume=True)
# F's teacher, whose features make the association round before epoch 2 (after the kill): a resumed run that lost
# the teacher's average would link with other features and end with other weights.
TEACHER = dict(cross_camera="association", association_first_epoch=2, association_teacher_momentum=0.5)
# The intra-camera recipe whose state a resumed run must also carry over: the memory of class centres (updated by
# assignment, not by an optimizer), the BN-neck's statistics, Adam's moments and the warm-up's step.
RECIPE = dict(intra_id_loss="memory", bn_neck=True, optimizer="adam", warmup_steps=3, lr_pretrained=0.001)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(str(tmp_path_factory.mktemp("resume") / "tree"))


def saved_step(run_dir) -> int:
    try:
        with open(RunDir(str(run_dir)).progress_file) as handle:
            return json.load(handle)["step"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


# The teacher and the recipe share one killed run: each one's state must survive the same kill.
@pytest.mark.parametrize("settings", [{}, dict(TEACHER, **RECIPE)], ids=["acan", "teacher+recipe"])
def test_killed_run_resumes_to_the_uninterrupted_runs_weights(tree, tmp_path, settings):
    uninterrupted, killed = tmp_path / "uninterrupted", tmp_path / "killed"
    env = subprocess_env()
    with open(tmp_path / "reference.log", "w") as log:
        reference = subprocess.Popen(train_command(tiny_config(tree, str(uninterrupted), **RESUMABLE, **settings)),
                                     cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    command = train_command(tiny_config(tree, str(killed), **RESUMABLE, **settings))
    with open(tmp_path / "victim.log", "w") as log:
        victim = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300  # generous: a loaded machine; the loop ends as soon as step 2 is saved
        while saved_step(killed) < 2 and victim.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL, (tmp_path / "victim.log").read_text()[-2000:]
        at_kill = saved_step(killed)
        assert 2 <= at_kill < 10 and at_kill % 5, f"the kill must come mid-epoch, after a saved step (saved: {at_kill})"
        assert not (killed / "report.json").exists()

        resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"resuming from step {at_kill}" in resumed.stderr
        assert reference.wait(timeout=300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    finally:
        for process in (reference, victim):  # neither may outlive a failed test
            if process.poll() is None:
                process.kill()

    expected = h5_arrays(str(uninterrupted / "checkpoints" / "last.weights.h5"))
    actual = h5_arrays(str(killed / "checkpoints" / "last.weights.h5"))
    assert sorted(actual) == sorted(expected) and len(expected) > 10
    different = [name for name in expected if not np.array_equal(expected[name], actual[name])]
    assert not different, ("--deterministic: resumed weights must equal the uninterrupted run's bit for bit: "
                           f"{different}")
    reports = [json.loads((run_dir / "report.json").read_text()) for run_dir in (uninterrupted, killed)]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    assert reports[1]["resumed_from_step"] == at_kill and reports[0]["resumed_from_step"] == 0
    assert len(reports[1]["history"]["loss"]) == 2
    np.testing.assert_allclose(reports[1]["history"]["loss"], reports[0]["history"]["loss"], rtol=1e-5)
    assert reports[1]["final"]["mAP"] == reports[0]["final"]["mAP"]


def tiny_state(tmp_path, seed: int, **settings):
    """A TrainingState of a freshly built tiny ACAN (Config overrides `settings`), and its ACAN."""
    keras.utils.set_random_seed(seed)
    acan = build_acan(tiny_config(str(tmp_path / "tree"), str(tmp_path / "run"), seed=seed, **settings),
                      num_cameras=3, steps_per_epoch=5, ids_per_camera=(4, 4, 4))
    return TrainingState(acan), acan


def state_arrays(acan) -> list[np.ndarray]:
    """Weights, both optimizers' variables and the metrics' sums, in a fixed order."""
    variables = [*acan.weights, *acan.f_optimizer.variables, *acan.d_optimizer.variables]
    return [np.array(v) for v in variables] + [np.array(v) for m in acan.metrics for v in m.variables]


def randomise(acan, seed: int) -> None:
    """Gives every weight, optimizer variable (momentum, iteration count) and metric sum a new value."""
    rng = np.random.default_rng(seed)
    for variable in [*acan.weights, *acan.f_optimizer.variables, *acan.d_optimizer.variables,
                     *(v for m in acan.metrics for v in m.variables)]:
        value = (rng.integers(1, 1000, variable.shape) if "int" in str(variable.dtype)
                 else rng.normal(size=variable.shape))
        variable.assign(value.astype(str(variable.dtype)))


@pytest.mark.parametrize("settings", [{}, TEACHER, RECIPE, dict(RECIPE, intra_id_loss="classifier")],
                         ids=["acan", "teacher", "memory", "classifier"])
def test_restore_brings_back_weights_optimizers_and_metrics_exactly(tmp_path, settings):
    state, acan = tiny_state(tmp_path, 1, **settings)
    assert (acan.teacher is not None) == ("association_teacher_momentum" in settings)
    if "intra_id_loss" in settings:  # the identity head's variables are part of the weights saved and restored
        assert {id(v) for v in acan.identity_head.weights} <= {id(v) for v in acan.weights}
    randomise(acan, 0)
    progress = Progress(step=4, epoch_logs=[{"loss": 1.5}], evaluations=[{"epoch": 1, "mAP": 0.25}], best_map=0.25)
    state.save(str(tmp_path / "run"), progress)
    saved = state_arrays(acan)
    assert any(np.any(a != 0) for a in saved[len(acan.weights):]), "the optimizers must hold state to restore"

    fresh_state, fresh = tiny_state(tmp_path, 2, **settings)
    assert not all(np.array_equal(a, b) for a, b in zip(saved, state_arrays(fresh)))
    assert fresh_state.restore(str(tmp_path / "run")) == progress
    for before, after in zip(saved, state_arrays(fresh)):
        np.testing.assert_array_equal(before, after)


def test_a_half_written_checkpoint_is_never_loaded_and_is_cleaned_up(tmp_path):
    run_dir = str(tmp_path / "run")
    state, acan = tiny_state(tmp_path, seed=1)
    state.save(run_dir, Progress(2, [], [], -1.0))
    at_step_2 = state_arrays(acan)
    # A crash while saving step 4: its files are cut short and progress.json still names step 2.
    randomise(acan, 1)
    folder = RunDir(str(run_dir)).state_dir
    state.checkpoint.write(os.path.join(folder, "step-00000004"))
    data = next(name for name in os.listdir(folder) if name.startswith("step-00000004.data"))
    with open(os.path.join(folder, data), "r+b") as handle:
        handle.truncate(10)
    with open(os.path.join(folder, ".progress.0123.tmp.json"), "w") as handle:
        handle.write('{"step": 4, "checkp')
    os.makedirs(os.path.join(folder, "step-00000004_temp"))  # TensorFlow's folder of a sharded write in progress
    with open(os.path.join(folder, "step-00000004_temp", "part-00000-of-00001.data-00000-of-00001.tempstate1"), "wb"):
        pass

    fresh_state, fresh = tiny_state(tmp_path, seed=3)
    assert fresh_state.restore(run_dir).step == 2
    for before, after in zip(at_step_2, state_arrays(fresh)):
        np.testing.assert_array_equal(before, after)
    fresh_state.save(run_dir, Progress(6, [], [], -1.0))
    assert sorted(os.listdir(folder)) == [
        "progress.json", "step-00000002.data-00000-of-00001", "step-00000002.index",
        "step-00000006.data-00000-of-00001", "step-00000006.index",
    ]
    fresh_state.save(run_dir, Progress(8, [], [], -1.0))
    assert not any(name.startswith("step-00000002") for name in os.listdir(folder)), "only the last two are kept"


def test_a_damaged_progress_file_is_named(tmp_path):
    state, _ = tiny_state(tmp_path, seed=1)
    path = Path(RunDir(str(tmp_path / "run")).progress_file)
    path.parent.mkdir(parents=True)
    path.write_text('{"step": "four"}')
    with pytest.raises(CheckpointError, match=r"progress\.json is not a progress file .*step.*--overwrite"):
        state.restore(str(tmp_path / "run"))


def write_saved_run(run_dir, config, report=None, step=None) -> None:
    """A run directory as a run of `config` leaves it: config.json, and a report or a saved step."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_json()))
    if report is not None:
        (run_dir / "report.json").write_text(json.dumps(report))
    if step is not None:
        progress = {"step": step, "checkpoint": f"step-{step:08d}", "kept": [], "epoch_logs": [], "evaluations": [],
                    "best_map": -1.0, "metrics": {}}
        Path(RunDir(str(run_dir)).state_dir).mkdir(parents=True)
        Path(RunDir(str(run_dir)).progress_file).write_text(json.dumps(progress))


@pytest.mark.parametrize("report, step, held", [({"final": {}}, None, "a finished run"),
                                                (None, 7, r"an unfinished run \(state saved at step 7\)")])
def test_a_new_run_refuses_a_folder_holding_a_run(tmp_path, report, step, held):
    config = tiny_config(str(tmp_path / "tree"), str(tmp_path / "run"))
    write_saved_run(tmp_path / "run", config, report, step)
    with pytest.raises(RunError,
                       match=rf"already holds {held}; pass --resume to continue it, --overwrite to replace it"):
        run(config)
    # Nothing changed but the (empty, hidden) lock file the refused trainer held while it looked.
    assert RunDir(str(tmp_path / "run")).contents() == sorted(["config.json"]
                                                              + (["report.json"] if report else ["checkpoints"]))


def test_resuming_a_finished_run_returns_its_report_without_training(tmp_path):
    config = tiny_config(str(tmp_path / "absent-tree"), str(tmp_path / "run"), resume=True)
    write_saved_run(tmp_path / "run", config, report={"final": {"mAP": 0.5}})
    assert run(config) == {"final": {"mAP": 0.5}}
    assert not (tmp_path / "absent-tree").exists()


def test_resuming_with_other_settings_names_them(tmp_path):
    saved = tiny_config(str(tmp_path / "tree"), str(tmp_path / "run"))
    write_saved_run(tmp_path / "run", saved, step=3)
    changed = tiny_config(str(tmp_path / "tree"), str(tmp_path / "run"), margin=0.5, resume=True,
                          checkpoint_every_steps=7)
    with pytest.raises(RunError,
                       match=r"--resume: --margin=0\.5 \(saved run: 0\.3\); resume with the saved run's settings"):
        run(changed)


def test_resume_and_overwrite_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="--resume=True: expected False with --overwrite"):
        tiny_config(str(tmp_path), str(tmp_path), resume=True, overwrite=True)
