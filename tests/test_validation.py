"""The validation split carved out of the training identities: disjoint from training, a query per identity and
camera, seeded, and refused when it would leave nothing to train on."""

import dataclasses

import pytest

from acan_tf.data import DatasetError
from acan_tf.data.records import ImageRecord, ReIDDataset
from acan_tf.data.validation import carve_validation


def dataset() -> ReIDDataset:
    train = tuple(ImageRecord(f"/d/{pid:02d}_c{camid}_{k}.jpg", pid, camid)
                  for pid in range(10) for camid in range(2) for k in range(3))
    test = (ImageRecord("/d/test.jpg", 99, 0),)
    return ReIDDataset("toy", "/d", train, test, test, 2)


def test_carved_identities_leave_training_and_form_query_and_gallery():
    carved = carve_validation(dataset(), 3, seed=0)
    held = {record.pid for record in carved.query}
    assert len(held) == 3 and held == {record.pid for record in carved.gallery}
    assert not held & {record.pid for record in carved.train}
    assert len(carved.train) == 7 * 6
    # One query per (identity, camera): the first image by path; the other two are gallery entries.
    assert sorted((r.pid, r.camid) for r in carved.query) == sorted((pid, camid) for pid in held for camid in range(2))
    assert all(record.path.endswith("_0.jpg") for record in carved.query) and len(carved.gallery) == 3 * 2 * 2
    assert carve_validation(dataset(), 3, seed=0) == carved and carve_validation(dataset(), 3, seed=1) != carved


@pytest.mark.parametrize("count", [0, 10])
def test_a_split_that_leaves_nothing_is_refused(count):
    with pytest.raises(DatasetError, match=rf"--validation_identities={count}: expected 1..9 of the 10 training"):
        carve_validation(dataset(), count, seed=0)


def test_camera_local_training_ids_cannot_be_carved():
    local = dataclasses.replace(dataset(), train_ids_cross_camera=False)
    with pytest.raises(DatasetError, match=r"--validation_identities=3: toy has no cross-camera identities to hold"):
        carve_validation(local, 3, seed=0)
