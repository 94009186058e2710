"""Batch composition of the samplers and the camera plan (Eq. 11-12 batches, IV-A camera batches)."""

import numpy as np
import pytest

from acan_tf.data.records import ImageRecord, camera_local_labels
from acan_tf.data.sampling import CameraBatchSampler, SamplingError, TripletBatchSampler, choose_frames, training_set


def records(ids_per_camera=(6, 5, 2), images=3):
    out = []
    for camid, num_ids in enumerate(ids_per_camera):
        for pid in range(num_ids):
            out += [ImageRecord(f"c{camid}/{pid}_{k}.jpg", 100 + pid, camid) for k in range(images)]
    return out


def test_triplet_batch_is_p_identities_times_k_from_one_camera():
    train = training_set(records(), min_ids=4)
    sampler = TripletBatchSampler(train.classes, train.local_ids, num_identities=4, num_instances=2)
    rng = np.random.default_rng(0)
    seen_cameras = set()
    for _ in range(20):
        batch = sampler.next(rng)
        assert batch.shape == (8,)
        cams, ids = train.classes[batch], train.local_ids[batch]
        assert len(set(cams)) == 1
        seen_cameras.add(cams[0])
        groups = ids.reshape(4, 2)
        assert np.all(groups == groups[:, :1]), "K consecutive items per identity"
        assert len(set(groups[:, 0])) == 4, "P distinct identities"
    assert seen_cameras == {0, 1}


def test_identity_with_fewer_than_k_images_is_sampled_with_replacement():
    train = training_set(records(ids_per_camera=(3,), images=1), min_ids=3)
    batch = TripletBatchSampler(train.classes, train.local_ids, 3, 4).next(np.random.default_rng(0))
    assert batch.shape == (12,) and np.all(batch.reshape(3, 4) == batch.reshape(3, 4)[:, :1])


def test_camera_batch_has_exact_quotas_interleaved():
    camids = np.array([0] * 10 + [1] * 3 + [2] * 20)
    sampler = CameraBatchSampler(camids, batch_size=64)
    batch = sampler.next(np.random.default_rng(1))
    assert sampler.per_camera == 21 and batch.shape == (63,)
    np.testing.assert_array_equal(camids[batch], np.tile([0, 1, 2], 21))


def test_camera_batch_rejection_mode_is_balanced_on_average():
    camids = np.array([0] * 100 + [1] * 10 + [2] * 40)
    sampler = CameraBatchSampler(camids, batch_size=30, mode="rejection")
    rng = np.random.default_rng(2)
    counts = np.bincount(np.concatenate([camids[sampler.next(rng)] for _ in range(300)]), minlength=3)
    np.testing.assert_allclose(counts / counts.sum(), [1 / 3] * 3, atol=0.03)


def test_camera_batch_smaller_than_camera_count_is_an_error():
    with pytest.raises(SamplingError, match="--camera_batch_size=2"):
        CameraBatchSampler(np.array([0, 1, 2]), batch_size=2)


def test_cameras_with_fewer_than_p_identities_are_dropped_and_classes_renumbered():
    train = training_set(records(ids_per_camera=(6, 2, 5)), min_ids=4)
    assert train.camera_classes == {0: 0, 2: 1}
    assert train.dropped == {1: 2}
    assert set(train.classes) == {0, 1}
    assert all(r.camid != 1 for r in train.records)


def test_no_camera_with_p_identities_is_a_clear_error():
    with pytest.raises(SamplingError, match=r"no camera has the 32 identities.*camera 1: 6"):
        training_set(records(), min_ids=32)


def test_cameras_are_named_by_the_datasets_names():
    names = ("lobby", "gate 3", "Café")
    train = training_set(records(ids_per_camera=(6, 2, 5)), min_ids=4, camera_names=names)
    assert train.class_names == ("lobby", "Café")  # D's classes: the kept cameras in class order
    assert training_set(records(ids_per_camera=(6, 2, 5)), min_ids=4).class_names == ("camera 1", "camera 3")
    with pytest.raises(SamplingError, match=r"identities per camera: lobby: 6, gate 3: 5, Café: 2"):
        training_set(records(), min_ids=32, camera_names=names)
    with pytest.raises(SamplingError, match=r"^Café has 5 identities, fewer than --num_identities=6"):
        TripletBatchSampler(train.classes, train.local_ids, 6, 2, camera_names=train.class_names)


def test_camera_local_labels_never_link_cameras():
    recs = [ImageRecord("a", 7, 0), ImageRecord("b", 3, 0), ImageRecord("c", 7, 1), ImageRecord("d", 9, 1)]
    assert camera_local_labels(recs) == [(0, 1), (0, 0), (1, 0), (1, 1)]


def test_choose_frames_distinct_when_long_enough_else_with_replacement():
    rng = np.random.default_rng(0)
    long = choose_frames(rng, 10, 4)
    assert len(set(long)) == 4 and list(long) == sorted(long)
    short = choose_frames(rng, 2, 4)
    assert len(short) == 4 and set(short) <= {0, 1}
