"""Training on tracklets end to end: the [N, T, H, W, 3] batches, frame sampling, and tiny runs on MARS and
DukeMTMC-SI-Tracklet."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from absl import flags

from acan_tf.data import DATASET_NAMES, load_dataset
from acan_tf.data.pipeline import Augmentation, TrainingBatches, decode_image, training_dataset
from acan_tf.data.sampling import training_set
from acan_tf.flags import config_from_flags, define_flags
from acan_tf.training.trainer import run
from tests.fixture_trees import write_duke_si_tree, write_mars_tree

pytestmark = pytest.mark.slow  # tracklet runs through the train command: the full suite only

REPO = Path(__file__).resolve().parents[1]
CAMERAS = (1, 2)
TRAIN_IDS = (1, 2, 3, 4)
TEST_IDS = (7, 8, 9)
# Two tracklets per identity and camera: one shorter than T = 4 (sampled with replacement), one longer.
TRACKLET_LENGTHS = (2, 5)
# The tiny model: a run takes seconds on a CPU; the rest comes from the dataset's flagfile.
TINY = ("--backbone=tiny", "--backbone_weights=none", "--image_height=32", "--image_width=16",
        "--num_identities=2", "--num_instances=2", "--camera_batch_size=4", "--epochs=1", "--cross_camera=none",
        "--steps_per_epoch=2", "--frames_per_tracklet=3", "--eval_every=1", "--noanalyses")


def write_mars(parent: Path) -> Path:
    """MARS with 4 identities in each of 2 cameras; queries in camera 1, their matches in camera 2."""
    train = [(pid, camera, length) for camera in CAMERAS for pid in TRAIN_IDS for length in TRACKLET_LENGTHS]
    test = [(pid, camera, 3) for pid in TEST_IDS for camera in CAMERAS]
    return write_mars_tree(parent, train, test, query_rows=(0, 2, 4))


def write_duke_si(parent: Path) -> Path:
    """DukeMTMC-SI-Tracklet with 4 identities in each of cameras 1 and 3; queries in camera 1, matches in camera 3."""
    folders = iter(range(1, 100))
    train = [(pid, f"{next(folders):04d}", camera, range(1, length + 1))
             for camera in (1, 3) for pid in TRAIN_IDS for length in TRACKLET_LENGTHS]
    query = [(pid, f"C1T{next(folders):04d}", 1, (10, 11)) for pid in TEST_IDS]
    gallery = [(pid, f"C3T{next(folders):04d}", 3, (20, 21, 22)) for pid in TEST_IDS]
    return write_duke_si_tree(parent, {"train": train, "query": query, "gallery": gallery})


def tracklet_batches(root: Path, num_identities: int, num_instances: int, camera_batch_size: int,
                     frames_per_tracklet: int) -> tuple[TrainingBatches, tuple]:
    """The trainer's TrainingBatches over MARS training tracklets, and the records they index."""
    train = training_set(load_dataset("mars", str(root)).train, num_identities)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, num_identities, num_instances,
                              camera_batch_size, frames_per_tracklet, seed=3)
    return batches, train.records


def test_training_batches_are_tracklets_of_t_frames(tmp_path):
    p, k, b, t, h, w = 2, 2, 5, 4, 32, 16
    batches, records = tracklet_batches(write_mars(tmp_path), p, k, b, t)
    no_augmentation = Augmentation(flip=False, pad=0, random_erasing=0.0)
    batch = next(iter(training_dataset(batches, h, w, no_augmentation)))

    per_camera = b // len(CAMERAS)
    assert batch["triplet_images"].shape == (p * k, t, h, w, 3)
    assert batch["camera_images"].shape == (len(CAMERAS) * per_camera, t, h, w, 3)
    items, frames = batches.indices(0)
    triplet_items = items[: p * k]
    np.testing.assert_array_equal(batch["triplet_ids"], batches.local_ids[triplet_items])
    assert len(set(batch["triplet_camids"].numpy())) == 1
    np.testing.assert_array_equal(np.bincount(batch["camera_camids"]), [per_camera] * len(CAMERAS))
    # Item i's T frames are the i-th run of T paths of the step, decoded unchanged without augmentation.
    expected = np.stack([decode_image(path, h, w).numpy() for path in batches.paths[frames]])
    images = np.concatenate([batch["triplet_images"], batch["camera_images"]])
    np.testing.assert_allclose(images, expected.reshape(len(items), t, h, w, 3))


def test_short_tracklets_repeat_frames_long_ones_get_t_distinct_frames_in_order(tmp_path):
    t = 4
    batches, records = tracklet_batches(write_mars(tmp_path), 2, 2, 4, t)
    seen = {"short": 0, "long": 0}
    for step in range(10):
        items, frames = batches.indices(step)
        for item, item_frames in zip(items, frames.reshape(len(items), t)):
            paths = list(records[item].paths)
            positions = [paths.index(path) for path in batches.paths[item_frames]]  # fails if a frame is foreign
            if len(paths) < t:
                assert positions == sorted(positions) and len(set(positions)) < t
                seen["short"] += 1
            else:
                assert positions == sorted(set(positions)) and len(positions) == t
                seen["long"] += 1
    assert seen["short"] > 0 and seen["long"] > 0


def test_mars_association_flagfile_trains_tiny_model_end_to_end_on_tracklets(tmp_path):
    root = write_mars(tmp_path / "data")
    output_dir = tmp_path / "run"
    # The association stage on tracklets: one round before epoch 2, its proxies the means of tracklet features.
    stage = ("--cross_camera=association", "--epochs=2", "--association_first_epoch=2")
    result = subprocess.run(
        [sys.executable, "-m", "acan_tf.train", "--flagfile=configs/mars_association.cfg", f"--data_root={root}", *TINY,
         *stage, f"--output_dir={output_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((output_dir / "report.json").read_text())
    assert len(report["association"]) == 1 and report["association"][0]["num_proxies"] == len(TRAIN_IDS) * len(CAMERAS)
    assert "cross-camera association" in report["stages"] and "pseudo_loss" in report["history"]
    assert report["config"]["dataset"] == "mars" and report["config"]["scheme"] == "oce"
    assert report["config"]["frames_per_tracklet"] == 3 and report["config"]["margin"] == 0.3
    assert json.loads((output_dir / "run.json").read_text())["is_video"] is True
    assert_finished(report, num_train=len(CAMERAS) * len(TRAIN_IDS) * len(TRACKLET_LENGTHS), epochs=2)
    assert "mAP" in result.stdout
    assert "Sharding callback duration" not in result.stderr  # TensorFlow's INFO line at every state save


def test_duke_si_tracklet_flagfile_trains_through_the_same_trainer(tmp_path):
    root = write_duke_si(tmp_path / "data")
    flag_values = flags.FlagValues()
    define_flags({"dataset": DATASET_NAMES}, flag_values)
    flag_values(["train", f"--flagfile={REPO / 'configs' / 'duke_si_tracklet.cfg'}", f"--data_root={root}", *TINY,
                 f"--output_dir={tmp_path / 'run'}"])
    report = run(config_from_flags(flag_values))
    assert report["config"]["dataset"] == "duke_si_tracklet"
    assert report["dataset"]["camera_classes"] == {"0": 0, "2": 1}
    assert_finished(report, num_train=2 * len(TRAIN_IDS) * len(TRACKLET_LENGTHS))


def assert_finished(report: dict, num_train: int, epochs: int = 1) -> None:
    """`epochs` epochs of finite losses and a final evaluation of every query with finite ranking metrics."""
    assert report["dataset"]["num_train"] == num_train
    for name in ("loss", "triplet_loss", "d_loss", "adv_loss"):
        assert len(report["history"][name]) == epochs and all(map(math.isfinite, report["history"][name])), name
    final = report["final"]
    assert final["epoch"] == epochs and final["num_valid_queries"] == len(TEST_IDS)
    for name in ("mAP", "rank1", "mINP", "discrepancy"):
        assert math.isfinite(final[name]), name
    assert 0.0 <= final["mAP"] <= 1.0 and 0.0 <= final["rank1"] <= 1.0
