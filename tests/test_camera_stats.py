"""Camera statistics of a deployment: written by the export, updated by python -m acan_tf.camera_stats, refused when
they belong to another model or are malformed (nothing overwritten)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from acan_tf.data import load_dataset
from acan_tf.data.pipeline import inference_dataset
from acan_tf.data.records import ImageRecord
from acan_tf.deploy.camera_stats import probe_images, update_camera
from acan_tf.deploy.exporter import export_run
from acan_tf.errors import UserError
from acan_tf.evaluation.camera_norm import STATISTICS_FILE, CameraStatistics, CameraStatisticsError
from acan_tf.model.identity import model_hash
from tests.run_fixtures import HEIGHT, WIDTH, make_run
from tests.test_camera_norm import kit_camera_norm
from tests.test_deploy_kit import write_images

pytestmark = pytest.mark.slow  # tiny exports in both formats and the command in subprocesses: the full suite only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "acan_tf.camera_stats", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def keras_embeddings(acan, records, uint8=False):
    """The Keras model's L2-normalised embeddings of records, decoded as evaluation decodes them (`uint8`: then
    rounded, as an export's input)."""
    batches = [np.rint(batch) if uint8 else batch for batch in inference_dataset(records, HEIGHT, WIDTH, 64)]
    return unit(np.concatenate([acan.encoder(batch, training=False).numpy() for batch in batches]).astype(np.float64))


@pytest.fixture(scope="module")
def exported(tiny_tree, tmp_path_factory):
    """(ACAN, export folder OUT/acan/1) of a tiny run on the tiny synthetic tree."""
    run_dir = str(tmp_path_factory.mktemp("run"))
    acan = make_run(run_dir, data_root=tiny_tree)
    return acan, export_run(run_dir, str(tmp_path_factory.mktemp("models")), "acan").path


@pytest.fixture(scope="module")
def other_export(tiny_tree, tmp_path_factory):
    """A second tiny run exported (its own random initial weights): another model."""
    run_dir = str(tmp_path_factory.mktemp("other"))
    make_run(run_dir, data_root=tiny_tree, seed=7)
    return export_run(run_dir, str(tmp_path_factory.mktemp("models")), "other").path


@pytest.fixture
def export_copy(exported, tmp_path):
    """A copy of the export folder, for tests that change its statistics file."""
    return shutil.copytree(exported[1], str(tmp_path / "acan" / "1"))


def test_export_writes_each_training_cameras_statistics_with_the_models_hash(exported, tiny_tree):
    acan, folder = exported
    statistics = CameraStatistics.load(os.path.join(folder, STATISTICS_FILE))
    card = json.load(open(os.path.join(folder, "model.json")))
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w.numpy()).tobytes() for w in acan.encoder.weights))
    assert card["model_hash"] == model_hash(acan.encoder) == digest.hexdigest()
    assert statistics.model_hash == card["model_hash"] == card["camera_statistics"]["model_hash"]
    assert "fingerprint" not in card and "model_fingerprint" not in json.load(open(os.path.join(folder,
                                                                                                STATISTICS_FILE)))
    train = load_dataset("synthetic", tiny_tree).train
    assert statistics.cameras == ("c1", "c2", "c3")
    assert card["camera_statistics"]["cameras"] == dict(statistics.counts)
    assert card["camera_statistics"]["path"] == STATISTICS_FILE and "unlabelled" in card["camera_statistics"]["source"]
    for camid in range(3):
        records = [record for record in train if record.camid == camid]
        assert statistics.counts[f"c{camid + 1}"] == len(records)
        np.testing.assert_allclose(statistics.means[f"c{camid + 1}"], keras_embeddings(acan, records).mean(0),
                                   atol=1e-5)
    expected_probe = unit(acan.embed(tf.constant(probe_images(HEIGHT, WIDTH), tf.float32), training=False).numpy())
    np.testing.assert_allclose(statistics.probe, expected_probe, atol=1e-5)


def test_an_export_without_its_training_data_has_no_statistics(tmp_path):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, data_root=str(tmp_path / "gone"))
    path = export_run(run_dir, str(tmp_path / "models"), "acan", formats=("onnx",)).path
    assert not os.path.exists(os.path.join(path, STATISTICS_FILE))
    card = json.load(open(os.path.join(path, "model.json")))
    assert card["camera_statistics"] is None and card["model_hash"]


@pytest.mark.parametrize("runtime", ["onnx", "saved_model"])
def test_a_camera_is_added_from_a_folder_of_its_images(exported, export_copy, tmp_path, runtime):
    acan = exported[0]
    paths = write_images(tmp_path / "lobby")
    before = CameraStatistics.load(os.path.join(export_copy, STATISTICS_FILE))
    statistics, path = update_camera(export_copy, "lobby", str(tmp_path / "lobby"), runtime)
    assert path == os.path.join(export_copy, STATISTICS_FILE)
    loaded = CameraStatistics.load(path)
    assert loaded.cameras == ("c1", "c2", "c3", "lobby") and loaded.counts["lobby"] == len(paths)
    assert loaded.model_hash == before.model_hash and "lobby" in loaded.source
    expected = keras_embeddings(acan, [ImageRecord(p, -1, -1) for p in paths], uint8=True).mean(0)
    np.testing.assert_allclose(loaded.means["lobby"], expected, atol=1e-5)
    np.testing.assert_allclose(loaded.means["c2"], before.means["c2"])
    # Again: the camera is replaced, not added twice.
    update_camera(export_copy, "lobby", str(tmp_path / "lobby"), runtime)
    assert CameraStatistics.load(path).cameras == ("c1", "c2", "c3", "lobby")


def test_a_new_statistics_file_gets_the_models_hash_and_probe(exported, tmp_path):
    write_images(tmp_path / "c9")
    target = str(tmp_path / "stats" / "new.json")
    statistics, _ = update_camera(os.path.join(exported[1], "model.onnx"), "c9", str(tmp_path / "c9"),
                                  statistics_path=target)
    shipped = CameraStatistics.load(os.path.join(exported[1], STATISTICS_FILE))
    assert statistics.cameras == ("c9",) and statistics.model_hash == shipped.model_hash
    np.testing.assert_allclose(CameraStatistics.load(target).probe, shipped.probe, atol=1e-4)


def test_statistics_of_another_model_are_refused_and_left_as_they_are(export_copy, other_export, tmp_path):
    write_images(tmp_path / "lobby")
    # Two models differ on the probe images by far more than the kit's tolerance for one model.
    probes = [CameraStatistics.load(os.path.join(folder, STATISTICS_FILE)).probe
              for folder in (export_copy, other_export)]
    assert np.max(np.abs(probes[0] - probes[1])) > 4 * kit_camera_norm.PROBE_TOLERANCE
    foreign = os.path.join(export_copy, STATISTICS_FILE)
    shutil.copy(os.path.join(other_export, STATISTICS_FILE), foreign)
    content = open(foreign, "rb").read()
    mine = json.load(open(os.path.join(export_copy, "model.json")))["model_hash"]
    theirs = json.load(open(os.path.join(other_export, "model.json")))["model_hash"]
    assert mine != theirs
    with pytest.raises(CameraStatisticsError, match=f"model_hash {theirs}.*model_hash {mine}"):
        update_camera(export_copy, "lobby", str(tmp_path / "lobby"))
    assert open(foreign, "rb").read() == content


@pytest.mark.parametrize("old_file", ["model.json", STATISTICS_FILE])
def test_files_of_the_old_naming_are_refused_saying_to_export_again(export_copy, tmp_path, old_file):
    """An export from before model_hash named the model everywhere: its card had a 16-digit `fingerprint` beside a
    `model_hash` of the checkpoint file, its statistics file a `model_fingerprint` (format 1)."""
    write_images(tmp_path / "lobby")
    path = os.path.join(export_copy, old_file)
    document = json.load(open(path))
    old_hash = document.pop("model_hash")
    if old_file == "model.json":
        document.update(fingerprint=old_hash[:16], model_hash="0" * 64)
    else:
        document.update(model_fingerprint=old_hash[:16], format_version=1)
    open(path, "w").write(json.dumps(document))
    content = open(os.path.join(export_copy, STATISTICS_FILE), "rb").read()
    key = "fingerprint" if old_file == "model.json" else "model_fingerprint"
    with pytest.raises(CameraStatisticsError, match=f"{path}: names its model by '{key}'.*export the run again"):
        update_camera(export_copy, "lobby", str(tmp_path / "lobby"))
    assert open(os.path.join(export_copy, STATISTICS_FILE), "rb").read() == content


def test_cli_adds_a_camera_and_reports_bad_input_in_one_line(export_copy, tmp_path):
    write_images(tmp_path / "lobby")
    result = run_cli(f"--model={export_copy}", "--camera=lobby", f"--images={tmp_path / 'lobby'}")
    assert result.returncode == 0, result.stderr
    assert "camera lobby: statistics of 4 images" in result.stdout
    assert f"wrote {os.path.join(export_copy, STATISTICS_FILE)}" in result.stdout
    statistics_file = os.path.join(export_copy, STATISTICS_FILE)
    content = open(statistics_file, "rb").read()

    os.makedirs(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "a.jpg").write_bytes(b"not an image")
    # One bad input through the command (one line, no traceback); the others through the library it calls.
    result = run_cli(f"--model={export_copy}", "--camera=lobby", f"--images={tmp_path / 'empty'}")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("acan_tf.camera_stats: error: ") and "no image files" in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    for camera, images, statistics, message in [
        ("lobby", tmp_path / "missing", None, "no such folder"),
        ("lobby", tmp_path / "broken", None, r"1 image\(s\) cannot be decoded"),
        (" x", tmp_path / "lobby", None, "expected a non-empty printable name"),
        ("lobby", tmp_path / "lobby", os.path.join(export_copy, "model.json"), "expected a camera statistics file"),
    ]:
        with pytest.raises(UserError, match=message):
            update_camera(export_copy, camera, str(images), statistics_path=statistics)
    assert open(statistics_file, "rb").read() == content
    result = run_cli(f"--model={tmp_path}", "--camera=lobby", f"--images={tmp_path / 'lobby'}")
    assert result.returncode == 1 and "no saved_model.pb there for --runtime=saved_model" in result.stderr
