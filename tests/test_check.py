"""The dataset checker: exit status and the files it names, in-process and as a command."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from acan_tf.data.check import check, find_file_problems
from acan_tf.data.datasets import DatasetError
from tests.fixture_trees import MARKET_TWO_CAMERAS, write_cameras_tree, write_market_tree, write_mars_tree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def truncated_jpeg() -> bytes:
    """The first half of a noisy JPEG: a header PIL can open, then data that ends too early."""
    pixels = np.random.default_rng(0).integers(0, 256, (32, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


def damage_market_tree(d) -> tuple[str, str, str]:
    """Makes one gallery image truncated, one training image empty and one query image a TIFF."""
    truncated = d / "bounding_box_test" / "0003_c4s2_000301_02.jpg"
    truncated.write_bytes(truncated_jpeg())
    empty = d / "bounding_box_train" / "0007_c3s3_000123_02.jpg"
    empty.write_bytes(b"")
    tiff = d / "query" / "0003_c6s2_000201_00.jpg"
    Image.new("RGB", (4, 8)).save(tiff, format="TIFF")
    return str(truncated), str(empty), str(tiff)


def test_clean_dataset_passes(tmp_path, capsys):
    d = write_market_tree(tmp_path)
    assert check("market1501", str(tmp_path), min_ids_per_camera=1) == 0
    out = capsys.readouterr().out
    assert f"market1501 at {d}: 6 cameras" in out  # the summary table
    assert "8 files checked, 0 with problems" in out
    assert "3 of 6 cameras have >= 1 training identities; dropped: camera 4, camera 5, camera 6" in out


def test_corrupt_empty_and_foreign_format_images_fail_and_are_named(tmp_path, capsys):
    truncated, empty, tiff = damage_market_tree(write_market_tree(tmp_path))
    assert check("market1501", str(tmp_path), min_ids_per_camera=1) == 1
    out = capsys.readouterr().out
    assert f"1 empty file(s):\n  {empty}\n" in out
    assert "2 corrupt file(s):" in out
    assert f"  {truncated}  (" in out  # with PIL's reason
    assert f"  {tiff}  (format TIFF is not one of ('JPEG', 'MPO', 'PNG', 'BMP', 'GIF'))" in out
    assert "8 files checked, 3 with problems" in out


def test_missing_tracklet_frame_fails_and_is_named(tmp_path, capsys):
    d = write_mars_tree(tmp_path)
    missing = d / "bbox_test" / "0000" / "0000C5T0003F002.jpg"
    os.remove(missing)
    assert check("mars", str(d), min_ids_per_camera=1) == 1
    assert f"1 missing file(s):\n  {missing}\n" in capsys.readouterr().out


def test_no_camera_with_enough_identities_fails(tmp_path, capsys):
    write_market_tree(tmp_path)
    assert check("market1501", str(tmp_path), min_ids_per_camera=2) == 1
    out = capsys.readouterr().out
    assert "0 of 6 cameras have >= 2 training identities" in out
    assert "no usable camera" in out


def test_only_the_cameras_the_data_has_are_counted(tmp_path, capsys):
    write_market_tree(tmp_path, MARKET_TWO_CAMERAS)
    assert check("market1501", str(tmp_path), min_ids_per_camera=2) == 0
    out = capsys.readouterr().out
    assert "1 of 2 cameras have >= 2 training identities; dropped: camera 1" in out
    assert "camera 3" not in out


def test_unloadable_dataset_fails_with_the_layout_message(tmp_path, capsys):
    with pytest.raises(DatasetError, match=f"no dataset found at {re.escape(str(tmp_path))}"):
        check("mars", str(tmp_path), min_ids_per_camera=1)


def test_problems_are_found_across_chunks_in_path_order(tmp_path):
    paths = [str(tmp_path / f"{index:05d}.jpg") for index in range(2500)]
    problems = find_file_problems(paths, num_workers=2)
    assert [(p.path, p.kind) for p in problems] == [(path, "missing") for path in paths]


def run_checker(*flags: str) -> subprocess.CompletedProcess:
    """`python -m acan_tf.data.check` with `flags`, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "acan_tf.data.check", *flags], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_command_line_exit_status(tmp_path):
    write_market_tree(tmp_path)
    clean = run_checker("--dataset=market1501", f"--data_root={tmp_path}", "--min_ids_per_camera=1")
    assert clean.returncode == 0, clean.stderr
    assert "8 files checked, 0 with problems" in clean.stdout
    truncated, empty, tiff = damage_market_tree(tmp_path / "Market-1501-v15.09.15")
    damaged = run_checker("--dataset=market1501", f"--data_root={tmp_path}", "--min_ids_per_camera=1")
    assert damaged.returncode == 1
    assert all(path in damaged.stdout for path in (truncated, empty, tiff))
    assert run_checker("--dataset=market1501").returncode != 0  # --data_root is required


def test_your_cameras_say_which_evaluation_training_will_make(tmp_path, capsys):
    write_cameras_tree(tmp_path, {"train": {"lobby": {"a": 4, "b": 2}, "gate 3": {"a": 5}}})
    assert check("cameras", str(tmp_path), min_ids_per_camera=1) == 0
    out = capsys.readouterr().out
    assert "lobby" in out and out.rstrip().endswith(
        "evaluation: no query/ and gallery/, so no cross-camera labels: retrieval across cameras cannot be measured; "
        "training holds out the first and last frames of 2 of the 3 local ids for intra-camera retrieval and reports "
        "the association without labels")
    write_cameras_tree(tmp_path, {"query": {"lobby": {"p": 1}}, "gallery": {"gate 3": {"p": 2}}})
    assert check("cameras", str(tmp_path), min_ids_per_camera=1) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        "evaluation: retrieval across cameras (mAP, CMC) of 1 queries against 2 gallery entries")
