"""Linking measured on held-out people (acan_tf.evaluation.linking): its figures against direct counts."""

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from acan_tf.data import load_dataset
from acan_tf.data.records import ImageRecord
from acan_tf.data.validation import carve_validation
from acan_tf.deploy.calibration import calibrate_links, identified_records
from acan_tf.deploy.linker import link
from acan_tf.evaluation import linking
from acan_tf.evaluation.features import extract_features
from acan_tf.evaluation.reid import record_ids
from acan_tf.model.builder import load_run
from acan_tf.training.association import proxy_global_ids
from tests.run_fixtures import HEIGHT, WIDTH, make_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def people_records(seed=0, num_people=12, num_cameras=3, noise=0.6):
    """Image records and features: person p seen by a seeded subset of cameras, two images per camera."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(num_people, 16))
    records, features = [], []
    for person in range(1, num_people + 1):
        cameras = sorted(rng.choice(num_cameras, rng.integers(1, num_cameras + 1), replace=False).tolist())
        for camera, shot in itertools.product(cameras, range(2)):
            records.append(ImageRecord(f"p{person}_c{camera}_{shot}.jpg", person, camera))
            features.append(means[person - 1] + noise * rng.normal(size=16))
    return records, np.array(features, dtype=np.float32)


def direct_quality(pseudo_ids, proxy_cameras, proxy_pids):
    """Pairs and exact recovery counted one proxy pair / one person at a time."""
    count = len(pseudo_ids)
    predicted = correct = true = 0
    for i, j in itertools.combinations(range(count), 2):
        linked = pseudo_ids[i] >= 0 and pseudo_ids[i] == pseudo_ids[j]
        same = proxy_pids[i] == proxy_pids[j] and proxy_cameras[i] != proxy_cameras[j]
        predicted += linked
        correct += linked and same
        true += same
    exact = 0
    for person in np.unique(proxy_pids):
        members = set(np.flatnonzero(proxy_pids == person).tolist())
        group = members if len(members) == 1 and pseudo_ids[min(members)] < 0 else \
            set(np.flatnonzero((pseudo_ids == pseudo_ids[min(members)]) & (pseudo_ids >= 0)).tolist())
        exact += group == members
    return predicted, correct, true, exact / len(np.unique(proxy_pids))


@pytest.mark.parametrize("threshold", [-1.0, 0.0, 0.3])
def test_link_quality_matches_direct_counts(threshold):
    records, features = people_records()
    cameras, local_ids = linking.local_identities(records)
    association = link(features, cameras, local_ids, threshold)
    pids, _ = record_ids(records)
    proxy_pids = proxy_global_ids(association.proxies, cameras, local_ids, pids)
    quality = linking.link_quality(association, proxy_pids, ("a", "b", "c"))
    predicted, correct, true, exact = direct_quality(association.pseudo_ids, association.proxies.cameras, proxy_pids)
    assert (quality["predicted_pairs"], quality["correct_pairs"], quality["true_pairs"]) == (predicted, correct, true)
    assert quality["people_recovered_exactly"] == pytest.approx(exact)
    precision, recall = correct / predicted if predicted else 0.0, correct / true
    assert quality["pair_f1"] == pytest.approx(2 * precision * recall / (precision + recall) if correct else 0.0)
    table = quality["per_camera_pair"]
    assert sum(row["true_pairs"] for row in table) == true
    assert sum(row["predicted_pairs"] for row in table) == predicted
    assert sum(row["correct_pairs"] for row in table) == correct
    assert {tuple(row["cameras"]) for row in table} <= {("a", "b"), ("a", "c"), ("b", "c")}


def test_local_ids_never_carry_the_person_across_cameras():
    records, features = people_records()
    cameras, local_ids = linking.local_identities(records)
    # Renaming a person in one camera changes neither the local ids nor the links (the rule never reads pids).
    renamed = [ImageRecord(r.path, r.pid + 1000 if r.camid == 0 else r.pid, r.camid) for r in records]
    renamed_cameras, renamed_ids = linking.local_identities(renamed)
    links = link(features, cameras, local_ids, 0.0).pseudo_ids
    assert (link(features, renamed_cameras, renamed_ids, 0.0).pseudo_ids == links).all()


@pytest.mark.slow  # a tiny run evaluated by the command in a subprocess
def test_evaluate_link_chooses_the_threshold_on_validation(tmp_path, tiny_tree):
    run = str(tmp_path / "run")
    make_run(run, data_root=tiny_tree)
    output = str(tmp_path / "evaluation.json")
    command = [sys.executable, "-m", "acan_tf.evaluate", f"--run_dir={run}", "--link", f"--output={output}"]
    refused = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 1 and "--link: pass --validation_identities=N" in refused.stderr
    result = subprocess.run([*command, "--validation_identities=4", "--link_fpr=0.05"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "pairwise precision" in result.stdout and "people recovered exactly" in result.stdout
    document = json.load(open(output))["linking"]
    assert json.load(open(os.path.join(run, "report.json")))["linking"] == document
    # The threshold: the validation split's proxies at FPR 0.05, computed here without the command.
    config, acan, _ = load_run(run, "best")
    carved = carve_validation(load_dataset("synthetic", tiny_tree), 4, config.seed)
    validation = identified_records(carved)
    features = extract_features(acan.encoder, validation, HEIGHT, WIDTH, 64)
    pids, cameras = record_ids(validation)
    expected = calibrate_links(features / np.linalg.norm(features, axis=1, keepdims=True), cameras, pids, 0.05)
    assert document["threshold"]["similarity_threshold"] == pytest.approx(expected["similarity_threshold"])
    assert document["threshold"]["held_out_in_training"] is False
    assert 0.0 <= document["pair_f1"] <= 1.0 and document["per_camera_pair"]
