"""Tests of one evaluation's metrics from features (with and without re-ranking) and of the analyses written for it."""

import os
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from acan_tf.data.records import ImageRecord
from acan_tf.evaluation.alignment import inter_camera_discrepancy
from acan_tf.evaluation.analysis import camera_names, write_analyses
from acan_tf.evaluation.metrics import evaluate, pairwise_distance
from acan_tf.evaluation.reid import Reranking, evaluate_reid_features
from acan_tf.evaluation.reported import format_metrics
from acan_tf.evaluation.rerank import re_ranking
from acan_tf.run_dir import RunDir

NUM_CAMERAS = 3


def records(tmp_path, name: str, pids, camids) -> list[ImageRecord]:
    """Image records whose files are small PNGs coloured by pid (the ranked list opens them)."""
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    made = []
    for index, (pid, camid) in enumerate(zip(pids, camids)):
        path = folder / f"{index:03d}.png"
        Image.new("RGB", (8, 16), ((pid * 40) % 256, 90, (camid * 80) % 256)).save(path)
        made.append(ImageRecord(str(path), int(pid), int(camid)))
    return made


@pytest.fixture
def split(tmp_path):
    """12 queries and 36 gallery entries of 12 people in 3 cameras, with noisy person-centred features."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((12, 16))
    q_pids, q_camids = np.arange(12), np.arange(12) % NUM_CAMERAS
    g_pids, g_camids = np.repeat(np.arange(12), 3), np.tile(np.arange(NUM_CAMERAS), 12)
    query = records(tmp_path, "query", q_pids, q_camids)
    gallery = records(tmp_path, "gallery", g_pids, g_camids)
    raw_query = (3 * centres[q_pids] + rng.standard_normal((12, 16))).astype(np.float32)
    raw_gallery = (3 * centres[g_pids] + rng.standard_normal((36, 16))).astype(np.float32)
    return query, gallery, raw_query, raw_gallery


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def ids(records_):
    return np.array([r.pid for r in records_]), np.array([r.camid for r in records_])


def test_metrics_from_features_match_direct_computation(split):
    query, gallery, raw_query, raw_gallery = split
    (q_pids, q_camids), (g_pids, g_camids) = ids(query), ids(gallery)
    metrics = evaluate_reid_features(raw_query, raw_gallery, query, gallery, keep_features=True)
    expected = evaluate(pairwise_distance(unit(raw_query), unit(raw_gallery)), q_pids, g_pids, q_camids, g_camids)
    assert metrics["mAP"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert [metrics[f"rank{k}"] for k in (1, 5, 10, 20)] == pytest.approx(expected["cmc"][[0, 4, 9, 19]], abs=1e-9)
    assert metrics["mINP"] == pytest.approx(expected["mINP"], abs=1e-6)
    assert metrics["discrepancy"] == pytest.approx(inter_camera_discrepancy(
        np.concatenate([unit(raw_query), unit(raw_gallery)]), np.concatenate([q_camids, g_camids])), rel=1e-6)
    np.testing.assert_allclose(metrics["query_features"], unit(raw_query), rtol=1e-6)
    np.testing.assert_allclose(metrics["gallery_features"], unit(raw_gallery), rtol=1e-6)
    assert "distances" not in metrics


def test_features_are_kept_only_on_request(split):
    metrics = evaluate_reid_features(*split[2:], *split[:2])
    assert not {"query_features", "gallery_features", "distances"} & set(metrics)


def test_reranked_metrics_are_those_of_the_reranked_distances(split):
    query, gallery, raw_query, raw_gallery = split
    (q_pids, q_camids), (g_pids, g_camids) = ids(query), ids(gallery)
    settings = Reranking(k1=6, k2=3, lambda_value=0.4)
    metrics = evaluate_reid_features(raw_query, raw_gallery, query, gallery, reranking=settings, keep_features=True)
    q, g = unit(raw_query), unit(raw_gallery)
    distances = re_ranking(pairwise_distance(q, g), pairwise_distance(q, q), pairwise_distance(g, g), 6, 3, 0.4)
    np.testing.assert_allclose(metrics["distances"], distances, rtol=1e-5, atol=1e-6)
    assert metrics["mAP"] == pytest.approx(evaluate(distances, q_pids, g_pids, q_camids, g_camids)["mAP"], abs=1e-5)
    plain = evaluate_reid_features(raw_query, raw_gallery, query, gallery)
    assert metrics["discrepancy"] == pytest.approx(plain["discrepancy"])  # re-ranking changes the ranking only


def test_discriminator_confusion_counts_d_predictions_per_true_camera(split):
    query, gallery, raw_query, raw_gallery = split
    # A "D" that always answers camera 2: every row of the confusion puts all mass in column 2.
    always_two = lambda features: np.tile(np.array([[0.0, 0.0, 5.0]], np.float32), (len(features), 1))  # noqa: E731
    metrics = evaluate_reid_features(raw_query, raw_gallery, query, gallery, discriminator=always_two,
                                     camera_classes={0: 0, 1: 1, 2: 2})
    np.testing.assert_array_equal(metrics["camera_confusion"], [[0, 0, 1]] * 3)
    assert metrics["d_test_accuracy"] == pytest.approx(1 / 3)
    assert re.search(r"D camera accuracy on test features +33\.33 %", format_metrics(metrics))


def event_tags(logdir: str) -> set[str]:
    tags = set()
    for name in os.listdir(logdir):
        if name.startswith("events.out.tfevents"):
            for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
                tags.update(value.tag for value in event.summary.value)
    return tags


def test_write_analyses_writes_every_figure_to_disk_and_tensorboard(split, tmp_path):
    query, gallery, raw_query, raw_gallery = split
    evaluation = evaluate_reid_features(raw_query, raw_gallery, query, gallery, keep_features=True)
    evaluation["camera_confusion"] = np.full((NUM_CAMERAS, NUM_CAMERAS), 1 / NUM_CAMERAS)
    history = [{"epoch": 1, "mAP": 0.2, "rank1": 0.3}, {"epoch": 2, "mAP": 0.4, "rank1": 0.5}]
    out = tmp_path / "run"
    written = write_analyses(RunDir(str(out)).plots_dir, RunDir(str(out)).analysis_logdir, evaluation, query, gallery,
                             history, ["cam 0", "cam 1", "cam 2"], step=2)
    names = ["camera_confusion", "tsne", "cmc", "ranked_list", "convergence"]
    assert sorted(written) == sorted(names)
    for name in names:
        assert written[name] == os.path.join(RunDir(str(out)).plots_dir, f"{name}.png")
        with Image.open(written[name]) as image:
            assert image.format == "PNG" and image.width > 200
    logdir = Path(RunDir(str(out)).analysis_logdir)
    assert event_tags(str(logdir)) == {f"analysis/{name}" for name in names}
    rows = (logdir / "metadata.tsv").read_text().splitlines()
    assert rows[0] == "pid\tcamid\tsplit"
    assert rows[1:] == [f"{r.pid}\t{r.camid}\tquery" for r in query] + [f"{r.pid}\t{r.camid}\tgallery" for r in gallery]
    assert (logdir / "projector_config.pbtxt").is_file()


def test_optional_figures_need_their_data(split, tmp_path):
    query, gallery, raw_query, raw_gallery = split
    evaluation = evaluate_reid_features(raw_query, raw_gallery, query, gallery, keep_features=True)
    written = write_analyses(str(tmp_path / "plots"), str(tmp_path / "logs"), evaluation, query, gallery,
                             history=[{"epoch": 1, "mAP": 0.2, "rank1": 0.3}])
    assert sorted(written) == ["cmc", "ranked_list", "tsne"]  # no D confusion, one evaluation is no curve


def test_write_analyses_needs_the_features(split, tmp_path):
    query, gallery, raw_query, raw_gallery = split
    evaluation = evaluate_reid_features(raw_query, raw_gallery, query, gallery)
    with pytest.raises(ValueError, match="keep_features=True"):
        write_analyses(str(tmp_path / "plots"), str(tmp_path / "logs"), evaluation, query, gallery)
    with pytest.raises(ValueError, match="12 query and 36 gallery features for 11 query"):
        write_analyses(str(tmp_path / "plots"), str(tmp_path / "logs"),
                       {**evaluation, "query_features": raw_query, "gallery_features": raw_gallery},
                       query[:11], gallery)
    assert not (tmp_path / "plots").exists()


def test_ds_classes_are_named_by_the_datasets_cameras_in_class_order():
    assert camera_names({2: 0, 0: 1}, ("lobby", "gate 3", "Café")) == ["Café", "lobby"]
    assert camera_names({2: 0, 0: 1}) == ["camera 3", "camera 1"]  # a benchmark's numbered cameras
