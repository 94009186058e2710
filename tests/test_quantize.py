"""The int8 ONNX export: static quantization calibrated on training images, judged by test mAP, refused beyond
tolerance."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime
import pytest

from acan_tf.data import load_dataset
from acan_tf.data.pipeline import inference_dataset
from acan_tf.deploy import quantize
from acan_tf.deploy.exporter import ExportError, check_formats, export_run
from acan_tf.deploy.parity import ParityError
from acan_tf.evaluation.runner import evaluate_run
from tests.run_fixtures import HEIGHT, WIDTH, make_run
from tests.tiny_runs import make_tree

pytestmark = pytest.mark.slow  # int8 exports calibrated and evaluated: the full suite only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CALIBRATION = 16


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run whose config names a real (tiny synthetic) dataset, and that dataset."""
    root = make_tree(str(tmp_path_factory.mktemp("data") / "synthetic"))
    run_dir = str(tmp_path_factory.mktemp("run"))
    # Seeded: with unseeded initial weights the int8 model's mAP drop on this tiny test split varied from run to run
    # (-0.6 to -4.3 points; seed 3 also fails), so the test passed or failed by chance.
    keras.utils.set_random_seed(0)
    make_run(run_dir, data_root=root)
    return run_dir, load_dataset("synthetic", root)


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The CLI's onnx + onnx_int8 export of the tiny run: (OUT/acan/1, its stdout)."""
    out = str(tmp_path_factory.mktemp("models"))
    result = subprocess.run([sys.executable, "-m", "acan_tf.export", f"--run_dir={trained[0]}", f"--output_dir={out}",
                             "--model_name=acan", "--formats=onnx,onnx_int8",
                             f"--int8_calibration_images={CALIBRATION}"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return os.path.join(out, "acan", "1"), result.stdout


def session_features(path, records):
    """F(x) of image records by an ONNX model, decoded as evaluation decodes them and rounded to uint8."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    batches = inference_dataset(records, HEIGHT, WIDTH, 64)
    pixels = np.concatenate([np.clip(np.rint(batch.numpy()), 0, 255).astype(np.uint8) for batch in batches])
    return session.run(["features"], {"images": pixels})[0]


def direct_rank1(query_features, gallery_features, query, gallery):
    """Rank-1 by brute force: the nearest gallery image, other cameras of the same person only (Market-1501 rule)."""
    unit = lambda f: f / np.linalg.norm(f, axis=1, keepdims=True)  # noqa: E731
    distances = np.linalg.norm(unit(query_features)[:, None] - unit(gallery_features)[None], axis=2)
    hits = []
    for row, q in zip(distances, query):
        kept = [i for i, g in enumerate(gallery) if not (g.pid == q.pid and g.camid == q.camid)]
        if any(gallery[i].pid == q.pid for i in kept):
            hits.append(gallery[kept[int(np.argmin(row[kept]))]].pid == q.pid)
    return float(np.mean(hits))


def test_int8_export_writes_the_model_and_a_card_with_the_test_map_change(exported, trained):
    path, stdout = exported
    assert sorted(os.listdir(path)) == ["camera_stats.json", "model.json", "model.onnx", "model_int8.onnx"]
    card = json.load(open(os.path.join(path, "model.json")))
    assert card["formats"]["onnx_int8"]["path"] == "model_int8.onnx"
    quantization = card["formats"]["onnx_int8"]["quantization"]
    assert ((quantization["method"], quantization["format"], quantization["calibration"]["images"])
            == ("static", "QDQ", CALIBRATION))
    int8 = card["parity"]["onnx_int8"]
    # The Keras figures are those of acan_tf.evaluate on the same checkpoint and test split.
    evaluation = evaluate_run(trained[0])["metrics"]
    assert int8["keras"] == {"mAP": pytest.approx(evaluation["mAP"], abs=1e-9),
                             "rank1": pytest.approx(evaluation["rank1"], abs=1e-9)}
    data = trained[1]
    features = [session_features(os.path.join(path, "model_int8.onnx"), records)
                for records in (data.query, data.gallery)]
    assert int8["onnx_int8"]["rank1"] == pytest.approx(direct_rank1(*features, data.query, data.gallery), abs=1e-9)
    assert int8["change"]["mAP"] == pytest.approx(int8["onnx_int8"]["mAP"] - int8["keras"]["mAP"], abs=1e-12)
    assert int8["map_tolerance"] == 0.01 and int8["test_split"]["num_query"] == len(data.query)
    assert 0 < max(int8["max_abs_difference"].values()) < 0.5  # quantized: close to Keras, not equal
    assert (f"onnx_int8 (static): test mAP {100 * int8['keras']['mAP']:.2f} % -> "
            f"{100 * int8['onnx_int8']['mAP']:.2f} % ({100 * int8['change']['mAP']:+.2f} points)") in stdout


def test_int8_model_holds_quantized_convolutions_with_per_channel_weights(exported):
    model = onnx.load(os.path.join(exported[0], "model_int8.onnx"))
    initialisers = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    producers = {output: node for node in model.graph.node for output in node.output}
    weight_dequantizers = [producers[conv.input[1]] for conv in convs]
    assert convs and all(node.op_type == "DequantizeLinear" for node in weight_dequantizers)
    for node in weight_dequantizers:
        weights, scales = initialisers[node.input[0]], initialisers[node.input[1]]
        assert weights.dtype == np.int8 and scales.shape == (weights.shape[0],)  # one scale per output channel


def edge_embedding(model, image):
    """The embedding the edge runner prints for one image."""
    result = subprocess.run([sys.executable, os.path.join(REPO, "export", "onnx_infer.py"), "--model", model, image],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return np.array(json.loads(result.stdout)["embedding"])


def test_edge_runner_runs_the_int8_model(exported, trained):
    image = trained[1].query[0].path
    int8 = edge_embedding(os.path.join(exported[0], "model_int8.onnx"), image)
    fp32 = edge_embedding(exported[0], image)
    assert int8.shape == fp32.shape == (256,) and np.linalg.norm(int8) == pytest.approx(1, abs=1e-5)
    assert not np.array_equal(int8, fp32) and np.dot(int8, fp32) > 0.9  # quantized, pointing where the float one does


def test_map_drop_beyond_tolerance_refuses_and_leaves_nothing(trained, tmp_path):
    with pytest.raises(ParityError, match=r"the onnx_int8 export loses -?[0-9.]+ mAP points on the test split "
                                          r".*more than --int8_map_tolerance=-1 allows; nothing was exported"):
        export_run(trained[0], str(tmp_path / "models"), "acan", formats=["onnx", "onnx_int8"],
                   int8_map_tolerance=-1, int8_calibration_images=CALIBRATION)
    assert os.listdir(tmp_path) == []


def test_calibration_images_are_a_seeded_draw_of_training_frames(trained):
    train = trained[1].train
    first = quantize.calibration_images(train, HEIGHT, WIDTH, 5)
    assert first.dtype == np.uint8 and first.shape == (5, HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(first, quantize.calibration_images(train, HEIGHT, WIDTH, 5))
    assert not np.array_equal(first, quantize.calibration_images(train, HEIGHT, WIDTH, 5, seed=1))
    everything = quantize.calibration_images(train, HEIGHT, WIDTH, 10 * len(train))
    assert len(everything) == len(train)
    # Every drawn frame is one of the training frames, rounded as the exported model's uint8 input.
    assert all(any(np.array_equal(image, frame) for frame in everything) for image in first)


def test_bad_int8_options_are_named(trained, tmp_path):
    with pytest.raises(ExportError, match="--formats=onnx_int8: onnx_int8 needs onnx too"):
        check_formats(["onnx_int8"])
    with pytest.raises(quantize.QuantizationError, match="--int8_quantization=fp16: expected one of static, dynamic"):
        export_run(trained[0], str(tmp_path), "acan", formats=["onnx", "onnx_int8"], int8_quantization="fp16")
    with pytest.raises(quantize.QuantizationError, match="--int8_calibration_images=0: expected a positive integer"):
        export_run(trained[0], str(tmp_path), "acan", formats=["onnx", "onnx_int8"], int8_calibration_images=0)
    assert os.listdir(tmp_path) == []
