"""python -m acan_tf.evaluate on a training run and on an exported SavedModel: metrics, JSON, analyses, bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.data import DatasetError, load_dataset, load_existing_dataset
from acan_tf.data.pipeline import inference_dataset
from acan_tf.data.records import frame_paths
from acan_tf.deploy.exporter import export_run
from acan_tf.deploy.parity import keras_embeddings
from acan_tf.deploy.saved_model_features import saved_model_features
from acan_tf.evaluation.reid import Reranking
from acan_tf.evaluation.runner import (
    KIND,
    EvaluateError,
    check_output,
    evaluate_run,
    evaluate_saved_model,
    read_model_card,
)
from acan_tf.model.builder import load_run
from acan_tf.training.trainer import run
from tests import tiny_runs
from tests.fixture_trees import write_market_tree, write_mars_tree

pytestmark = pytest.mark.slow  # trained runs, exports and the evaluate command in subprocesses: the full suite only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEIGHT, WIDTH = tiny_runs.TINY["image_height"], tiny_runs.TINY["image_width"]
# The shared tiny run, evaluated after each of its two 2-step epochs (two evaluations in report.json).
TINY = {**tiny_runs.TINY, "steps_per_epoch": 2, "eval_every": 1, "lr_decay_epochs": ()}


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "acan_tf.evaluate", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def trained(tiny_tree, tmp_path_factory):
    """A finished tiny run on the tiny synthetic tree (two evaluations in report.json): (run_dir, report)."""
    run_dir = str(tmp_path_factory.mktemp("run") / "run")
    return run_dir, run(Config(**TINY, data_root=tiny_tree, scheme="oce", output_dir=run_dir))


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The run's last checkpoint exported as a SavedModel: OUT/acan/1."""
    out = str(tmp_path_factory.mktemp("models"))
    return export_run(trained[0], out, "acan", formats=("saved_model",), checkpoint="last").path


def test_run_evaluation_reproduces_the_final_evaluation_of_training(trained):
    run_dir, report = trained
    document = evaluate_run(run_dir, "last", camera_normalization=True)
    metrics, final = document["metrics"], report["final"]
    for key in ("mAP", "rank1", "rank5", "mINP", "discrepancy", "d_test_accuracy", "mAP_camnorm", "rank1_camnorm"):
        assert metrics[key] == pytest.approx(final[key], abs=1e-6), key
    np.testing.assert_allclose(metrics["cmc"], final["cmc"], atol=1e-9)
    np.testing.assert_allclose(metrics["camera_confusion"], final["camera_confusion"], atol=1e-9)
    assert document["kind"] == KIND and document["reranking"] is None
    assert document["camera_normalization"] == report["camera_normalization"]
    assert evaluate_run(run_dir, "last")["camera_normalization"] is None
    assert document["model"] == {"run_dir": os.path.abspath(run_dir), "checkpoint": "last"}
    data = load_dataset("synthetic", report["config"]["data_root"])
    assert ((document["dataset"]["num_query"], document["dataset"]["num_gallery"])
            == (len(data.query), len(data.gallery)))


def test_cli_on_a_run_prints_the_table_and_writes_the_json_and_the_analyses(trained):
    run_dir, _ = trained
    result = run_cli(f"--run_dir={run_dir}", "--checkpoint=last", "--rerank", "--analyses")
    assert result.returncode == 0, result.stderr
    output = os.path.join(run_dir, "evaluation_last_rerank.json")
    assert f"wrote {output}" in result.stdout
    assert "re-ranked (k1=20, k2=6, lambda=0.3)" in result.stdout
    for line in ("mAP", "rank-1", "rank-5", "rank-10", "rank-20", "mINP", "inter-camera discrepancy (Table VII)"):
        assert line in result.stdout
    with open(output) as handle:
        document = json.load(handle)
    assert document["reranking"] == {"k1": 20, "k2": 6, "lambda_value": 0.3}
    # The command computes what the function does, with the same re-ranking.
    expected = evaluate_run(run_dir, "last", reranking=Reranking())["metrics"]
    assert document["metrics"]["mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
    assert f"{100 * expected['mAP']:6.2f} %" in result.stdout
    names = ["camera_confusion", "tsne", "cmc", "ranked_list", "convergence"]  # two evaluations: a convergence curve
    assert sorted(document["analyses"]) == sorted(names)
    for name in names:
        path = os.path.join(run_dir, "plots", f"{name}.png")
        assert document["analyses"][name] == path and os.path.getsize(path) > 1000
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(os.path.join(run_dir, "logs", "analysis")))


def uint8_frames(records, height, width) -> np.ndarray:
    """Every frame of the records, decoded as evaluation decodes them and rounded to uint8."""
    batches = [np.rint(batch.numpy()).astype(np.uint8) for batch in inference_dataset(records, height, width, 64)]
    return np.concatenate(batches)


def test_saved_model_image_features_are_the_keras_embeddings_of_the_same_pixels(trained, exported):
    run_dir, report = trained
    _, acan, _ = load_run(run_dir, "last")
    query = load_dataset("synthetic", report["config"]["data_root"]).query
    features = saved_model_features(tf.saved_model.load(exported), query, HEIGHT, WIDTH, batch_size=5)
    np.testing.assert_allclose(features, keras_embeddings(acan, uint8_frames(query, HEIGHT, WIDTH)), atol=1e-5)


def test_saved_model_tracklet_features_embed_each_tracklet_from_all_its_frames(trained, exported, tmp_path):
    run_dir, _ = trained
    _, acan, _ = load_run(run_dir, "last")
    tracklets = load_dataset("mars", str(write_mars_tree(tmp_path))).gallery
    assert sorted({len(frame_paths(t)) for t in tracklets}) == [1, 2]  # uneven lengths, across batch boundaries
    features = saved_model_features(tf.saved_model.load(exported), tracklets, HEIGHT, WIDTH, batch_size=3)
    frames = uint8_frames(tracklets, HEIGHT, WIDTH)
    starts = np.cumsum([0] + [len(frame_paths(t)) for t in tracklets])
    expected = [keras_embeddings(acan, frames[None, a:b])[0] for a, b in zip(starts[:-1], starts[1:])]
    np.testing.assert_allclose(features, np.stack(expected), atol=1e-5)


def test_cli_on_a_saved_model_takes_dataset_and_root_from_its_training_run(trained, exported):
    result = run_cli(f"--saved_model={exported}")
    assert result.returncode == 0, result.stderr
    output = os.path.join(exported, "evaluation.json")
    with open(output) as handle:
        document = json.load(handle)
    expected = evaluate_saved_model(exported)
    assert document["model"] == {"saved_model": os.path.abspath(exported), "name": "acan", "version": 1}
    assert document["dataset"]["root"] == load_dataset("synthetic", trained[1]["config"]["data_root"]).root
    assert document["metrics"]["mAP"] == pytest.approx(expected["metrics"]["mAP"], abs=1e-9)
    assert "d_test_accuracy" not in document["metrics"]  # an export has no D


def test_cli_camera_normalization_on_a_saved_model_says_whose_statistics_it_used(trained, exported):
    result = run_cli(f"--saved_model={exported}", "--camera_normalization")
    assert result.returncode == 0, result.stderr
    with open(os.path.join(exported, "evaluation_camnorm.json")) as handle:
        document = json.load(handle)
    assert "camera-normalised metrics from unlabelled per-camera statistics of the test images" in result.stdout
    assert "Re-ID, camera-normalised" in result.stdout
    assert "unlabelled per-camera statistics of the test images" in document["camera_normalization"]["statistics"]
    # The export's embeddings are the run's: the same camera-normalised ranking as the run's own evaluation.
    expected = evaluate_run(trained[0], "last", camera_normalization=True)["metrics"]
    for key in ("mAP", "mAP_camnorm", "rank1_camnorm"):
        assert document["metrics"][key] == pytest.approx(expected[key], abs=1e-6), key


def test_tracklet_dataset_through_a_saved_model(exported, tmp_path):
    document = evaluate_saved_model(exported, "mars", str(write_mars_tree(tmp_path)))
    assert document["dataset"]["is_video"] and document["dataset"]["num_query"] == 2
    assert 0.0 <= document["metrics"]["mAP"] <= 1.0


def test_another_dataset_needs_its_root(trained):
    with pytest.raises(EvaluateError, match="--data_root is required with --dataset=market1501: the run .* was "
                                            "trained on synthetic"):
        evaluate_run(trained[0], "last", dataset="market1501")


def test_queries_without_a_cross_camera_match_are_an_error_naming_the_dataset(trained, tmp_path):
    files = {"bounding_box_train": ("0001_c1s1_000001_01.jpg",), "query": ("0002_c1s1_000001_01.jpg",),
             "bounding_box_test": ("0002_c1s1_000002_01.jpg", "0003_c2s1_000001_01.jpg")}
    root = write_market_tree(tmp_path, files)
    with pytest.raises(EvaluateError, match=f"dataset market1501 at {root}: no query has a cross-camera match"):
        evaluate_run(trained[0], "last", dataset="market1501", data_root=str(tmp_path))


def test_a_missing_synthetic_tree_is_not_generated(tmp_path):
    with pytest.raises(DatasetError, match="no synthetic benchmark at .*empty"):
        load_existing_dataset("synthetic", str(tmp_path / "empty"))
    assert not (tmp_path / "empty").exists()


def test_a_folder_without_an_export_is_refused(trained):
    with pytest.raises(EvaluateError, match="no saved_model.pb there"):
        read_model_card(trained[0])


def test_only_an_earlier_evaluation_file_may_be_replaced(tmp_path):
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"kind": KIND}))
    check_output(str(earlier))
    check_output(str(tmp_path / "absent.json"))
    other = tmp_path / "notes.json"
    other.write_text('{"mine": 1}')
    with pytest.raises(EvaluateError, match="--output=.*notes.json exists and is not an evaluation"):
        check_output(str(other))


def test_cli_refuses_to_overwrite_a_foreign_file_before_any_work(trained, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    result = run_cli(f"--run_dir={trained[0]}", f"--output={notes}")
    assert result.returncode != 0
    assert f"acan_tf.evaluate: error: --output={notes} exists and is not an evaluation" in result.stderr
    assert "Traceback" not in result.stderr and notes.read_text() == "keep me"


def test_cli_needs_exactly_one_model():
    result = run_cli("--checkpoint=last")
    assert result.returncode != 0 and "pass exactly one of --run_dir and --saved_model" in result.stderr
