"""Your own cameras (--dataset=cameras): the folder layout, the CSV manifest, scan_cameras and their bad input."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from acan_tf.data.datasets import DatasetError, load_dataset, load_existing_dataset, load_trained_dataset
from acan_tf.data.datasets.cameras import scan_cameras
from acan_tf.data.records import ImageRecord, TrackletRecord, camera_local_labels
from acan_tf.data.summary import summarize
from tests.fixture_trees import write_cameras_tree, write_image, write_market_tree, write_non_images

# Local id "7" exists in two cameras: two different people, who must get two different pids.
TRAIN = {"lobby": {"7": 2, "anna": 1}, "gate-3": {"7": 1}, "Café 2": {"x y": 2}}
EVALUATION = {
    "query": {"lobby": {"p1": 1}},
    "gallery": {"gate-3": {"p1": 1, "p2": 1}, "Café 2": {"p2": 1}},
}


def load_error(root) -> str:
    """The message of the DatasetError that loading `root` raises."""
    with pytest.raises(DatasetError) as info:
        load_dataset("cameras", str(root))
    return str(info.value)


def write_manifest(path: Path, rows) -> Path:
    """A CSV manifest: header, then rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_folder_names_are_the_camera_names_and_local_ids_never_collide_across_cameras(tmp_path):
    write_cameras_tree(tmp_path, {"train": TRAIN, **EVALUATION})
    write_non_images(tmp_path / "train" / "lobby" / "7")
    dataset = load_dataset("cameras", str(tmp_path))
    assert dataset.camera_names == ("Café 2", "gate-3", "lobby")  # sorted; camid = index
    assert dataset.num_cameras == 3 and dataset.has_evaluation and not dataset.is_video
    train = str(tmp_path / "train")
    # pids: the sorted (camera, local id) pairs, so "7" of gate-3 and "7" of lobby are pids 1 and 2.
    assert dataset.train == (
        ImageRecord(f"{train}/Café 2/x y/0.jpg", 0, 0), ImageRecord(f"{train}/Café 2/x y/1.jpg", 0, 0),
        ImageRecord(f"{train}/gate-3/7/0.jpg", 1, 1),
        ImageRecord(f"{train}/lobby/7/0.jpg", 2, 2), ImageRecord(f"{train}/lobby/7/1.jpg", 2, 2),
        ImageRecord(f"{train}/lobby/anna/0.jpg", 3, 2),
    )
    assert camera_local_labels(dataset.train) == [(0, 0), (0, 0), (1, 0), (2, 0), (2, 0), (2, 1)]
    # Query and gallery name global ids: p1 is one person in lobby and gate-3.
    assert [(os.path.relpath(r.path, tmp_path), r.pid, r.camid) for r in dataset.query + dataset.gallery] == [
        ("query/lobby/p1/0.jpg", 0, 2),
        ("gallery/Café 2/p2/0.jpg", 1, 0), ("gallery/gate-3/p1/0.jpg", 0, 1), ("gallery/gate-3/p2/0.jpg", 1, 1),
    ]
    table = summarize(dataset)
    assert "\n  Café 2 |     1 |        2" in table and "camera 1" not in table


def test_without_query_and_gallery_there_is_no_evaluation(tmp_path):
    write_cameras_tree(tmp_path, {"train": TRAIN})
    dataset = load_dataset("cameras", str(tmp_path))
    assert dataset.query == dataset.gallery == () and not dataset.has_evaluation
    assert not dataset.train_ids_cross_camera  # local ids: nothing to measure an association against
    # What export reads (statistics of the training cameras, by folder name), where evaluation refuses.
    assert load_trained_dataset("cameras", str(tmp_path)) == dataset
    assert dataset.camera_keys == dataset.camera_names
    with pytest.raises(DatasetError, match="no query/ and gallery/"):
        load_existing_dataset("cameras", str(tmp_path))


def test_benchmarks_keep_their_numbered_camera_names(tmp_path):
    dataset = load_dataset("market1501", str(write_market_tree(tmp_path)))
    assert dataset.camera_names == tuple(f"camera {n}" for n in range(1, 7))
    assert dataset.camera_keys == ("c1", "c2", "c3", "c4", "c5", "c6")  # Market-1501's own names in file names


def test_tracklet_folders_make_tracklet_records(tmp_path):
    for camera, identity, tracklet, frames in (("a", "1", "t1", 2), ("a", "1", "t2", 1), ("b", "1", "t1", 1)):
        for frame in range(frames):
            write_image(tmp_path / "train" / camera / identity / tracklet / f"{frame:03d}.jpg")
    dataset = load_dataset("cameras", str(tmp_path))
    root = tmp_path / "train"
    assert dataset.is_video and dataset.train == (
        TrackletRecord((f"{root}/a/1/t1/000.jpg", f"{root}/a/1/t1/001.jpg"), 0, 0),
        TrackletRecord((f"{root}/a/1/t2/000.jpg",), 0, 0),
        TrackletRecord((f"{root}/b/1/t1/000.jpg",), 1, 1),
    )


def test_a_manifest_gives_the_same_records_as_the_folders(tmp_path):
    write_cameras_tree(tmp_path, {"train": TRAIN, **EVALUATION})
    rows = [["path", "camera", "local_id", "split", "global_id", "source"]]
    for split in ("train", "query", "gallery"):
        for folder, _, names in sorted(os.walk(tmp_path / split)):
            camera, identity = Path(folder).relative_to(tmp_path / split).parts[-2:] if names else ("", "")
            for name in sorted(names):
                path = os.path.relpath(os.path.join(folder, name), tmp_path)
                local, global_id = (identity, "") if split == "train" else ("", identity)
                rows.append([path, camera, local, "" if split == "train" else split, global_id, "cam.mp4"])
    manifest = write_manifest(tmp_path / "crops.csv", rows)
    assert load_dataset("cameras", str(manifest)) == load_dataset("cameras", str(tmp_path))


def test_scan_cameras_reads_one_splits_folder(tmp_path):
    write_cameras_tree(tmp_path, {"train": TRAIN})
    scan = scan_cameras(str(tmp_path / "train"))
    assert scan.camera_names == ("Café 2", "gate-3", "lobby")
    assert scan.identities == (("Café 2", "x y"), ("gate-3", "7"), ("lobby", "7"), ("lobby", "anna"))
    assert scan.records == load_dataset("cameras", str(tmp_path)).train


@pytest.mark.parametrize(
    "splits, expected",
    [
        ({"train": {"lobby": {"1": 1, "2": 1}}}, "the train split has 1 camera (lobby); camera alignment needs at "
                                                 "least 2"),
        ({"train": TRAIN, "query": EVALUATION["query"]}, "has query/ without gallery/"),
        ({}, "no train/ folder in"),
    ],
)
def test_bad_folder_layouts_are_named(tmp_path, splits, expected):
    tmp_path.mkdir(exist_ok=True)
    write_cameras_tree(tmp_path, splits)
    assert expected in load_error(tmp_path)


def test_an_identity_folder_with_images_and_tracklet_folders_is_refused(tmp_path):
    write_cameras_tree(tmp_path, {"train": TRAIN})
    write_image(tmp_path / "train" / "lobby" / "anna" / "t1" / "0.jpg")
    assert load_error(tmp_path) == (f"{tmp_path}/train/lobby/anna holds both images and tracklet folders; expected "
                                    "one or the other (<identity>/<images> or <identity>/<tracklet>/<frames>)")


@pytest.mark.parametrize(
    "row, expected",
    [
        (["train/lobby/7/9.jpg", "lobby", "7"], "line 3: missing file {root}/train/lobby/7/9.jpg"),
        (["../outside.jpg", "lobby", "7"], "line 3: ../outside.jpg lies outside the manifest's folder {root}"),
        (["/etc/passwd.jpg", "lobby", "7"], "line 3: /etc/passwd.jpg lies outside the manifest's folder"),
        (["train/lobby/7/0.jpg", "lobby"], "line 3: 2 fields, expected 3 (path,camera,local_id)"),
        (["train/lobby/7/0.jpg", "lobby", ""], "line 3: empty local_id"),
    ],
)
def test_bad_manifest_rows_name_the_line(tmp_path, row, expected):
    write_cameras_tree(tmp_path, {"train": TRAIN})
    manifest = write_manifest(tmp_path / "m.csv", [["path", "camera", "local_id"], ["train/gate-3/7/0.jpg",
                                                                                    "gate-3", "7"], row])
    assert load_error(manifest).startswith(f"{manifest}, " + expected.format(root=tmp_path))


def test_a_manifest_train_row_with_a_global_id_is_refused(tmp_path):
    write_cameras_tree(tmp_path, {"train": TRAIN})
    manifest = write_manifest(tmp_path / "m.csv", [["path", "camera", "local_id", "split", "global_id"],
                                                   ["train/gate-3/7/0.jpg", "gate-3", "7", "train", "p1"]])
    assert "line 2: a train row with a global_id" in load_error(manifest)
