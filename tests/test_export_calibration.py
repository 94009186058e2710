"""Calibration at export: every format calibrated on its own test embeddings; no labelled split, no number."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from acan_tf.data import load_existing_dataset as load_test_data
from acan_tf.deploy import calibration, quantize
from acan_tf.deploy.exporter import export_run
from acan_tf.evaluation.reid import record_ids
from acan_tf.model.builder import load_run
from tests.run_fixtures import HEIGHT, WIDTH, make_run

pytestmark = pytest.mark.slow  # exports with every format, and the kit's runner in a subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KIT = os.path.join(REPO, "export")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_tree):
    folder = str(tmp_path_factory.mktemp("run"))
    make_run(folder, data_root=tiny_tree)
    return folder


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    return export_run(run_dir, str(tmp_path_factory.mktemp("models")), "acan",
                      formats=("saved_model", "onnx", "onnx_int8"), int8_calibration_images=8,
                      int8_map_tolerance=1.0, calibration_fpr=0.01)


def test_every_format_is_calibrated_on_its_own_embeddings(exported, tiny_tree):
    card = exported.card
    assert card["calibration"]["status"] == "calibrated"
    assert sorted(card["calibration"]["formats"]) == ["onnx", "onnx_int8", "saved_model"]
    data = load_test_data("synthetic", tiny_tree)
    records = [*data.query, *data.gallery]
    pids, cameras = record_ids(records)
    for name, file in (("onnx", "model.onnx"), ("onnx_int8", "model_int8.onnx")):
        features = quantize.onnx_features(os.path.join(exported.path, file), records, HEIGHT, WIDTH, 64)
        expected = calibration.calibrate(features, cameras, pids, 0.01)
        assert card["calibration"]["formats"][name]["items"]["threshold"] == expected["threshold"]
        assert card["calibration"]["formats"][name]["items"]["pairs"] == expected["pairs"]
        assert os.path.isfile(os.path.join(exported.path, f"calibration_{name}.png"))
    assert card["calibration"]["split"]["items"] == len(records)
    encoder = load_run(card["run_dir"], "best")[1].encoder
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w.numpy()).tobytes() for w in encoder.weights))
    assert card["model_hash"] == digest.hexdigest()  # the SHA-256 of F's weights, as camera_stats.json names it
    on_disk = json.load(open(os.path.join(exported.path, "model.json")))
    assert on_disk["calibration"]["formats"]["saved_model"]["links"]["pairs"]["same_person"] > 0


def test_edge_runner_answers_no_match_beyond_the_cards_threshold(exported, tiny_tree, tmp_path):
    data = load_test_data("synthetic", tiny_tree)
    query, gallery = data.query[0].path, os.path.dirname(data.gallery[0].path)
    result = subprocess.run([sys.executable, os.path.join(KIT, "onnx_infer.py"), f"--model={exported.path}",
                             f"--gallery={gallery}", "--top_k=3", query], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    threshold = exported.card["calibration"]["formats"]["onnx"]["items"]["threshold"]
    assert record["threshold"] == threshold
    assert all(match["distance"] <= threshold for match in record["matches"])
    assert record["no_match"] == (record["matches"] == [])


def test_edge_runner_fills_and_searches_a_gallery_index(exported, tiny_tree, tmp_path):
    data = load_test_data("synthetic", tiny_tree)
    query, gallery = data.query[0].path, os.path.dirname(data.gallery[0].path)
    runner = [sys.executable, os.path.join(KIT, "onnx_infer.py"), f"--model={exported.path}", "--top_k=3",
              "--threshold=none"]
    index = str(tmp_path / "gallery.idx")
    filled = subprocess.run([*runner, f"--index={index}", f"--gallery={gallery}"], capture_output=True, text=True)
    assert filled.returncode == 0 and filled.stdout == "", filled.stderr
    searched, direct = (subprocess.run(command, capture_output=True, text=True) for command in
                        ([*runner, f"--index={index}", query], [*runner, f"--gallery={gallery}", query]))
    (from_index,), (from_folder,) = ([json.loads(line) for line in result.stdout.splitlines()]
                                     for result in (searched, direct))
    assert [m["item"] for m in from_index["matches"]] == [m["item"] for m in from_folder["matches"]]
    np.testing.assert_allclose([m["distance"] for m in from_index["matches"]],
                               [m["distance"] for m in from_folder["matches"]], atol=1e-5)
    assert from_index["matches"][0]["camera"] == os.path.basename(gallery)
    other = dict(exported.card, model_hash="another encoder")
    json.dump(other, open(tmp_path / "model.json", "w"))
    shutil.copy(os.path.join(exported.path, "model.onnx"), tmp_path / "model.onnx")
    refused = subprocess.run([*runner[:2], f"--model={tmp_path}", f"--index={index}", query], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "built by encoder" in refused.stderr and "another encoder" in refused.stderr
    assert exported.card["model_hash"] in refused.stderr  # both hashes named
    old = dict(exported.card, fingerprint=exported.card["model_hash"][:16])  # an export of the old naming
    json.dump(old, open(tmp_path / "model.json", "w"))
    refused = subprocess.run([*runner[:2], f"--model={tmp_path}", f"--index={index}", query], capture_output=True,
                             text=True)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "names its model by 'fingerprint'" in refused.stderr and "export the run again" in refused.stderr


def test_without_a_labelled_split_the_threshold_is_left_to_the_user(tmp_path):
    run = str(tmp_path / "run")
    make_run(run, data_root=str(tmp_path / "gone"))
    out = str(tmp_path / "models")
    result = subprocess.run([sys.executable, "-m", "acan_tf.export", f"--run_dir={run}", f"--output_dir={out}",
                             "--model_name=acan", "--formats=onnx"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "calibration: none (the run's dataset cannot be read" in result.stdout
    card = json.load(open(os.path.join(out, "acan", "1", "model.json")))
    assert card["calibration"]["status"] == "uncalibrated" and card["calibration"]["threshold"] is None
    asked = subprocess.run([sys.executable, os.path.join(KIT, "onnx_infer.py"), f"--model={out}/acan/1",
                            "--threshold=card", f"--gallery={tmp_path}", str(tmp_path)], capture_output=True,
                           text=True)
    assert asked.returncode == 2 and len(asked.stderr.strip().splitlines()) == 1  # the kit imports no TensorFlow
    assert "no calibrated threshold for onnx" in asked.stderr and "--threshold=DISTANCE" in asked.stderr
    user = export_run(run, out, "acan", formats=("onnx",), threshold=0.8)
    assert user.card["calibration"]["status"] == "user" and user.card["calibration"]["threshold"] == 0.8
    with pytest.raises(calibration.CalibrationError,
                       match=r"--threshold=2.5: a distance between L2-normalised embeddings lies in \[0, 2\]"):
        export_run(run, out, "acan", formats=("onnx",), threshold=2.5)
    assert sorted(os.listdir(os.path.join(out, "acan"))) == ["1", "2"]  # the refused export wrote nothing
    assert np.isfinite(user.card["embedding_size"])
