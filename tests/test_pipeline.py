"""The tf.data pipeline: determinism per (seed, step), augmentation, and training on intra-camera labels only."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from acan_tf.data.pipeline import (
    Augmentation,
    TrainingBatches,
    augment,
    decode_image,
    find_unreadable,
    training_dataset,
)
from acan_tf.data.records import ImageRecord, TrackletRecord
from acan_tf.data.sampling import training_set
from acan_tf.evaluation.features import extract_features
from acan_tf.losses import batch_hard_triplet_loss

NO_AUGMENTATION = Augmentation(flip=False, pad=0, random_erasing=0.0)


@pytest.fixture(scope="module")
def image_records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = []
    for camid in range(3):
        for pid in range(5):
            for k in range(2):
                path = folder / f"{pid:04d}_c{camid + 1}_{k}.png"
                Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(path)
                out.append(ImageRecord(str(path), pid, camid))
    return out


def batches_for(records, seed=0):
    train = training_set(records, min_ids=4)
    return TrainingBatches(train.records, train.local_ids, train.classes, 4, 2, 6, 1, seed)


def first_batches(records, count, seed=0, augmentation=NO_AUGMENTATION, first_step=0):
    dataset = training_dataset(batches_for(records, seed), 16, 8, augmentation, first_step=first_step)
    return [{k: v.numpy() for k, v in b.items()} for b in dataset.take(count)]


def test_batches_have_the_two_streams_shapes(image_records):
    (batch,) = first_batches(image_records, 1)
    assert batch["triplet_images"].shape == (8, 16, 8, 3)
    assert batch["camera_images"].shape == (6, 16, 8, 3)
    assert len(set(batch["triplet_camids"])) == 1
    np.testing.assert_array_equal(batch["camera_camids"], [0, 1, 2, 0, 1, 2])


def test_step_k_depends_only_on_seed_and_k(image_records):
    augmentation = Augmentation()
    full = first_batches(image_records, 3, augmentation=augmentation)
    again = first_batches(image_records, 3, augmentation=augmentation)
    resumed = first_batches(image_records, 1, augmentation=augmentation, first_step=2)
    other_seed = first_batches(image_records, 1, seed=1, augmentation=augmentation)
    for key in full[0]:
        np.testing.assert_array_equal(full[2][key], again[2][key])
        np.testing.assert_array_equal(full[2][key], resumed[0][key])
    assert not np.array_equal(full[0]["triplet_images"], other_seed[0]["triplet_images"])


def test_unaugmented_images_are_the_decoded_files(image_records):
    batches = batches_for(image_records)
    items, _ = batches.indices(0)
    (batch,) = first_batches(image_records, 1)
    expected = np.asarray(Image.open(batches.paths[items[0]]), dtype=np.float32)
    np.testing.assert_allclose(batch["triplet_images"][0], expected, atol=1e-3)


def test_augmentation_flip_crop_and_erasing():
    image = tf.reshape(tf.range(16 * 8 * 3, dtype=tf.float32) % 251, (16, 8, 3))
    seed = tf.constant([3, 4], tf.int64)
    flipped = [augment(image, tf.constant([0, s], tf.int64), Augmentation(True, 0, 0.0)).numpy() for s in range(20)]
    assert any(np.array_equal(f, image.numpy()[:, ::-1]) for f in flipped)
    assert any(np.array_equal(f, image.numpy()) for f in flipped)
    cropped = augment(image, seed, Augmentation(False, 2, 0.0)).numpy()
    assert cropped.shape == (16, 8, 3)
    erased = augment(image, seed, Augmentation(False, 0, 1.0)).numpy()
    changed = np.any(erased != image.numpy(), axis=-1)
    rows, cols = np.nonzero(changed)
    assert changed.sum() > 0
    assert changed[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all(), "one erased rectangle"


def test_unrelated_ids_across_cameras_leave_batches_and_losses_unchanged(image_records):
    # A tracker gives the same person unrelated ids in different cameras: training must not care.
    relabelled = [dataclasses.replace(r, pid=1000 * (r.camid + 1) + 7 * r.pid) for r in image_records]
    original = first_batches(image_records, 3)
    renamed = first_batches(relabelled, 3)
    embed = tf.keras.layers.Dense(4, kernel_initializer=tf.keras.initializers.RandomNormal(seed=0))
    for a, b in zip(original, renamed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        loss_a = batch_hard_triplet_loss(embed(a["triplet_images"].reshape(8, -1)), a["triplet_ids"],
                                         a["triplet_camids"])
        loss_b = batch_hard_triplet_loss(embed(b["triplet_images"].reshape(8, -1)), b["triplet_ids"],
                                         b["triplet_camids"])
        assert float(loss_a) == float(loss_b)


def test_decode_image_accepts_grayscale_png(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((10, 6), 200, np.uint8)).save(path)
    image = decode_image(str(path), 16, 8).numpy()
    assert image.shape == (16, 8, 3)
    np.testing.assert_allclose(image, 200.0, atol=1e-3)


def test_find_unreadable_names_corrupt_and_empty_files(tmp_path, image_records):
    corrupt, empty = tmp_path / "corrupt.jpg", tmp_path / "empty.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    empty.write_bytes(b"")
    bad = find_unreadable([image_records[0].path, str(corrupt), str(empty)])
    assert [path for path, _ in bad] == [str(corrupt), str(empty)]


def test_feature_extraction_traces_the_model_once_and_averages_a_tracklets_frames(image_records):
    traces = []

    def mean_colour(frames):
        traces.append(frames.shape)
        return tf.reduce_mean(frames, axis=[1, 2])

    tracklet = TrackletRecord(tuple(record.path for record in image_records[4:7]), 9, 0)
    features = extract_features(mean_colour, [*image_records[:4], tracklet], 16, 8, batch_size=2)  # 7 frames: 2+2+2+1
    assert len(traces) == 1, "the last, smaller batch must not trace the model again"
    colours = [decode_image(record.path, 16, 8).numpy().mean(axis=(0, 1)) for record in image_records[:7]]
    np.testing.assert_allclose(features, np.stack([*colours[:4], np.mean(colours[4:], axis=0)]), rtol=1e-5)
