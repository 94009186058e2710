"""Synthetic MOT sequences: the tracks they record, their tracker faults, and that ingest reads them."""

from __future__ import annotations

import collections
import csv
import os

import numpy as np
import pytest
from PIL import Image

from acan_tf.data.datasets import load_dataset
from acan_tf.data.ingest import Filters, ingest
from acan_tf.data.synthetic import SyntheticSpec
from acan_tf.data.synthetic.sequences import NOISE_PERSON, TRUTH_FILE, SequenceSpec, plan_tracks, write_sequences

BENCHMARK = SyntheticSpec(num_cameras=3, num_train_ids=12, num_test_ids=6, max_cameras_per_id=3, height=32, width=16)


def truth(folder) -> dict[int, int]:
    """track id -> person of one camera's truth.csv."""
    with open(os.path.join(folder, TRUTH_FILE), encoding="utf-8") as handle:
        return {int(row["track_id"]): int(row["person"]) for row in csv.DictReader(handle)}


def test_faults_are_broken_tracks_of_one_person_and_short_noisy_tracks():
    clean = SequenceSpec(BENCHMARK, num_people=12, num_frames=30)
    faulty = SequenceSpec(BENCHMARK, num_people=12, num_frames=30, broken_share=1.0, noisy_tracks=4)
    for camid in range(3):
        plain, broken = plan_tracks(clean, camid), plan_tracks(faulty, camid)
        people = [track.person for track in plain]
        assert len(set(people)) == len(people)  # one track per visit
        tracks_per_person = collections.Counter(track.person for track in broken)
        assert tracks_per_person[NOISE_PERSON] == 4
        assert all(tracks_per_person[person] == 2 for person in people)
        for track in broken:
            frames = [frame for frame, _, _ in track.boxes]
            assert frames == list(range(frames[0], frames[0] + len(frames)))  # consecutive frames
            if track.person == NOISE_PERSON:
                assert len(frames) <= 3
        # A broken visit keeps the clean visit's boxes, split in two.
        for visit in plain:
            halves = [track.boxes for track in broken if track.person == visit.person]
            assert halves[0] + halves[1] == visit.boxes


def test_sequences_ingest_into_one_local_id_per_kept_track(tmp_path):
    spec = SequenceSpec(BENCHMARK, num_people=12, num_frames=20, track_length=(4, 8), broken_share=0.5,
                        noisy_tracks=2)
    assert write_sequences(str(tmp_path / "sequences"), spec) == ["c1", "c2", "c3"]
    frame = Image.open(tmp_path / "sequences" / "c1" / "img1" / "000001.jpg")
    assert frame.size == (16 * 5, 32 * 2)
    summary = ingest(str(tmp_path / "sequences"), str(tmp_path / "crops"), Filters(min_box_height=16,
                     min_track_length=4), say=lambda line: None, progress=False)
    dataset = load_dataset("cameras", str(tmp_path / "crops"))
    assert dataset.camera_names == ("c1", "c2", "c3")
    for camera, figures in summary["cameras"].items():
        kept = sorted(os.listdir(tmp_path / "crops" / "train" / camera), key=int)
        people = truth(tmp_path / "sequences" / camera)
        assert figures["tracks_in_file"] == len(people)
        assert NOISE_PERSON not in {people[int(track)] for track in kept}  # noisy tracks are shorter than 4
    crop = np.asarray(Image.open(next((tmp_path / "crops" / "train" / "c1").rglob("*.jpg"))))
    assert crop.shape[0] >= 16 and crop.shape[2] == 3


def test_a_bad_sequence_spec_is_refused():
    with pytest.raises(ValueError, match="num_people must be in 1..12"):
        SequenceSpec(BENCHMARK, num_people=13)
