"""python -m acan_tf.export: TF Serving layout, both formats checked against Keras, versions never overwritten."""

import json
import os
import stat
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import tensorflow as tf

from acan_tf.deploy import parity
from acan_tf.deploy.exporter import ExportError, check_formats, export_run
from acan_tf.deploy.parity import ParityError
from acan_tf.deploy.versioning import VersionError, existing_versions, resolve_version
from acan_tf.run_dir import RunDirectoryError
from tests.run_fixtures import FINAL_METRICS, HEIGHT, WIDTH, make_run

pytestmark = pytest.mark.slow  # exports in both formats and the export command: the full suite only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "acan_tf.export", *args], cwd=REPO, capture_output=True, text=True)


def reference_embeddings(acan, pixels):
    features = acan.embed(tf.constant(pixels, tf.float32), training=False).numpy().astype(np.float64)
    return features / np.linalg.norm(features, axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    return run_dir, make_run(run_dir)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The CLI's export of the tiny run in both formats: OUT/acan/1."""
    out = str(tmp_path_factory.mktemp("models"))
    result = run_cli(f"--run_dir={trained[0]}", f"--output_dir={out}", "--model_name=acan")
    assert result.returncode == 0, result.stderr
    assert f"exported saved_model, onnx to {os.path.join(out, 'acan', '1')}" in result.stdout
    return out


@pytest.fixture
def inputs():
    rng = np.random.default_rng(7)
    return (rng.integers(0, 256, (5, HEIGHT, WIDTH, 3), dtype=np.uint8),
            rng.integers(0, 256, (2, 4, HEIGHT, WIDTH, 3), dtype=np.uint8))


def test_cli_writes_both_formats_in_tf_serving_layout_with_model_card(exported):
    model_dir = os.path.join(exported, "acan")
    assert os.listdir(model_dir) == ["1"]  # no staging folder left behind
    assert sorted(os.listdir(os.path.join(model_dir, "1"))) == [
        "assets", "fingerprint.pb", "model.json", "model.onnx", "saved_model.pb", "variables"]
    with open(os.path.join(model_dir, "1", "model.json")) as handle:
        card = json.load(handle)
    assert card["input"] == {**card["input"], "dtype": "uint8", "height": HEIGHT, "width": WIDTH,
                             "shape": [None, HEIGHT, WIDTH, 3]}
    assert card["output"]["shape"] == [None, 256] and card["embedding_size"] == 256
    assert card["normalisation"]["style"] == "imagenet" and card["normalisation"]["in_graph"]
    assert (card["backbone"], card["dataset"], card["scheme"], card["adv_weight"]) == ("tiny", "synthetic", "oce", 1.0)
    assert card["metrics"] == FINAL_METRICS
    assert card["formats"]["onnx"]["opset"] == 17
    assert {"tensorflow", "keras", "tf2onnx", "onnxruntime", "onnx", "numpy"} <= set(card["versions"])
    differences = card["parity"]["max_abs_difference"]
    assert set(differences) == {"saved_model", "onnx"}
    assert max(differences["saved_model"].values()) <= 1e-5 and max(differences["onnx"].values()) <= 1e-4


FRESH_PROCESS = """
import sys
import numpy as np
import tensorflow as tf
data = np.load(sys.argv[1])
model = tf.saved_model.load(sys.argv[2])
images = model.signatures["serving_default"](images=tf.constant(data["images"]))["embeddings"].numpy()
tracklets = model.signatures["embed_tracklets"](tracklets=tf.constant(data["tracklets"]))["embeddings"].numpy()
assert not any(name.startswith("acan_tf") for name in sys.modules), "the SavedModel needed acan_tf"
np.savez(sys.argv[3], images=images, tracklets=tracklets)
"""


def test_saved_model_in_fresh_process_without_acan_tf_matches_keras(exported, trained, inputs, tmp_path):
    images, tracklets = inputs
    np.savez(tmp_path / "inputs.npz", images=images, tracklets=tracklets)
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(tmp_path / "inputs.npz"), os.path.join(exported, "acan", "1"),
         str(tmp_path / "outputs.npz")], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    outputs = np.load(tmp_path / "outputs.npz")
    acan = trained[1]  # the model as trained, before checkpointing: the whole chain is checked
    np.testing.assert_allclose(outputs["images"], reference_embeddings(acan, images), rtol=0, atol=1e-5)
    np.testing.assert_allclose(outputs["tracklets"], reference_embeddings(acan, tracklets), rtol=0, atol=1e-5)
    assert outputs["images"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(outputs["images"], axis=1), 1.0, atol=1e-6)


def test_saved_model_cli_lists_both_signatures(exported):
    result = subprocess.run([SAVED_MODEL_CLI, "show", "--all", "--dir", os.path.join(exported, "acan", "1")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for signature, name, shape in (("serving_default", "images", f"(-1, {HEIGHT}, {WIDTH}, 3)"),
                                   ("embed_tracklets", "tracklets", f"(-1, -1, {HEIGHT}, {WIDTH}, 3)")):
        section = result.stdout.split(f"signature_def['{signature}']:")[1].split("Method name is")[0]
        assert f"inputs['{name}'] tensor_info:\n        dtype: DT_UINT8\n        shape: {shape}" in section
        assert "outputs['embeddings'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 256)" in section


def test_onnx_model_takes_uint8_images_and_matches_tensorflow(exported, trained, inputs):
    session = onnxruntime.InferenceSession(os.path.join(exported, "acan", "1", "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    (images_input,) = session.get_inputs()
    assert ((images_input.name, images_input.type, images_input.shape)
            == ("images", "tensor(uint8)", ["batch", HEIGHT, WIDTH, 3]))
    assert [output.name for output in session.get_outputs()] == ["embeddings", "features"]
    embeddings, features = session.run(None, {"images": inputs[0]})
    acan = trained[1]
    np.testing.assert_allclose(embeddings, reference_embeddings(acan, inputs[0]), rtol=0, atol=1e-4)
    np.testing.assert_allclose(features, acan.embed(tf.constant(inputs[0], tf.float32)).numpy(), rtol=1e-4, atol=1e-4)


def test_default_version_is_one_more_than_highest_and_existing_versions_are_refused(trained, tmp_path):
    out = str(tmp_path / "models")
    os.makedirs(os.path.join(out, "acan", "0007"))  # TF Serving reads 0007 as version 7
    first = export_run(trained[0], out, "acan", formats=["saved_model"])
    assert (first.version, first.path) == (8, os.path.join(out, "acan", "8"))
    # Readable like any folder the user makes (a TF Serving running as another user must read it).
    assert stat.S_IMODE(os.stat(first.path).st_mode) == stat.S_IMODE(os.stat(os.path.join(out, "acan", "0007")).st_mode)
    with open(os.path.join(first.path, "model.json"), "rb") as handle:
        card = handle.read()
    for version, folder in ((8, "8"), (7, "0007")):
        with pytest.raises(VersionError, match=f"acan/{folder} already exists: exported models are never overwritten"):
            export_run(trained[0], out, "acan", version=version, formats=["saved_model"])
    with open(os.path.join(first.path, "model.json"), "rb") as handle:
        assert handle.read() == card
    assert sorted(os.listdir(os.path.join(out, "acan"))) == ["0007", "8"]


def test_cli_refuses_to_overwrite_with_a_clear_error(exported, trained):
    result = run_cli(f"--run_dir={trained[0]}", f"--output_dir={exported}", "--model_name=acan", "--version=1")
    assert result.returncode != 0
    assert f"acan_tf.export: error: {os.path.join(exported, 'acan', '1')} already exists" in result.stderr
    assert os.listdir(os.path.join(exported, "acan")) == ["1"]


def perturbed(run_onnx):
    def run(path, images):
        return {name: value + 1e-3 for name, value in run_onnx(path, images).items()}
    return run


def test_failed_parity_check_leaves_nothing_behind(trained, exported, tmp_path, monkeypatch):
    monkeypatch.setattr(parity, "run_onnx", perturbed(parity.run_onnx))
    with pytest.raises(ParityError, match=r"the onnx export differs from the Keras model by more than 0.0001 "
                                          r"\(images: 0.001, tracklets: [0-9.e-]+\); nothing was exported"):
        export_run(trained[0], str(tmp_path / "models"), "acan")
    assert os.listdir(tmp_path) == []  # not even the folders the export created
    with pytest.raises(ParityError):
        export_run(trained[0], exported, "acan")
    assert os.listdir(os.path.join(exported, "acan")) == ["1"]


def test_versions_are_integer_folder_names(tmp_path):
    for name in ("3", "0010", ".staging-11-x", "latest", "\u0663"):  # the last: an Arabic-Indic digit 3
        os.makedirs(tmp_path / name)
    assert existing_versions(str(tmp_path)) == {3: "3", 10: "0010"}
    assert resolve_version(str(tmp_path), None) == 11
    assert resolve_version(str(tmp_path / "new"), None) == 1
    with pytest.raises(VersionError, match="--version=0: expected a positive integer"):
        resolve_version(str(tmp_path), 0)


def test_bad_options_are_named(trained, tmp_path):
    with pytest.raises(ExportError,
                       match="--formats=saved_model,pb: expected one or more of saved_model, onnx, onnx_int8"):
        check_formats(["saved_model", "pb"])
    assert check_formats(["onnx", "saved_model"]) == ("saved_model", "onnx")
    with pytest.raises(VersionError, match=r"--model_name='../acan': expected a plain folder name"):
        export_run(trained[0], str(tmp_path), "../acan")
    with pytest.raises(RunDirectoryError, match="config.json not found"):
        export_run(str(tmp_path / "missing"), str(tmp_path), "acan")


def test_a_run_trained_in_bfloat16_exports_in_float32(tmp_path, inputs):
    # ONNX Runtime's CPU kernels have no bfloat16 Sub: exporting the bfloat16 graph failed to load at the parity check.
    run_dir = str(tmp_path / "run")
    trained_bf16 = make_run(run_dir, mixed_precision="bfloat16")
    assert trained_bf16.encoder.compute_dtype == "bfloat16"
    result = export_run(run_dir, str(tmp_path / "models"), "acan")
    card = json.loads(open(os.path.join(result.path, "model.json")).read())
    assert card["parity"]["max_abs_difference"]["onnx"]["images"] <= 1e-4
    session = onnxruntime.InferenceSession(os.path.join(result.path, "model.onnx"), providers=["CPUExecutionProvider"])
    embeddings, _ = session.run(None, {"images": inputs[0]})
    # The float32 export of the same weights: close to the bfloat16 model (8-bit mantissa), not equal.
    np.testing.assert_allclose(embeddings, reference_embeddings(trained_bf16, inputs[0]), atol=0.05)


def test_a_run_with_the_intra_camera_recipe_exports_its_after_bn_neck_embedding(tmp_path, inputs):
    # The BN-neck is the last layer of F, so the export, evaluation and association all use the embedding after it;
    # the per-camera classifier is a training head and stays out of the export.
    run_dir = str(tmp_path / "run")
    trained = make_run(run_dir, bn_neck=True, intra_id_loss="classifier")
    assert trained.encoder.layers[-1].name == "bn_neck"
    result = export_run(run_dir, str(tmp_path / "models"), "acan")
    card = json.loads(open(os.path.join(result.path, "model.json")).read())
    assert card["parity"]["max_abs_difference"]["onnx"]["images"] <= 1e-4
    session = onnxruntime.InferenceSession(os.path.join(result.path, "model.onnx"), providers=["CPUExecutionProvider"])
    embeddings, _ = session.run(None, {"images": inputs[0]})
    np.testing.assert_allclose(embeddings, reference_embeddings(trained, inputs[0]), atol=1e-4)
    neck = trained.encoder.get_layer("bn_neck")
    assert np.any(neck.moving_mean.numpy() != 0.0), "exported with the statistics it trained"
