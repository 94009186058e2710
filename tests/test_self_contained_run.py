"""A run directory is enough to evaluate and export its model: the initial weights file may be gone."""

import os

import keras
import numpy as np
import pytest

from acan_tf.deploy.exporter import export_run
from acan_tf.evaluation.runner import evaluate_run
from acan_tf.model.backbones import BackboneError, build_backbone
from acan_tf.model.builder import load_run
from acan_tf.training.trainer import run
from tests import tiny_runs


@pytest.mark.slow
def test_a_run_trained_from_a_weights_file_evaluates_and_exports_once_the_file_is_gone(tiny_tree, tmp_path):
    weights = str(tmp_path / "initial.weights.h5")
    build_backbone("tiny", (32, 16, 3)).save_weights(weights)
    out = str(tmp_path / "run")
    report = run(tiny_runs.tiny_config(tiny_tree, out, backbone_weights=weights, epochs=1))
    os.remove(weights)
    with pytest.raises(BackboneError, match="initial.weights.h5"):  # what a rebuild with initial weights would do
        build_backbone("tiny", (32, 16, 3), weights)

    _, acan, _ = load_run(out, "last")
    assert acan.encoder.count_params() > 0
    evaluation = evaluate_run(out, "best")
    np.testing.assert_allclose(evaluation["metrics"]["mAP"], report["final"]["mAP"], rtol=1e-6)
    exported = export_run(out, str(tmp_path / "models"), "acan")
    assert sorted(exported.card["formats"]) == ["onnx", "saved_model"]
    for name, tolerance in exported.card["parity"]["tolerance"].items():
        assert max(exported.card["parity"]["max_abs_difference"][name].values()) <= tolerance


def test_a_tiny_backbone_loads_a_weights_file_saved_from_another(tmp_path):
    source = build_backbone("tiny", (32, 16, 3))
    path = str(tmp_path / "tiny.weights.h5")
    source.save_weights(path)
    loaded = build_backbone("tiny", (32, 16, 3), path)
    for expected, actual in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(expected), np.asarray(actual))
    other = str(tmp_path / "dense.weights.h5")
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(other)
    with pytest.raises(BackboneError, match="dense.weights.h5: not the weights of a tiny backbone"):
        build_backbone("tiny", (32, 16, 3), other)
