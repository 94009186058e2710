"""Calibration of the same-person threshold (acan_tf.evaluation.calibration, acan_tf.deploy.calibration) against
direct NumPy pair counts, and the kit's reading of it (export/matching.py's card_threshold)."""

import json
import os
import sys

import numpy as np
import pytest

from acan_tf.deploy import calibration
from acan_tf.deploy.calibration import export_calibration, format_table, uncalibrated
from acan_tf.deploy.calibration_plots import plot_calibration

KIT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "export")
sys.path.insert(0, KIT)

import matching  # noqa: E402


def labelled_items(num_people=30, num_cameras=3, per_camera=2, seed=0, dim=8):
    """Unit embeddings of people seen by every camera: a person's mean plus noise, and a per-camera offset."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(num_people, dim))
    offsets = 0.3 * rng.normal(size=(num_cameras, dim))
    pids = np.repeat(np.arange(num_people), num_cameras * per_camera)
    cameras = np.tile(np.repeat(np.arange(num_cameras), per_camera), num_people)
    values = means[pids] + offsets[cameras] + 0.5 * rng.normal(size=(len(pids), dim))
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32), cameras, pids


def direct_pair_distances(embeddings, cameras, pids):
    """Every unordered cross-camera pair's distance, split by same / different person."""
    i, j = np.triu_indices(len(embeddings), k=1)
    cross = cameras[i] != cameras[j]
    distances = np.linalg.norm(embeddings[i].astype(np.float64) - embeddings[j], axis=1)
    same = pids[i] == pids[j]
    return distances[cross & same], distances[cross & ~same]


def test_pair_histograms_count_every_cross_camera_pair_once(monkeypatch):
    embeddings, cameras, pids = labelled_items()
    monkeypatch.setattr(calibration, "CHUNK_ELEMENTS", 50)  # many row chunks
    positive, negative = calibration.pair_histograms(embeddings, cameras, pids, bins=40)
    same, different = direct_pair_distances(embeddings, cameras, pids)
    np.testing.assert_array_equal(positive, np.histogram(same, bins=40, range=(0, 2))[0])
    np.testing.assert_array_equal(negative, np.histogram(different, bins=40, range=(0, 2))[0])


def test_threshold_keeps_the_counted_false_positive_rate():
    embeddings, cameras, pids = labelled_items()
    result = calibration.calibrate(embeddings, cameras, pids, fpr=0.01)
    same, different = direct_pair_distances(embeddings, cameras, pids)
    threshold = result["threshold"]
    assert result["pairs"] == {"same_person": len(same), "different_person": len(different),
                               "counted": "unordered pairs of items from different cameras"}
    assert result["fpr"] == pytest.approx(np.mean(different < threshold)) and result["fpr"] <= 0.01
    assert result["tpr"] == pytest.approx(np.mean(same < threshold))
    # The largest such threshold: one bin further lets more different-person pairs under it than the rate allows.
    assert np.mean(different < threshold + 2 / calibration.BINS) > 0.01
    assert result["tpr_at_fpr"]["0.01"] == result["tpr"]
    assert result["tpr_at_fpr"]["0.0001"] <= result["tpr_at_fpr"]["0.001"] <= result["tpr_at_fpr"]["0.01"]


def test_link_calibration_is_on_centred_proxies():
    embeddings, cameras, pids = labelled_items()
    result = calibration.calibrate_links(embeddings, cameras, pids, fpr=0.05)
    # 30 people x 3 cameras: 30 x 3 same-person proxy pairs across cameras, 3 x 30 x 29 different-person ones.
    assert result["pairs"]["same_person"] == 90 and result["pairs"]["different_person"] == 3 * 30 * 29
    assert result["similarity_threshold"] == pytest.approx(1 - result["threshold"] ** 2 / 2)
    assert result["centre_per_camera"] is True


def test_nothing_to_calibrate_is_said():
    embeddings, cameras, pids = labelled_items()
    with pytest.raises(calibration.CalibrationError, match="no same-person pairs across cameras"):
        calibration.calibrate(embeddings, cameras, np.arange(len(pids)))  # everyone a different person
    with pytest.raises(calibration.CalibrationError, match=r"--calibration_fpr=0: .* \(0, 1\)"):
        calibration.calibrate(embeddings, cameras, pids, fpr=0)
    with pytest.raises(calibration.CalibrationError, match=r"--threshold=3: .* \[0, 2\]"):
        uncalibrated("no data", 3)


def test_table_and_figure(tmp_path):
    embeddings, cameras, pids = labelled_items()
    document = export_calibration({"onnx": embeddings}, cameras, pids, 1e-3, True, {"split": "test"})
    table = format_table(document["formats"]).splitlines()
    assert table[0].split()[:6] == ["format", "pairs", "of", "same", "person", "different"] and len(table) == 3
    assert table[1].split()[:2] == ["onnx", "items"] and table[2].split()[:2] == ["onnx", "links"]
    path = plot_calibration(document["formats"]["onnx"]["items"], "onnx", str(tmp_path / "calibration.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_kit_reads_the_cards_threshold():
    embeddings, cameras, pids = labelled_items()
    calibrated = {"calibration": export_calibration({"onnx": embeddings}, cameras, pids, 1e-3, True, {})}
    expected = calibrated["calibration"]["formats"]["onnx"]["items"]["threshold"]
    assert matching.card_threshold(calibrated, "onnx", "auto") == expected
    assert matching.card_threshold(calibrated, "onnx", "card") == expected
    assert matching.card_threshold(calibrated, "onnx", "none") is None
    assert matching.card_threshold(calibrated, "onnx", "0.7") == 0.7
    plain = {"calibration": uncalibrated("the run's dataset cannot be read", None)}
    assert matching.card_threshold(plain, "onnx", "auto") is None
    with pytest.raises(ValueError, match="no calibrated threshold for onnx .*dataset cannot be read.*--threshold="):
        matching.card_threshold(plain, "onnx", "card")
    with pytest.raises(ValueError, match=r"--threshold=2.5: .* \[0, 2\]"):
        matching.card_threshold(plain, "onnx", "2.5")
    assert matching.card_threshold({"calibration": uncalibrated("x", 0.9)}, "onnx", "card") == 0.9


def test_matches_beyond_the_threshold_are_no_match():
    gallery = np.eye(3, dtype=np.float32)
    query = np.array([[1, 0, 0], [0, 0, -1]], dtype=np.float32)
    records = matching.match_records(["q0", "q1"], query, ["a", "b", "c"], gallery, top_k=2, threshold=0.5)
    assert records[0] == {"query": "q0", "matches": [{"item": "a", "distance": 0.0}], "threshold": 0.5,
                          "no_match": False}
    assert records[1]["matches"] == [] and records[1]["no_match"] is True


def test_rest_client_reads_the_card_it_is_given(tmp_path):
    import client

    card = tmp_path / "model.json"
    card.write_text(json.dumps({"calibration": uncalibrated("no labelled split", 0.75)}))
    assert matching.card_threshold(client.read_card(str(card)), client.SERVED_FORMAT, "card") == 0.75
    assert client.read_card(None) is None
    card.write_text("{not json")
    with pytest.raises(ValueError, match=f"--model_card={card}: cannot read it as JSON"):
        client.read_card(str(card))


def test_distractors_and_junk_are_left_out_of_benchmarks_only():
    from acan_tf.data.records import ImageRecord, ReIDDataset

    query = (ImageRecord("q.jpg", 0, 0), ImageRecord("r.jpg", 3, 1))
    gallery = (ImageRecord("g.jpg", -1, 0), ImageRecord("h.jpg", 3, 0))
    market = ReIDDataset("market1501", "/m", (), query, gallery, 2)
    assert [r.path for r in calibration.identified_records(market)] == ["r.jpg", "h.jpg"]
    own = ReIDDataset("cameras", "/c", (), query, gallery, 2)
    assert [r.path for r in calibration.identified_records(own)] == ["q.jpg", "r.jpg", "h.jpg"]


def test_figure_histograms_cover_the_distances_that_occur():
    positive, negative = np.zeros(calibration.BINS, dtype=np.int64), np.zeros(calibration.BINS, dtype=np.int64)
    positive[[3, 40]], negative[[10, 249]] = (2, 1), (5, 7)
    histogram = calibration.coarse_histograms(positive, negative, bins=100)
    edges = np.asarray(histogram["edges"])
    assert edges[0] == 0 and edges[-1] >= 250 * 2 / calibration.BINS > edges[-2]  # up to the last occupied bin
    assert sum(histogram["same_person"]) == 3 and sum(histogram["different_person"]) == 12
    values = np.r_[[3.5, 3.5, 40.5], [10.5] * 5, [249.5] * 7] * 2 / calibration.BINS
    direct = np.histogram(values[:3], edges)[0].tolist(), np.histogram(values[3:], edges)[0].tolist()
    assert (histogram["same_person"], histogram["different_person"]) == direct
