"""Dataset parsers, registry and summary tables, on tiny layout-exact trees written in tmp_path."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import scipy.io

from acan_tf.data import synthetic
from acan_tf.data.datasets import DATASET_NAMES, DatasetError, load_dataset
from acan_tf.data.records import ImageRecord, TrackletRecord
from acan_tf.data.summary import dropped_cameras, identities_per_camera, summarize
from acan_tf.data.synthetic.presets import LOOKS
from tests.fixture_trees import (
    MARKET_TWO_CAMERAS,
    write_duke_si_tree,
    write_duke_tree,
    write_image,
    write_market_tree,
    write_mars_tree,
    write_msmt17_tree,
)


def images(folder, *entries):
    """ImageRecords of (name, pid, camid) entries inside `folder`."""
    return tuple(ImageRecord(os.path.join(folder, name), pid, camid) for name, pid, camid in entries)


def tracklet(folder, names, pid, camid):
    """A TrackletRecord of frame `names` inside `folder`."""
    return TrackletRecord(tuple(os.path.join(folder, name) for name in names), pid, camid)


def load_error(name, root, **options) -> str:
    """The message of the DatasetError that loading raises."""
    with pytest.raises(DatasetError) as info:
        load_dataset(name, str(root), **options)
    return str(info.value)


# ---- exact records per layout -------------------------------------------------------------------


def test_market1501_records_drop_junk_keep_distractors_and_ignore_non_images(tmp_path):
    d = str(write_market_tree(tmp_path))
    dataset = load_dataset("market1501", str(tmp_path))
    assert (dataset.name, dataset.root, dataset.num_cameras, dataset.is_video) == ("market1501", d, 6, False)
    assert dataset.train == images(
        f"{d}/bounding_box_train",
        ("0002_c1s1_000451_03.jpg", 2, 0),
        ("0002_c2s1_000301_01.jpg", 2, 1),
        ("0007_c3s3_000123_02.jpg", 7, 2),
    )
    assert dataset.query == images(f"{d}/query", ("0003_c1s1_001051_00.jpg", 3, 0), ("0003_c6s2_000201_00.jpg", 3, 5))
    assert dataset.gallery == images(
        f"{d}/bounding_box_test",
        ("0000_c5s1_000151_01.jpg", 0, 4),
        ("0003_c1s1_001051_01.jpg", 3, 0),
        ("0003_c4s2_000301_02.jpg", 3, 3),
    )
    assert load_dataset("market1501", d) == dataset  # root may be the dataset folder or its parent


def test_dukemtmcreid_records(tmp_path):
    d = str(write_duke_tree(tmp_path))
    dataset = load_dataset("dukemtmcreid", d)
    assert dataset.num_cameras == 8
    assert dataset.train == images(
        f"{d}/bounding_box_train",
        ("0001_c2_f0046182.jpg", 1, 1),
        ("0001_c8_f0000012.jpg", 1, 7),
        ("0004_c1_f0050000.jpg", 4, 0),
    )
    assert dataset.query == images(f"{d}/query", ("0005_c2_f0046985.jpg", 5, 1))
    assert dataset.gallery == images(
        f"{d}/bounding_box_test", ("0000_c3_f0000100.jpg", 0, 2), ("0005_c7_f0001234.jpg", 5, 6)
    )
    assert load_dataset("dukemtmcreid", str(tmp_path)) == dataset


MSMT17_TRAIN = (
    ("0000/0000_000_01_0303morning_0015_0.jpg", 0, 0),
    ("0000/0000_001_03_0303morning_0030_1.jpg", 0, 2),
    ("0001/0001_000_15_0303noon_0100_0.jpg", 1, 14),
)
MSMT17_VAL = (("0001/0001_001_02_0303noon_0200_0.jpg", 1, 1),)


@pytest.mark.parametrize(
    "version, train_folder, test_folder", [("V1", "train", "test"), ("V2", "mask_train_v2", "mask_test_v2")]
)
def test_msmt17_records_train_on_train_and_val_lists(tmp_path, version, train_folder, test_folder):
    d = str(write_msmt17_tree(tmp_path, version=version))
    dataset = load_dataset("msmt17", str(tmp_path))
    assert (dataset.root, dataset.num_cameras) == (d, 15)
    assert dataset.train == images(f"{d}/{train_folder}", *MSMT17_TRAIN, *MSMT17_VAL)
    assert dataset.query == images(f"{d}/{test_folder}", ("0000/0000_000_05_0303afternoon_0008_0.jpg", 0, 4))
    assert dataset.gallery == images(
        f"{d}/{test_folder}",
        ("0000/0000_001_07_0303afternoon_0099_0.jpg", 0, 6),
        ("0001/0001_000_05_0303noon_0005_1.jpg", 1, 4),
    )
    assert load_dataset("msmt17", d) == dataset


def test_msmt17_can_train_on_list_train_alone(tmp_path):
    d = str(write_msmt17_tree(tmp_path))
    dataset = load_dataset("msmt17", str(tmp_path), use_val_for_training=False)
    assert dataset.train == images(f"{d}/train", *MSMT17_TRAIN)


def test_mars_records_query_rows_gallery_rest_junk_dropped(tmp_path):
    d = str(write_mars_tree(tmp_path))
    dataset = load_dataset("mars", str(tmp_path))
    assert (dataset.root, dataset.num_cameras, dataset.is_video) == (d, 6, True)
    assert dataset.train == (
        tracklet(f"{d}/bbox_train/0001", ["0001C1T0001F001.jpg", "0001C1T0001F002.jpg"], 1, 0),
        tracklet(f"{d}/bbox_train/0001", ["0001C2T0002F001.jpg", "0001C2T0002F002.jpg", "0001C2T0002F003.jpg"], 1, 1),
        tracklet(f"{d}/bbox_train/0002", ["0002C3T0004F001.jpg", "0002C3T0004F002.jpg"], 2, 2),
    )
    assert dataset.query == (
        tracklet(f"{d}/bbox_test/0003", ["0003C1T0001F001.jpg", "0003C1T0001F002.jpg"], 3, 0),
        tracklet(f"{d}/bbox_test/0004", ["0004C6T0005F001.jpg", "0004C6T0005F002.jpg"], 4, 5),
    )
    assert dataset.gallery == (
        tracklet(f"{d}/bbox_test/0000", ["0000C5T0003F001.jpg", "0000C5T0003F002.jpg"], 0, 4),
        tracklet(f"{d}/bbox_test/0003", ["0003C4T0002F001.jpg"], 3, 3),
        tracklet(f"{d}/bbox_test/0004", ["0004C1T0006F001.jpg"], 4, 0),
    )
    assert load_dataset("mars", d) == dataset


def test_mars_folder_may_be_lowercase(tmp_path):
    d = write_mars_tree(tmp_path, folder="mars")
    assert load_dataset("mars", str(tmp_path)).root == str(d)


def test_mars_accepts_matlab_doubles(tmp_path):
    d = write_mars_tree(tmp_path)
    expected = load_dataset("mars", str(d))
    for name, variable in (("tracks_train_info", "track_train_info"), ("query_IDX", "query_IDX")):
        path = d / "info" / f"{name}.mat"
        scipy.io.savemat(path, {variable: scipy.io.loadmat(path)[variable].astype(np.float64)})
    assert load_dataset("mars", str(d)) == expected


def test_duke_si_tracklet_records_frames_in_frame_order(tmp_path):
    d = str(write_duke_si_tree(tmp_path))
    dataset = load_dataset("duke_si_tracklet", str(tmp_path))
    assert (dataset.root, dataset.num_cameras, dataset.is_video) == (d, 8, True)
    assert dataset.train == (
        tracklet(f"{d}/train/0001/0001", ["c6_030823.jpg", "c6_030824.jpg"], 1, 5),
        tracklet(f"{d}/train/0001/0005", ["c2_000098.jpg", "c2_000099.jpg", "c2_000100.jpg"], 1, 1),
        tracklet(f"{d}/train/0009/0002", ["c3_000005.jpg"], 9, 2),
    )
    assert dataset.query == (tracklet(f"{d}/query/0002/C1T0003", ["c1_004125.jpg"], 2, 0),)
    assert dataset.gallery == (
        tracklet(f"{d}/gallery/0002/C5T0007", ["c5_010032.jpg", "c5_010040.jpg"], 2, 4),
        tracklet(f"{d}/gallery/0004/C2T0011", ["c2_000007.jpg"], 4, 1),
    )
    assert load_dataset("duke_si_tracklet", d) == dataset


TINY_SPEC = synthetic.SyntheticSpec(
    num_cameras=3, num_train_ids=2, num_test_ids=2, max_cameras_per_id=3, height=16, width=8, num_distractors=1
)


def test_synthetic_is_generated_then_read_with_the_generators_pids_and_cameras(tmp_path):
    root = tmp_path / "synthetic"
    dataset = load_dataset("synthetic", str(root), spec=TINY_SPEC)
    assert (dataset.root, dataset.num_cameras) == (str(root), 3)
    by_split = {"bounding_box_train": dataset.train, "query": dataset.query, "bounding_box_test": dataset.gallery}
    parsed = {(split, os.path.basename(r.path), r.pid, r.camid) for split, rs in by_split.items() for r in rs}
    planned = {(shot.split_dir, shot.file_name, shot.pid, shot.camid) for shot in synthetic.plan_shots(TINY_SPEC)}
    assert parsed == planned
    assert load_dataset("synthetic", str(root)) == dataset  # an existing tree is read whatever spec made it


def test_synthetic_generates_the_default_spec_with_the_camera_shift_option(tmp_path, monkeypatch):
    requested = []

    def tiny_ensure(root, spec):  # records the spec asked for and writes a tiny tree in its place, for speed
        requested.append(spec)
        return synthetic.generate(root, dataclasses.replace(TINY_SPEC, camera_shift=spec.camera_shift))

    monkeypatch.setattr(synthetic, "ensure", tiny_ensure)
    shifted = load_dataset("synthetic", str(tmp_path / "shifted"), camera_shift=0.25)
    load_dataset("synthetic", str(tmp_path / "default"))
    assert requested == [synthetic.SyntheticSpec(camera_shift=0.25), synthetic.SyntheticSpec()]
    assert shifted.num_cameras == TINY_SPEC.num_cameras
    assert synthetic.read_spec_document(str(tmp_path / "shifted"))["spec"]["camera_shift"] == 0.25


def test_synthetic_reads_an_existing_tree_as_it_was_made_whatever_the_camera_shift(tmp_path):
    root = synthetic.generate(str(tmp_path / "synthetic"), TINY_SPEC)
    assert load_dataset("synthetic", root, camera_shift=0.0) == load_dataset("synthetic", root)
    assert synthetic.read_spec_document(root)["spec"]["camera_shift"] == 1.0


def test_synthetic_generates_the_preset_asked_for_and_refuses_a_tree_of_another(tmp_path, monkeypatch):
    requested = []

    def tiny_ensure(root, spec):  # records the spec asked for and writes a tiny tree of its preset, for speed
        requested.append(spec)
        return synthetic.generate(root, dataclasses.replace(TINY_SPEC, preset=spec.preset))

    monkeypatch.setattr(synthetic, "ensure", tiny_ensure)
    realistic = load_dataset("synthetic", str(tmp_path / "realistic"), preset="realistic", camera_shift=1.0)
    assert requested == [synthetic.preset_spec("realistic")] and realistic.num_cameras == TINY_SPEC.num_cameras
    assert load_dataset("synthetic", str(tmp_path / "realistic"), preset="realistic") == realistic
    assert load_dataset("synthetic", str(tmp_path / "realistic")) == realistic  # read as made
    default = synthetic.generate(str(tmp_path / "default"), TINY_SPEC)
    message = load_error("synthetic", default, preset="realistic")
    assert f"{default} holds the synthetic benchmark of preset 'default', not 'realistic': give each preset its own " \
           "folder (--data_root), e.g. data/synthetic_realistic" in message
    assert "of preset 'realistic', not 'default'" in load_error("synthetic", tmp_path / "realistic", preset="default")
    monkeypatch.setitem(LOOKS, "realistic", dataclasses.replace(LOOKS["realistic"], occlusion=0.5))
    assert "holds the realistic preset drawn with another look" in load_error("synthetic", tmp_path / "realistic",
                                                                             preset="realistic")


def test_synthetic_options_are_checked(tmp_path):
    root = tmp_path / "synthetic"
    assert "synthetic: SyntheticSpec.camera_shift must be in [0, 1], got 1.5" in load_error(
        "synthetic", root, camera_shift=1.5
    )
    assert "synthetic: pass camera_shift (0.5) and preset (None), or spec, not both" in load_error(
        "synthetic", root, camera_shift=0.5, spec=TINY_SPEC
    )
    assert "synthetic: unknown synthetic preset 'sunny'; choose one of default, realistic" in load_error(
        "synthetic", root, preset="sunny"
    )
    assert not root.exists()
    message = load_error("market1501", tmp_path, camera_shift=0.5)
    assert "dataset market1501 takes no option camera_shift; it takes none" in message
    assert "takes no option spec; it takes use_val_for_training" in load_error("msmt17", tmp_path, spec=TINY_SPEC)


def test_synthetic_refuses_a_folder_of_something_else(tmp_path):
    write_market_tree(tmp_path)
    message = load_error("synthetic", tmp_path / "Market-1501-v15.09.15")
    assert "Market-1501-v15.09.15 is not a synthetic benchmark folder" in message
    assert "spec.json" in message


def test_registry_lists_every_dataset_and_rejects_unknown_names(tmp_path):
    assert DATASET_NAMES == ("market1501", "dukemtmcreid", "msmt17", "mars", "duke_si_tracklet", "synthetic",
                             "cameras")
    assert "choose one of market1501, dukemtmcreid, msmt17, mars, duke_si_tracklet, synthetic, cameras" in load_error(
        "market", tmp_path
    )
    assert isinstance(DatasetError("x"), ValueError)


# ---- bad input ----------------------------------------------------------------------------------


def test_missing_dataset_folder_shows_the_expected_layout(tmp_path):
    message = load_error("market1501", tmp_path)
    assert f"{tmp_path}/Market-1501-v15.09.15" in message
    assert "bounding_box_train/" in message and "bounding_box_test/" in message
    assert f"dataset root {tmp_path}/nowhere is not a directory" in load_error("mars", tmp_path / "nowhere")


def test_missing_split_folder_is_named(tmp_path):
    d = write_market_tree(tmp_path)
    shutil.rmtree(d / "query")
    message = load_error("market1501", tmp_path)
    assert f"missing folder {d}/query" in message and "bounding_box_test/" in message


def test_unparseable_image_name_names_file_and_pattern(tmp_path):
    d = write_market_tree(tmp_path)
    write_image(d / "bounding_box_train" / "person7.jpg")
    message = load_error("market1501", d)
    assert f"{d}/bounding_box_train/person7.jpg" in message
    assert "<pid>_c<camera>s<sequence>_<frame>_<box>.jpg" in message


def test_camera_outside_the_dataset_is_named(tmp_path):
    d = write_duke_tree(tmp_path)
    write_image(d / "query" / "0005_c9_f0000001.jpg")
    assert f"{d}/query/0005_c9_f0000001.jpg: camera 9 is not in 1..8" in load_error("dukemtmcreid", d)


def test_split_with_only_junk_is_empty(tmp_path):
    d = write_market_tree(
        tmp_path, files={"bounding_box_train": ("0002_c1s1_000451_03.jpg",), "query": ("-1_c1s1_000001_01.jpg",),
                         "bounding_box_test": ("0002_c2s1_000451_03.jpg",)}
    )
    assert f"the query split ({d}/query) holds no usable images" in load_error("market1501", d)


def test_msmt17_missing_list_is_named(tmp_path):
    d = write_msmt17_tree(tmp_path)
    os.remove(d / "list_val.txt")
    message = load_error("msmt17", d)
    assert f"missing file {d}/list_val.txt" in message and "list_gallery.txt" in message


def test_msmt17_without_image_folders_names_both_versions(tmp_path):
    d = write_msmt17_tree(tmp_path)
    shutil.rmtree(d / "train")
    assert f"missing folder {d}/train (V1) or {d}/mask_train_v2 (V2)" in load_error("msmt17", d)


@pytest.mark.parametrize("line", ["../../etc/passwd 0", "/etc/passwd 0", "0000/../../../x_0_01_a.jpg 0"])
def test_msmt17_list_line_outside_the_dataset(tmp_path, line):
    d = write_msmt17_tree(tmp_path)
    with open(d / "list_train.txt", "a") as handle:
        handle.write(line + "\n")
    message = load_error("msmt17", d)
    assert f"{d}/list_train.txt, line 4: path" in message and "is outside the image folder" in message


@pytest.mark.parametrize(
    "line, expected",
    [
        ("0000/0000_000_01_0303morning_0015_0.jpg", "expected '<pid folder>/<image name> <pid>'"),
        ("0000/0000_000_01_0303morning_0015_0.jpg zero", "expected '<pid folder>/<image name> <pid>'"),
        ("0000/image.jpg 0", "does not match the expected pattern <pid>_<index>_<camera>_<...>.jpg"),
        ("0000/0000_000_16_0303morning_0015_0.jpg 0", "camera 16 is not in 1..15"),
    ],
)
def test_msmt17_malformed_list_line_names_file_and_line(tmp_path, line, expected):
    d = write_msmt17_tree(tmp_path)
    (d / "list_query.txt").write_text(f"0000/0000_000_05_0303afternoon_0008_0.jpg 0\n{line}\n")
    message = load_error("msmt17", d)
    assert f"{d}/list_query.txt, line 2" in message and expected in message


def test_mars_missing_query_idx_is_named(tmp_path):
    d = write_mars_tree(tmp_path)
    os.remove(d / "info" / "query_IDX.mat")
    message = load_error("mars", tmp_path)
    assert f"missing file {d}/info/query_IDX.mat" in message and "tracks_test_info.mat" in message


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.ones((3, 3), np.int32), "track_train_info must be a 2-D array with 4 columns"),
        (np.ones((4, 1), np.int32), "must be a 2-D array with 4 columns [start, end, pid, camid], got shape (4, 1)"),
        (np.array([[1.5, 2, 1, 1]]), "track_train_info must hold integer values, got dtype float64"),
        (np.array([[1, 99, 1, 1]], np.int32), "frames 1..99 are not a 1-based range inside the 8 names"),
        (np.array([[0, 1, 1, 1]], np.int32), "frames 0..1 are not a 1-based range"),
        (np.array([[1, 2, 1, 7]], np.int32), "camera 7 is not in 1..6"),
        (np.array([[1, 4, 1, 1]], np.int32), "frames 1..4 mix persons or cameras"),
    ],
)
def test_mars_bad_track_info_names_file_and_expectation(tmp_path, array, expected):
    d = write_mars_tree(tmp_path)
    path = d / "info" / "tracks_train_info.mat"
    scipy.io.savemat(path, {"track_train_info": array})
    message = load_error("mars", d)
    assert str(path) in message and expected in message


def test_mars_track_info_under_the_wrong_variable_name(tmp_path):
    d = write_mars_tree(tmp_path)
    path = d / "info" / "tracks_test_info.mat"
    scipy.io.savemat(path, {"track_info": np.ones((1, 4), np.int32)})
    assert f"{path} has no variable 'track_test_info' (found ['track_info'])" in load_error("mars", d)


@pytest.mark.parametrize(
    "query_idx, expected",
    [
        (np.array([1, 7], np.int32), "query_IDX values must be 1-based rows in 1..6 of track_test_info, got [7]"),
        (np.array([0, 2], np.int32), "got [0]"),
        (np.ones((2, 2), np.int32), "query_IDX must be a 1-D vector (or a 1 x N matrix), got shape (2, 2)"),
        (np.array([1.0, 2.5]), "query_IDX must hold integer values"),
        (np.array([2, 2], np.int32), "query_IDX repeats a row"),
    ],
)
def test_mars_bad_query_idx_names_file_and_expectation(tmp_path, query_idx, expected):
    d = write_mars_tree(tmp_path)
    path = d / "info" / "query_IDX.mat"
    scipy.io.savemat(path, {"query_IDX": query_idx})
    message = load_error("mars", d)
    assert str(path) in message and expected in message


def test_mars_bad_name_list_line_is_named(tmp_path):
    d = write_mars_tree(tmp_path)
    path = d / "info" / "test_name.txt"
    names = path.read_text().splitlines()
    names[2] = "frame.jpg"
    path.write_text("\n".join(names) + "\n")
    message = load_error("mars", d)
    assert f"{path}, line 3: name 'frame.jpg' does not match the expected pattern <pid>C<camera>T" in message


def test_binary_list_file_is_named(tmp_path):
    d = write_msmt17_tree(tmp_path)
    (d / "list_gallery.txt").write_bytes(b"\xff\xfe\x00garbage")
    assert f"{d}/list_gallery.txt is not a text file" in load_error("msmt17", d)


def test_mars_mat_that_is_not_a_mat_file(tmp_path):
    d = write_mars_tree(tmp_path)
    path = d / "info" / "tracks_train_info.mat"
    path.write_bytes(b"garbage")
    assert f"{path} is not a readable .mat file" in load_error("mars", d)


def test_duke_si_tracklet_bad_frame_name_and_mixed_cameras(tmp_path):
    d = write_duke_si_tree(tmp_path)
    write_image(d / "gallery" / "0004" / "C2T0011" / "frame.jpg")
    message = load_error("duke_si_tracklet", d)
    assert f"{d}/gallery/0004/C2T0011/frame.jpg" in message and "c<camera>_<frame>.jpg" in message
    os.remove(d / "gallery" / "0004" / "C2T0011" / "frame.jpg")
    write_image(d / "gallery" / "0004" / "C2T0011" / "c3_000008.jpg")
    assert f"tracklet folder {d}/gallery/0004/C2T0011 mixes cameras [2, 3]" in load_error("duke_si_tracklet", d)


def test_duke_si_tracklet_bad_identity_folder_and_empty_tracklet(tmp_path):
    d = write_duke_si_tree(tmp_path)
    (d / "train" / "0001" / "empty").mkdir()
    assert f"tracklet folder {d}/train/0001/empty holds no frames" in load_error("duke_si_tracklet", d)
    (d / "train" / "0001" / "empty").rmdir()
    (d / "train" / "person").mkdir()
    assert f"{d}/train/person: identity folders must be named by a number" in load_error("duke_si_tracklet", d)


# ---- summary ------------------------------------------------------------------------------------


def test_identities_per_camera_and_dropped_cameras(tmp_path):
    dataset = load_dataset("mars", str(write_mars_tree(tmp_path, train=((1, 1, 1), (2, 1, 1), (2, 1, 1), (3, 2, 1)))))
    assert identities_per_camera(dataset.train) == {0: 2, 1: 1}
    assert dataset.cameras == (0, 1, 3, 4, 5)  # the tree has no camera 3 (camid 2): it is never listed
    assert dropped_cameras(dataset, 2) == (1, 3, 4, 5)
    assert dropped_cameras(dataset, 1) == (3, 4, 5)


def test_tables_list_only_the_cameras_the_data_has(tmp_path):
    dataset = load_dataset("market1501", str(write_market_tree(tmp_path, MARKET_TWO_CAMERAS)))
    assert (dataset.num_cameras, dataset.cameras) == (6, (0, 1))
    lines = summarize(dataset, min_ids_per_camera=2).splitlines()
    assert lines[0] == f"market1501 at {dataset.root}: 2 cameras"
    assert [[cell.strip() for cell in line.split("|")] for line in lines[12:14]] == [
        ["camera 1", "1", "1", "dropped (< 2 ids)"],
        ["camera 2", "2", "2", "kept"],
    ]
    assert lines[14].startswith("  ---") and len(lines) == 15  # the rule under the table: no camera 3-6
    assert dropped_cameras(dataset, 2) == (0,)


def test_summary_table_counts_and_marks_dropped_cameras(tmp_path):
    dataset = load_dataset("market1501", str(write_market_tree(tmp_path)))
    lines = summarize(dataset, min_ids_per_camera=1).splitlines()
    assert lines[0] == f"market1501 at {dataset.root}: 6 cameras"
    assert lines[2].split() == ["subset", "|", "#", "ids", "|", "#", "images", "|", "#", "cameras"]
    assert [line.split() for line in lines[4:7]] == [
        ["train", "|", "2", "|", "3", "|", "3"],
        ["query", "|", "1", "|", "2", "|", "2"],
        ["gallery", "|", "2", "|", "3", "|", "3"],
    ]
    assert lines[8].strip() == "train identities per camera:"
    # Cameras by the dataset's own numbers (c1-c6 in Market's file names), as every message names them.
    assert [[cell.strip() for cell in line.split("|")] for line in lines[12:18]] == [
        ["camera 1", "1", "1", "kept"],
        ["camera 2", "1", "1", "kept"],
        ["camera 3", "1", "1", "kept"],
        ["camera 4", "0", "0", "dropped (< 1 ids)"],
        ["camera 5", "0", "0", "dropped (< 1 ids)"],
        ["camera 6", "0", "0", "dropped (< 1 ids)"],
    ]
    assert "dropped" not in summarize(dataset) and "training" not in summarize(dataset)
    assert "# tracklets" in summarize(load_dataset("mars", str(write_mars_tree(tmp_path))))
