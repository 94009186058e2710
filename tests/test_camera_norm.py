"""Camera-aware normalisation (acan_tf.evaluation.camera_norm) against a direct NumPy computation."""

import json
import os
import sys

import numpy as np
import pytest

from acan_tf.data.records import ImageRecord
from acan_tf.deploy.camera_stats import probe_images
from acan_tf.evaluation import reported
from acan_tf.evaluation.camera_norm import CameraStatistics, CameraStatisticsError
from acan_tf.evaluation.metrics import evaluate, evaluate_features, pairwise_distance
from acan_tf.evaluation.reid import Reranking, evaluate_reid_features
from acan_tf.evaluation.rerank import re_ranking
from acan_tf.model import identity

KIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export")
sys.path.insert(0, KIT)

import camera_norm as kit_camera_norm  # noqa: E402  (the deployment kit's NumPy-only copy of the normalise step)
import model_card as kit_model_card  # noqa: E402  (the kit's reading of model.json)


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def sample(seed=0, n=30, dim=8):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim)) + 3.0  # far from the origin, as real embeddings are
    cameras = rng.choice(["c1", "c2", "c3"], size=n)
    return features, cameras


def test_statistics_are_the_means_of_the_normalised_features_per_camera():
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras, model_hash="abc")
    assert statistics.cameras == ("c1", "c2", "c3") and statistics.feature_dim == 8
    for name in statistics.cameras:
        np.testing.assert_allclose(statistics.means[name], unit(features[cameras == name]).mean(0), atol=1e-12)
        assert statistics.counts[name] == int(np.sum(cameras == name))
    np.testing.assert_allclose(statistics.global_mean, unit(features).mean(0), atol=1e-12)


def test_apply_subtracts_the_camera_mean_then_l2_normalises():
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras)
    expected = np.stack([unit(f[None])[0] - unit(features[cameras == c]).mean(0) for f, c in zip(features, cameras)])
    result = statistics.apply(features, cameras)
    assert result.dtype == np.float32 and result.shape == features.shape
    np.testing.assert_allclose(result, unit(expected), atol=1e-6)
    # Raw features and their L2-normalised embeddings give the same statistics and the same result.
    np.testing.assert_allclose(statistics.apply(unit(features), cameras), result, atol=1e-6)
    np.testing.assert_allclose(CameraStatistics.from_features(unit(features), cameras).means["c2"],
                               statistics.means["c2"], atol=1e-12)


def test_integer_camera_keys_are_kept_as_strings():
    features, cameras = sample()
    numbers = np.array([int(c[1:]) for c in cameras])
    statistics = CameraStatistics.from_features(features, numbers)
    assert statistics.cameras == ("1", "2", "3")
    np.testing.assert_allclose(statistics.apply(features, numbers),
                               CameraStatistics.from_features(features, cameras).apply(features, cameras), atol=1e-7)


def test_an_unknown_camera_falls_back_to_the_global_mean_and_is_said_once():
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features[cameras != "c3"], cameras[cameras != "c3"])
    said = []
    result = statistics.apply(features, cameras, warn=said.append)
    assert len(said) == 1 and "c3" in said[0] and "global mean" in said[0] and "c1, c2" in said[0]
    new = cameras == "c3"
    np.testing.assert_allclose(result[new], unit(unit(features[new]) - unit(features[cameras != "c3"]).mean(0)),
                               atol=1e-6)
    assert statistics.unknown(cameras) == ["c3"]
    said.clear()
    statistics.apply(features[~new], cameras[~new], warn=said.append)
    assert said == []


def test_centring_removes_a_camera_offset_that_ruins_matching():
    # Two cameras see the same 20 identities; each camera adds its own large offset to every feature.
    rng = np.random.default_rng(1)
    identities = rng.normal(size=(20, 16))
    query = identities + 10.0 * rng.normal(size=16) + 0.3 * rng.normal(size=(20, 16))
    gallery = identities + 10.0 * rng.normal(size=16) + 0.3 * rng.normal(size=(20, 16))
    pids, q_cams, g_cams = np.arange(20), np.zeros(20, int), np.ones(20, int)
    raw = evaluate_features(unit(query), unit(gallery), pids, pids, q_cams, g_cams)["mAP"]
    statistics = CameraStatistics.from_features(np.concatenate([query, gallery]), np.concatenate([q_cams, g_cams]))
    centred = evaluate_features(statistics.apply(query, q_cams), statistics.apply(gallery, g_cams),
                                pids, pids, q_cams, g_cams)["mAP"]
    assert centred > 0.95 and raw < 0.5


def test_json_round_trip(tmp_path):
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras, model_hash="f00d", source="test images")
    path = str(tmp_path / "camera_stats.json")
    statistics.save(path)
    loaded = CameraStatistics.load(path)
    assert loaded.model_hash == "f00d" and loaded.source == "test images" and loaded.cameras == statistics.cameras
    np.testing.assert_allclose(loaded.apply(features, cameras), statistics.apply(features, cameras), atol=1e-7)
    document = json.load(open(path))
    assert document["feature_dim"] == 8 and document["cameras"]["c1"]["count"] == statistics.counts["c1"]
    np.testing.assert_allclose(document["global"]["mean"], statistics.global_mean)


def test_with_camera_adds_or_replaces_one_camera():
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras, model_hash="f")
    new = np.random.default_rng(5).normal(size=(4, 8))
    updated = statistics.with_camera("lobby", new)
    assert updated.cameras == ("c1", "c2", "c3", "lobby") and updated.counts["lobby"] == 4
    assert updated.model_hash == "f"
    np.testing.assert_allclose(updated.means["lobby"], unit(new).mean(0))
    replaced = updated.with_camera("c1", new)
    np.testing.assert_allclose(replaced.means["c1"], unit(new).mean(0))
    np.testing.assert_allclose(replaced.means["c2"], statistics.means["c2"])
    with pytest.raises(CameraStatisticsError, match="3-dimensional, the statistics 8-dimensional"):
        statistics.with_camera("lobby", new[:, :3])


def test_statistics_of_another_model_are_refused_naming_both_hashes():
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras, model_hash="aaaa")
    statistics.check_model("aaaa", "stats.json")
    with pytest.raises(CameraStatisticsError, match="stats.json: .*model_hash aaaa.*model_hash bbbb"):
        statistics.check_model("bbbb", "stats.json")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON file"),
    ('{"kind": "other"}', "expected a camera statistics file"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 9, "cameras": {}}', "format_version 9"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {"c1": {"mean": [1, 2]}}}',
     "KeyError"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {}}', "at least one camera"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {"c1": {"count": 2, "mean": [1, 2]}, '
     '"c2": {"count": 2, "mean": [1]}}}', "one mean vector"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "feature_dim": 3, '
     '"cameras": {"c1": {"count": 2, "mean": [1, 2]}}}', "feature_dim 3 but means of 2"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {"c1": {"count": 2, "mean": [1, NaN]}}}',
     "non-finite"),
])
def test_a_malformed_file_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "camera_stats.json"
    path.write_text(content)
    with pytest.raises(CameraStatisticsError, match=message) as error:
        CameraStatistics.load(str(path))
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_missing_file_and_mismatched_features_are_errors(tmp_path):
    with pytest.raises(CameraStatisticsError, match="no such camera statistics file"):
        CameraStatistics.load(str(tmp_path / "missing.json"))
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras)
    with pytest.raises(CameraStatisticsError, match="8-dimensional embeddings cannot normalise features"):
        statistics.apply(features[:, :4], cameras)
    with pytest.raises(CameraStatisticsError, match="expected features"):
        CameraStatistics.from_features(features, cameras[:3])


def camera_offset_split(seed=2, identities=12, dim=16):
    """Query in camera 0, gallery in camera 1, of the same identities; each camera adds its own large offset."""
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(identities, dim))
    query = people + 6.0 * rng.normal(size=dim) + 0.4 * rng.normal(size=(identities, dim))
    gallery = people + 6.0 * rng.normal(size=dim) + 0.4 * rng.normal(size=(identities, dim))
    records = [[ImageRecord(f"{side}{i}.jpg", i, camid) for i in range(identities)] for side, camid in (("q", 0),
                                                                                                         ("g", 1))]
    return query, gallery, records[0], records[1]


def test_evaluation_reports_camera_normalised_metrics_beside_the_raw_ones():
    query, gallery, q_records, g_records = camera_offset_split()
    metrics = evaluate_reid_features(query, gallery, q_records, g_records, camera_normalization=True)
    plain = evaluate_reid_features(query, gallery, q_records, g_records)
    assert not any(key.endswith(reported.CAMERA_NORMALISED_SUFFIX) for key in plain)
    for key in ("mAP", "rank1", "mINP", "discrepancy"):
        assert metrics[key] == plain[key]
    # Directly: each camera's mean of its L2-normalised features subtracted, then L2-normalised, then ranked.
    q_centred, g_centred = unit(unit(query) - unit(query).mean(0)), unit(unit(gallery) - unit(gallery).mean(0))
    pids, q_cams, g_cams = np.arange(len(query)), np.zeros(len(query), int), np.ones(len(query), int)
    expected = evaluate_features(q_centred, g_centred, pids, pids, q_cams, g_cams)
    assert metrics["mAP_camnorm"] == pytest.approx(expected["mAP"], abs=1e-6)
    assert metrics["rank1_camnorm"] == pytest.approx(expected["cmc"][0], abs=1e-6)
    assert metrics["mINP_camnorm"] == pytest.approx(expected["mINP"], abs=1e-6)
    assert metrics["mAP_camnorm"] > metrics["mAP"] + 0.2
    keys = {metric.key for metric in reported.METRICS if metric.section == reported.CAMERA_NORMALISED}
    assert keys == {f"{key}_camnorm" for key in ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")}
    assert keys <= set(reported.scalars(metrics))


def test_camera_normalised_tables_state_where_the_statistics_come_from():
    query, gallery, q_records, g_records = camera_offset_split()
    metrics = evaluate_reid_features(query, gallery, q_records, g_records, camera_normalization=True)
    table = reported.format_metrics(metrics)
    assert "unlabelled per-camera statistics of the test images" in table
    assert f"{100 * metrics['mAP_camnorm']:6.2f} %" in table.split(reported.CAMERA_NORMALISED)[1]
    note = reported.camera_normalization_note()
    assert "unlabelled per-camera statistics of the test images" in note["statistics"]
    assert note["metrics"][0] == "mAP_camnorm"


def test_camera_normalisation_is_applied_before_re_ranking():
    query, gallery, q_records, g_records = camera_offset_split()
    settings = Reranking(k1=4, k2=2)
    metrics = evaluate_reid_features(query, gallery, q_records, g_records, reranking=settings,
                                     camera_normalization=True)
    q_centred, g_centred = unit(unit(query) - unit(query).mean(0)), unit(unit(gallery) - unit(gallery).mean(0))
    pids, q_cams, g_cams = np.arange(len(query)), np.zeros(len(query), int), np.ones(len(query), int)
    distances = re_ranking(pairwise_distance(q_centred, g_centred), pairwise_distance(q_centred, q_centred),
                           pairwise_distance(g_centred, g_centred), 4, 2, settings.lambda_value)
    assert metrics["mAP_camnorm"] == pytest.approx(evaluate(distances, pids, pids, q_cams, g_cams)["mAP"], abs=1e-6)


def test_the_kit_reads_the_file_and_normalises_as_the_library_does(tmp_path):
    features, cameras = sample()
    statistics = CameraStatistics.from_features(features, cameras, model_hash="f", probe=np.ones((2, 8)) / 8 ** 0.5)
    path = str(tmp_path / "camera_stats.json")
    statistics.save(path)
    said = []
    kit = kit_camera_norm.CameraNormalizer(path, warn=said.append)
    assert kit.model_hash == "f" and sorted(kit.means) == ["c1", "c2", "c3"]
    for camera in ("c1", "c2", "c3", "new", "new"):
        np.testing.assert_allclose(kit.normalize(features[:5], camera), statistics.apply(features[:5], [camera] * 5),
                                   atol=1e-6)
    assert len(said) == 1 and "no statistics for camera new" in said[0]  # said once per camera
    with pytest.raises(ValueError, match="statistics of 8-dimensional embeddings, the model's are 3-dimensional"):
        kit.normalize(features[:, :3], "c1")


def test_the_kit_and_the_library_make_the_same_probe_images():
    np.testing.assert_array_equal(kit_camera_norm.probe_images(32, 16, 2), probe_images(32, 16))
    images = probe_images(32, 16, 3)
    assert images.dtype == np.uint8 and images.shape == (3, 32, 16, 3) and len(np.unique(images)) > 200


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON file"),
    ('{"kind": "other"}', "expected a camera statistics file"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 3}', "format_version 3"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {"c1": {"mean": [1]}}}', "KeyError"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {"c1": {"mean": [1, 2]}}, '
     '"global": {"mean": [1]}}', "vectors of one length"),
    ('{"kind": "acan_tf.camera_statistics", "format_version": 2, "cameras": {"c1": {"mean": [1, NaN]}}, '
     '"global": {"mean": [1, 2]}}', "non-finite"),
])
def test_the_kit_refuses_a_malformed_file_in_one_line(tmp_path, content, message):
    path = tmp_path / "camera_stats.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        kit_camera_norm.CameraNormalizer(str(path))
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_statistics_file_of_the_old_naming_is_refused_by_library_and_kit_saying_to_export_again(tmp_path):
    """Files written before model_hash named the model everywhere (format 1, `model_fingerprint`): one clear line."""
    features, cameras = sample()
    document = CameraStatistics.from_features(features, cameras, model_hash="f").to_json()
    assert document["model_hash"] == "f" and document["format_version"] == 2
    del document["model_hash"]
    document.update(model_fingerprint="0123456789abcdef", format_version=1)
    path = tmp_path / "camera_stats.json"
    path.write_text(json.dumps(document))
    message = f"{path}: names its model by 'model_fingerprint'.*export the run again"
    with pytest.raises(CameraStatisticsError, match=message):
        CameraStatistics.load(str(path))
    with pytest.raises(ValueError, match=message):
        kit_camera_norm.CameraNormalizer(str(path))


def test_the_kit_and_the_library_name_the_model_alike():
    card = {"model_hash": "ab" * 32}
    assert kit_model_card.MODEL_HASH == identity.MODEL_HASH and kit_model_card.LEGACY_KEYS == identity.LEGACY_KEYS
    assert kit_model_card.model_hash(card, "m.json") == identity.read_model_hash(card, "m.json") == "ab" * 32
    assert kit_model_card.model_hash({}, "m.json") is identity.read_model_hash({}, "m.json") is None
    old = {"fingerprint": "0123456789abcdef", "model_hash": "cd" * 32}  # an export of before: two different hashes
    with pytest.raises(ValueError, match="m.json: names its model by 'fingerprint'.*export the run again"):
        kit_model_card.model_hash(old, "m.json")
    with pytest.raises(identity.ModelIdentityError, match="m.json: names its model by 'fingerprint'"):
        identity.read_model_hash(old, "m.json")
    with pytest.raises(identity.ModelIdentityError, match="m.json: model_hash must be a hex string"):
        identity.read_model_hash({"model_hash": 5}, "m.json")
