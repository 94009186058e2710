"""python -m acan_tf.data.ingest: MOT sequences to your own cameras' layout, the filters, atomicity, bad input."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acan_tf.data.datasets import load_dataset
from acan_tf.data.ingest import Filters, IngestError, ingest
from acan_tf.data.ingest import filters as ingest_filters
from acan_tf.data.ingest.filters import spread
from tests.mot_sequences import frame_pixels, steady_track, write_camera

FILTERS = Filters(min_box_height=20, min_track_length=3)
# lobby: track 1 (6 frames, kept), track 2 (2 frames: short), track 3 (low confidence on 2 of 5 frames),
# track 4 (half its boxes mostly outside the frame, the rest clipped at the right edge).
LOBBY = {
    1: steady_track(1, 6),
    2: steady_track(1, 2, left=30),
    3: steady_track(1, 3, left=20) + steady_track(4, 5, left=20, conf=0.2),
    4: steady_track(1, 3, left=56, width=12) + steady_track(4, 6, left=60, width=12),
}
# gate 3: track 7 kept, track 8 too low (height 10) on every frame, track 9 kept.
GATE = {7: steady_track(1, 4), 8: steady_track(1, 4, left=30, height=10), 9: steady_track(2, 5, left=40)}


def sequences(root: Path, video: bool = False) -> Path:
    """Two cameras' sequences in root/input."""
    write_camera(root / "input" / "lobby", LOBBY, num_frames=6, video=video)
    write_camera(root / "input" / "gate 3", GATE, num_frames=6)
    return root / "input"


def run(root: Path, filters: Filters = FILTERS, **options) -> dict:
    """Ingests root/input into root/output, quietly."""
    lines = []
    summary = ingest(str(root / "input"), str(root / "output"), filters, say=lines.append, progress=False,
                     **options)
    summary["said"] = lines
    return summary


def ingest_error(root: Path, filters: Filters = FILTERS, **options) -> str:
    """The IngestError's message; nothing may be written beside the input."""
    with pytest.raises(IngestError) as info:
        run(root, filters, **options)
    assert sorted(os.listdir(root)) == ["input"]  # no output, no staging folder left
    return str(info.value)


def test_every_kept_track_becomes_a_local_id_of_clipped_crops_with_their_provenance(tmp_path):
    sequences(tmp_path, video=False)
    summary = run(tmp_path, Filters(min_box_height=20, min_track_length=3, min_confidence=0.5))
    output = tmp_path / "output"
    assert sorted(os.listdir(output)) == ["ingest.json", "manifest.csv", "train"]
    assert sorted(os.listdir(output / "train" / "lobby")) == ["1", "3", "4"]
    assert sorted(os.listdir(output / "train" / "gate 3")) == ["7", "9"]
    lobby = summary["cameras"]["lobby"]
    assert (lobby["tracks_in_file"], lobby["tracks_kept"], lobby["crops"]) == (4, 3, 6 + 3 + 3)
    assert lobby["dropped"] == {ingest_filters.LOW_CONFIDENCE: 2, ingest_filters.MOSTLY_OUTSIDE: 3,
                                ingest_filters.TOO_SMALL: 0, ingest_filters.THINNED: 0, ingest_filters.SHORT_TRACK: 1}
    assert summary["cameras"]["gate 3"]["dropped"][ingest_filters.TOO_SMALL] == 4
    assert json.loads((output / "ingest.json").read_text())["cameras"]["lobby"] == lobby
    assert summary["said"][0].startswith("camera gate 3: 2 of 3 tracks kept, 8 crops; dropped: 4 box lower than")
    # Track 4's frame 2: box 56..68 clipped to the 64-pixel frame (8 of 12 columns visible, kept at 0.5).
    crop = np.asarray(Image.open(output / "train" / "lobby" / "4" / "000002.jpg"))
    assert crop.shape == (36, 8, 3)
    assert np.abs(crop.astype(int) - frame_pixels(2)[4:40, 56:64]).mean() < 4  # the right pixels, JPEG aside
    with open(output / "manifest.csv", encoding="utf-8") as handle:
        rows = {row["path"]: row for row in csv.DictReader(handle)}
    assert rows["train/lobby/4/000002.jpg"] == {
        "path": "train/lobby/4/000002.jpg", "camera": "lobby", "local_id": "4", "source": "lobby/img1/000002.png",
        "frame": "2", "left": "56", "top": "4", "width": "8", "height": "36"}
    dataset = load_dataset("cameras", str(output))
    assert dataset.camera_names == ("gate 3", "lobby") and len(dataset.train) == 8 + 12
    assert load_dataset("cameras", str(output / "manifest.csv")) == dataset


def test_frames_per_track_keeps_frames_spread_evenly():
    assert spread(10, 4) == [0, 3, 6, 9] and spread(5, 0) == [0, 1, 2, 3, 4] and spread(3, 8) == [0, 1, 2]
    assert spread(7, 1) == [3] and spread(9, 3) == [0, 4, 8]


def test_thinned_tracks_keep_their_first_and_last_frames(tmp_path):
    sequences(tmp_path)
    summary = run(tmp_path, Filters(min_box_height=20, min_track_length=3, frames_per_track=3))
    assert sorted(os.listdir(tmp_path / "output" / "train" / "lobby" / "1")) == ["000001.jpg", "000004.jpg",
                                                                                "000006.jpg"]
    assert summary["cameras"]["lobby"]["dropped"][ingest_filters.THINNED] == 3 + 2 + 0  # tracks 1, 3 (5), 4 (3)


def tree_digest(folder: Path) -> str:
    """A digest of every file's relative path and bytes under `folder`, ingest.json's paths aside."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "ingest.json"):
        digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_ingest_is_deterministic(tmp_path):
    sequences(tmp_path)
    run(tmp_path)
    first = tree_digest(tmp_path / "output")
    os.rename(tmp_path / "output", tmp_path / "first")
    run(tmp_path)
    assert tree_digest(tmp_path / "output") == first


def test_a_video_gives_the_frames_of_img1(tmp_path):
    pytest.importorskip("cv2")
    sequences(tmp_path / "images")
    sequences(tmp_path / "video", video=True)
    from_images, from_video = run(tmp_path / "images"), run(tmp_path / "video")
    assert from_video["cameras"]["lobby"]["crops"] == from_images["cameras"]["lobby"]["crops"]
    image = np.asarray(Image.open(tmp_path / "images" / "output" / "train" / "lobby" / "1" / "000005.jpg"), int)
    video = np.asarray(Image.open(tmp_path / "video" / "output" / "train" / "lobby" / "1" / "000005.jpg"), int)
    assert np.abs(image - video).mean() < 8  # the same frame (MJPG is lossy), not a neighbour


def test_an_interrupted_ingest_leaves_nothing(tmp_path, monkeypatch):
    sequences(tmp_path)
    save, calls = Image.Image.save, []

    def failing_save(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["input"]


def test_track_file_location_with_the_camera_placeholder(tmp_path):
    sequences(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    for camera in ("lobby", "gate 3"):
        os.rename(tmp_path / "input" / camera / "gt" / "gt.txt", results / f"{camera}.txt")
    summary = run(tmp_path, tracks=str(results / "{camera}.txt"))
    assert summary["cameras"]["lobby"]["track_file"] == str(results / "lobby.txt")


def replace_line(path: Path, number: int, text: str) -> None:
    """Replaces line `number` (1-based) of a text file."""
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("line, expected", [
    ("1,1,4,4,12", "line 2: 5 fields ('1,1,4,4,12'); expected frame,id,left,top,width,height[,conf,...]"),
    ("1,x,4,4,12,36,1", "line 2: a field is not a number ('1,x,4,4,12,36,1')"),
    ("0,1,4,4,12,36,1", "line 2: frame 0 and id 1 must be integers, frames from 1"),
    ("1,5,4,4,0,36,1", "line 2: box 0x36; expected a positive width and height"),
    ("1,3,4,4,12,36,1", "line 3: frame 1 has id 3 again (first on line 2); expected one box per id and frame"),
    ("7,5,4,4,12,36,1", "line 2: frame 7 is not among the frames of {input}/lobby/img1 (frames 1..6, 6 images)"),
    ("1,5,70,4,12,36,1", "line 2: box (left 70, top 4, 12x36) lies entirely outside the 64x48 frame"),
])
def test_a_bad_track_line_is_named_with_its_file_and_line(tmp_path, line, expected):
    track_file = sequences(tmp_path) / "lobby" / "gt" / "gt.txt"
    replace_line(track_file, 2, line)
    message = ingest_error(tmp_path)
    assert message.startswith(f"{track_file}, " + expected.format(input=tmp_path / "input")), message


def test_an_unreadable_video_is_named(tmp_path):
    write_camera(tmp_path / "input" / "gate 3", GATE, num_frames=6)
    (tmp_path / "input" / "lobby" / "gt").mkdir(parents=True)
    (tmp_path / "input" / "lobby" / "gt" / "gt.txt").write_text("1,1,4,4,12,36,1\n")
    (tmp_path / "input" / "lobby" / "cam.mp4").write_bytes(b"not a video at all" * 100)
    assert ingest_error(tmp_path) == (f"{tmp_path}/input/lobby/cam.mp4 cannot be read as a video (not a video, "
                                      "damaged, or a codec OpenCV lacks)")


@pytest.mark.parametrize("kept, expected", [
    (0.9, "{video} ends after frame 4, but the track file needs frame 5 (a truncated or damaged video?)"),
    (0.5, "{video} cannot be read as a video (not a video, damaged, or a codec OpenCV lacks)"),
])
def test_a_truncated_video_is_named(tmp_path, kept, expected):
    pytest.importorskip("cv2")
    sequences(tmp_path, video=True)
    video = tmp_path / "input" / "lobby" / "video.avi"
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * kept)])  # 90 %: the header still says 6 frames; 50 %: no header
    assert ingest_error(tmp_path) == expected.format(video=video)


def test_a_camera_with_a_single_local_id_is_dropped_or_kept_as_min_ids_per_camera_says(tmp_path):
    sequences(tmp_path)
    write_camera(tmp_path / "input" / "roof", {5: steady_track(1, 4)}, num_frames=6)
    summary = run(tmp_path)
    assert "camera roof: dropped, 1 track(s) kept by the filters, fewer than --min_ids_per_camera=2" in summary["said"]
    assert sorted(os.listdir(tmp_path / "output" / "train")) == ["gate 3", "lobby"]
    os.rename(tmp_path / "output", tmp_path / "first")
    summary = run(tmp_path, Filters(min_box_height=20, min_track_length=3, min_ids_per_camera=1))
    assert summary["said"][0].startswith("camera roof: kept with a single local id (--min_ids_per_camera=1)")
    assert os.listdir(tmp_path / "output" / "train" / "roof") == ["5"]


def test_fewer_than_two_cameras_is_refused(tmp_path):
    write_camera(tmp_path / "input" / "lobby", LOBBY, num_frames=6)
    assert ingest_error(tmp_path) == (f"--input={tmp_path}/input holds 1 camera folder(s); expected at least 2, one "
                                      "per camera, named as the camera")
    write_camera(tmp_path / "input" / "roof", {5: steady_track(1, 4)}, num_frames=6)
    assert ingest_error(tmp_path) == (f"--input={tmp_path}/input: 1 camera(s) keep tracks after the filters; "
                                      "expected at least 2 (loosen the filters or add cameras)")


def test_a_missing_track_file_and_missing_frames_are_named(tmp_path):
    sequences(tmp_path)
    os.remove(tmp_path / "input" / "lobby" / "gt" / "gt.txt")
    assert ingest_error(tmp_path).startswith(f"missing track file {tmp_path}/input/lobby/gt/gt.txt")
    (tmp_path / "input" / "lobby" / "img1").rename(tmp_path / "input" / "lobby" / "frames")
    assert ingest_error(tmp_path) == (f"{tmp_path}/input/lobby: expected its frames as img1/000001.jpg ... or one "
                                      "video file (.mp4, .avi, .mkv, .mov, .webm, .mpg, .mpeg); found neither")


def test_an_existing_output_is_never_written_over(tmp_path):
    sequences(tmp_path)
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "mine.txt").write_text("precious")
    with pytest.raises(IngestError, match="already exists and is not an empty folder"):
        run(tmp_path)
    assert os.listdir(tmp_path / "output") == ["mine.txt"]


def test_the_command_prints_one_line_for_bad_input_and_what_to_run_next(tmp_path):
    sequences(tmp_path)
    command = [sys.executable, "-m", "acan_tf.data.ingest", f"--input={tmp_path / 'input'}",
               f"--output={tmp_path / 'output'}", "--min_box_height=20", "--min_track_length=0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "acan_tf.data.ingest: error: --min_track_length=0: expected an integer >= 1"
    result = subprocess.run(command[:-1] + ["--min_track_length=3"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"--dataset=cameras --data_root={tmp_path / 'output'}" in result.stdout
    assert "writing crops: 22/22 (100%), camera lobby" in result.stderr


def test_an_unwritable_output_is_one_line(tmp_path):
    sequences(tmp_path)
    (tmp_path / "a_file").write_text("not a folder")  # even root cannot make a folder inside a file
    result = subprocess.run([sys.executable, "-m", "acan_tf.data.ingest", f"--input={tmp_path / 'input'}",
                             f"--output={tmp_path / 'a_file' / 'out'}", "--noprogress"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"acan_tf.data.ingest: error: cannot write {tmp_path / 'a_file'}: File exists; "
                                     f"nothing was written to --output={tmp_path / 'a_file' / 'out'}")
