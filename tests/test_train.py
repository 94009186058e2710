"""End-to-end training runs on a tiny synthetic tree, and the trainer's handling of bad input."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from acan_tf.config import Config, ConfigError
from acan_tf.data import DATASET_NAMES, DatasetError, load_dataset
from acan_tf.data.pipeline import TrainingBatches
from acan_tf.data.sampling import SamplingError, training_set
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.model.backbones import BACKBONES
from acan_tf.model.builder import load_run
from acan_tf.training.trainer import RunError, run
from tests import tiny_runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared tiny run, evaluated after each of its two 2-step epochs.
TINY = {**tiny_runs.TINY, "steps_per_epoch": 2, "eval_every": 1}


@pytest.mark.parametrize("scheme", ["none", "grl", "oce", "ace"])
def test_tiny_run_per_scheme_writes_a_report_with_finite_metrics(tiny_tree, tmp_path, scheme):
    out = tmp_path / "run"
    analyses = scheme == "oce"  # the figures take seconds: one scheme shows that training writes them
    report = run(Config(**{**TINY, "analyses": analyses}, data_root=tiny_tree, scheme=scheme, output_dir=str(out)))
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["config"]["scheme"] == scheme
    assert [e["epoch"] for e in on_disk["evaluations"]] == [1, 2]
    for key in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP", "discrepancy", "d_test_accuracy",
                "mAP_camnorm", "rank1_camnorm", "mINP_camnorm"):
        assert np.isfinite(on_disk["final"][key])
        assert 0.0 <= on_disk["final"][key] <= (1.0 if key != "discrepancy" else 10.0)
    # Every evaluation is reported raw and camera-normalised, and the report says whose statistics normalised it.
    assert all("mAP_camnorm" in evaluation for evaluation in on_disk["evaluations"])
    assert "unlabelled per-camera statistics of the test images" in on_disk["camera_normalization"]["statistics"]
    assert len(on_disk["history"]["triplet_loss"]) == 2
    assert np.all(np.isfinite(on_disk["history"]["loss"]))
    assert (scheme == "none") == (on_disk["history"]["adv_loss"][-1] == 0.0)
    np.testing.assert_allclose(np.sum(on_disk["final"]["camera_confusion"], axis=1), 1.0)
    for name in ("config.json", "run.json", "dataset.txt", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5"):
        assert (out / name).is_file(), name
    assert os.listdir(out / "logs"), "TensorBoard logs"
    assert report["final"]["mAP"] == on_disk["final"]["mAP"]
    figures = ("camera_confusion", "tsne", "cmc", "ranked_list", "convergence")
    assert [(out / "plots" / f"{name}.png").is_file() for name in figures] == [analyses] * len(figures)
    assert (out / "logs" / "analysis").is_dir() == analyses


def test_an_existing_run_is_not_overwritten(tiny_tree, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")
    with pytest.raises(RunError, match="--overwrite"):
        run(Config(**TINY, data_root=tiny_tree, output_dir=str(out)))
    assert (out / "report.json").read_text() == "{}"


def test_missing_data_root_names_the_path(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        run(Config(**{**TINY, "dataset": "market1501"}, data_root=str(tmp_path / "nowhere"),
                   output_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_no_camera_with_p_identities_fails_before_training(tiny_tree, tmp_path):
    with pytest.raises(SamplingError, match="no camera has the 50 identities"):
        run(Config(**{**TINY, "num_identities": 50}, data_root=tiny_tree, output_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()


def test_unreadable_training_image_is_named_and_checkpoints_survive(tiny_tree, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(tiny_tree, tree)
    config = Config(**{**TINY, "epochs": 6, "steps_per_epoch": 1}, data_root=str(tree),
                    output_dir=str(tmp_path / "run"))
    # Steps are a pure function of (seed, step): break an image that step 3 reads and steps 0-2 do not.
    train = training_set(load_dataset("synthetic", str(tree)).train, config.min_ids)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, config.num_identities,
                              config.num_instances, config.camera_batch_size, 1, config.seed)
    earlier = set(np.concatenate([batches.indices(step)[0] for step in range(3)]))
    victim = next(train.records[i].path for i in batches.indices(3)[0] if i not in earlier)
    with open(victim, "wb") as handle:
        handle.write(b"\xff\xd8 broken")
    with pytest.raises(RunError, match=os.path.basename(victim)):
        run(config)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert (checkpoints / "best.weights.h5").is_file()
    _, acan, _ = load_run(str(tmp_path / "run"), "last")  # the epoch-3 checkpoint still loads
    assert acan.encoder.count_params() > 0


@pytest.mark.parametrize(
    "argv, error, message",
    [
        (["--scheme=dann"], flags.IllegalFlagValueError, "none|grl|oce|ace"),
        (["--backbone=vgg"], flags.IllegalFlagValueError, "resnet50|mobilenet_v3|tiny"),
        (["--dataset=cuhk03"], flags.IllegalFlagValueError, "market1501|dukemtmcreid|msmt17|mars"),
        (["--no_such_flag=1"], flags.UnrecognizedFlagError, "no_such_flag"),
        (["--lr_decay_epochs=ten"], ConfigError, "expected integers"),
        (["--synthetic_preset=sunny"], flags.IllegalFlagValueError, "default|realistic"),
        (["--intra_id_loss=arcface"], flags.IllegalFlagValueError, "none|classifier|memory"),
        (["--optimizer=rmsprop"], flags.IllegalFlagValueError, "sgd|adam"),
    ],
)
def test_bad_flags_are_rejected_with_the_choices(argv, error, message):
    flag_values = flags.FlagValues()
    define_flags({"dataset": DATASET_NAMES, "backbone": tuple(BACKBONES)}, flag_values)
    with pytest.raises(error, match=re.escape(message)):
        flag_values(["train", *argv])
        config_from_flags(flag_values)


@pytest.mark.parametrize("argv, message", [
    (["--margin=-1"], "--margin=-1.0: expected a number > 0"),
    (["--num_instances=1"], "--num_instances=1: expected an integer >= 2"),
    (["--warmup_steps=50", "--lr_warmup_epochs=1"],
     "--warmup_steps=50: expected 0 with --lr_warmup_epochs=1 (both warm up F's learning rate; choose one)"),
])
def test_cli_reports_invalid_values_in_one_line_before_any_work(argv, message, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "acan_tf.train", *argv, f"--output_dir={tmp_path / 'r'}",
         f"--data_root={tmp_path / 'd'}"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert f"acan_tf.train: error: {message}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("values, message", [
    ({"intra_id_weight": -0.5}, "--intra_id_weight=-0.5: expected a number >= 0"),
    ({"memory_momentum": 1.0}, "--memory_momentum=1.0: expected a number in [0, 1)"),
    ({"memory_temperature": 0.0}, "--memory_temperature=0.0: expected a number > 0"),
    ({"warmup_steps": -1}, "--warmup_steps=-1: expected an integer >= 0 (0: no warm-up)"),
    ({"optimizer": "rmsprop"}, "--optimizer='rmsprop': expected one of sgd, adam"),
    ({"intra_id_loss": "arcface"}, "--intra_id_loss='arcface': expected one of none, classifier, memory"),
])
def test_config_rejects_bad_recipe_values_naming_the_flag(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config(**values)


def test_config_rejects_out_of_range_values():
    with pytest.raises(ConfigError, match="--lr_decay_epochs"):
        Config(lr_decay_epochs=(200, 100))
    with pytest.raises(ConfigError, match="--camera_sampling"):
        Config(camera_sampling="uniform")
    with pytest.raises(ConfigError, match="--synthetic_preset='sunny': expected one of default, realistic"):
        Config(synthetic_preset="sunny")
