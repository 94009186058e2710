"""The intra-camera recipe's flags end to end: a tiny training run per flag, and the run it leaves reloads."""

import json

import numpy as np
import pytest

from acan_tf.config import Config
from acan_tf.model.builder import load_run
from acan_tf.model.identity import weights_digest
from acan_tf.model.identity_heads import CameraMemory, PerCameraClassifier
from acan_tf.training.trainer import load_training_data, run
from tests import tiny_runs
from tests.run_fixtures import make_run

TINY = {**tiny_runs.TINY, "steps_per_epoch": 3}
HEADS = {"classifier": PerCameraClassifier, "memory": CameraMemory}


@pytest.mark.slow  # training runs; each flag is on in one of them (they compose)
@pytest.mark.parametrize("recipe", [
    dict(intra_id_loss="classifier", optimizer="adam", warmup_steps=4, lr_pretrained=0.001),
    dict(intra_id_loss="memory", cross_camera="association", bn_neck=True),
], ids=["classifier+adam-warmup", "memory+bn_neck+association"])
def test_tiny_run_per_recipe_flag_trains_reports_and_reloads(tiny_tree, tmp_path, recipe):
    out = tmp_path / "run"
    config = Config(**{**TINY, **recipe}, data_root=tiny_tree, output_dir=str(out))
    report = run(config)
    history = report["history"]
    assert np.all(np.isfinite(history["loss"])) and np.isfinite(report["final"]["mAP"])
    head = recipe.get("intra_id_loss", "none")
    assert ("identity_loss" in history) == (head != "none")
    if head != "none":
        assert all(value > 0.0 for value in history["identity_loss"])

    info = json.loads((out / "run.json").read_text())
    train = load_training_data(config).train
    expected = [len(np.unique(train.local_ids[train.classes == c])) for c in range(len(train.camera_classes))]
    assert info["ids_per_camera"] == expected
    _, acan, _ = load_run(str(out), "last")
    assert (acan.identity_head is None) == (head == "none")
    if head != "none":
        assert isinstance(acan.identity_head, HEADS[head])
        assert acan.identity_head.ids_per_camera == tuple(expected)
    if head == "memory":  # the memory trained and reloaded: its seen ids' centres are unit vectors
        norms = np.linalg.norm(acan.identity_head.centres.numpy(), axis=1)
        assert np.all((np.abs(norms - 1.0) < 1e-4) | (norms == 0.0)) and np.any(norms > 0.0)
    assert (acan.encoder.layers[-1].name == "bn_neck") == config.bn_neck
    if config.optimizer == "adam":
        assert type(acan.f_optimizer).__name__ == "Adam"


def test_a_run_saved_before_the_recipe_flags_existed_still_loads(tmp_path):
    # Its config.json lacks the new keys and its run.json the ids per camera: the defaults (all off) rebuild it.
    trained = make_run(str(tmp_path))
    config_file, info_file = tmp_path / "config.json", tmp_path / "run.json"
    new_keys = ("intra_id_loss", "intra_id_weight", "memory_momentum", "memory_temperature", "bn_neck", "optimizer",
                "warmup_steps")
    saved = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({k: v for k, v in saved.items() if k not in new_keys}))
    info = json.loads(info_file.read_text())
    del info["ids_per_camera"]
    info_file.write_text(json.dumps(info))
    _, acan, _ = load_run(str(tmp_path))
    assert acan.identity_head is None and acan.training_view is None
    assert weights_digest(acan) == weights_digest(trained)
