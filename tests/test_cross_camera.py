"""The cross-camera stage: the pseudo-identity sampler and third batch, its loss in ACAN.train_step, association
rounds from features and camera-local ids only, the supervised ceiling, and the intra-camera guarantee."""

import dataclasses

from acan_tf import losses

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from acan_tf.config import Config, ConfigError
from acan_tf.data.pipeline import Augmentation, TrainingBatches, training_dataset
from acan_tf.data.records import ImageRecord
from acan_tf.data.sampling import PseudoIdentitySampler, SamplingError, training_set
from acan_tf.model.acan import ACAN
from acan_tf.model.discriminator import build_discriminator
from acan_tf.training.cross_camera import (
    CrossCameraStage,
    CrossCameraState,
    describe_stages,
    is_round_epoch,
    make_round,
    supervised_ids,
)
from acan_tf.training.trainer import run
from tests.test_losses import numpy_batch_hard
from tests.tiny_runs import tiny_config

NO_AUGMENTATION = Augmentation(flip=False, pad=0, random_erasing=0.0)
NUM_CAMERAS, NUM_PEOPLE = 3, 6


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Every person seen by every camera, twice, with a colour of their own and a cast per camera."""
    folder = tmp_path_factory.mktemp("people")
    rng = np.random.default_rng(0)
    colours = rng.uniform(40, 215, (NUM_PEOPLE, 3))
    records = []
    for camid in range(NUM_CAMERAS):
        for pid in range(NUM_PEOPLE):
            for k in range(2):
                pixels = np.clip(colours[pid] + 10 * camid + rng.normal(0, 3, (16, 8, 3)), 0, 255).astype(np.uint8)
                path = folder / f"{pid:04d}_c{camid + 1}_{k}.png"
                Image.fromarray(pixels).save(path)
                records.append(ImageRecord(str(path), pid, camid))
    return records


def mean_colour(frames: tf.Tensor) -> tf.Tensor:
    """A fixed 'F': the mean colour, minus grey so that directions differ."""
    return tf.reduce_mean(frames, axis=[1, 2]) - 127.5


def config(**overrides) -> Config:
    settings = dict(image_height=32, image_width=16, eval_batch_size=8, num_identities=4, num_instances=2, epochs=3,
                    cross_camera="association", association_threshold=0.0)
    return Config(**{**settings, **overrides})


def test_pseudo_sampler_draws_p_identities_by_k_items_across_cameras():
    pseudo = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, -1, -1])
    camids = np.array([0, 0, 1, 1, 0, 1, 2, 2, 1, 2, 0, 1])
    sampler = PseudoIdentitySampler(pseudo, camids, num_identities=3, num_instances=4)
    for seed in range(5):
        batch = sampler.next(np.random.default_rng(seed))
        assert batch.shape == (12,)
        groups = pseudo[batch].reshape(3, 4)
        assert (groups == groups[:, :1]).all(), "identity by identity, K items each"
        assert sorted(groups[:, 0]) == [0, 1, 2]
        for row in batch.reshape(3, 4):
            assert len(set(camids[row])) >= 2, "positives come from other cameras"
    with pytest.raises(SamplingError, match="1 cross-camera pseudo-identities"):
        PseudoIdentitySampler(np.array([0, 0, -1]), np.array([0, 1, 1]), 2, 2)


def test_third_batch_leaves_the_first_two_unchanged(people):
    train = training_set(people, min_ids=4)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, 4, 2, 6, 1, seed=3)
    with_pseudo = batches.with_pseudo_ids(supervised_ids(train))
    plain = list(training_dataset(batches, 16, 8, NO_AUGMENTATION).take(2))
    third = list(training_dataset(with_pseudo, 16, 8, NO_AUGMENTATION).take(2))
    for a, b in zip(plain, third):
        for key in a:
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
        assert b["pseudo_images"].shape == (8, 16, 8, 3)
        ids = b["pseudo_ids"].numpy().reshape(4, 2)
        assert (ids == ids[:, :1]).all() and len(set(ids[:, 0])) == 4
    (without,) = training_dataset(with_pseudo.with_pseudo_ids(None), 16, 8, NO_AUGMENTATION).take(1)
    assert "pseudo_images" not in without


def step_data(seed, weights=None):
    """One train-step batch of 4x2 images: triplets from camera 0, both cameras, three pseudo-identities (with
    `weights`, their link confidences)."""
    rng = np.random.default_rng(seed)
    data = {
        "triplet_images": rng.uniform(0, 255, (4, 4, 2, 3)).astype(np.float32),
        "triplet_ids": np.array([0, 0, 1, 1], np.int32), "triplet_camids": np.zeros(4, np.int32),
        "camera_images": rng.uniform(0, 255, (2, 4, 2, 3)).astype(np.float32),
        "camera_camids": np.array([0, 1], np.int32),
        "pseudo_images": rng.uniform(0, 255, (6, 4, 2, 3)).astype(np.float32),
        "pseudo_ids": np.array([5, 5, 8, 8, 9, 9], np.int32),
    }
    return data if weights is None else {**data, "pseudo_weights": np.asarray(weights, np.float32)}


def test_train_step_adds_the_weighted_cross_camera_triplet_loss():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4, 2, 3))
    encoder = keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(inputs / 255.0)))
    data = step_data(0)
    acan = ACAN(encoder, build_discriminator(5, 2, width=3), scheme="none", pseudo_weight=0.5)
    acan.compile(f_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    pseudo_features = encoder(data["pseudo_images"]).numpy()
    triplet_features = encoder(data["triplet_images"]).numpy()
    logs = {name: float(value) for name, value in acan.train_step(data).items()}
    expected_pseudo = numpy_batch_hard(pseudo_features, data["pseudo_ids"], np.zeros(6), 0.3)
    expected_triplet = numpy_batch_hard(triplet_features, data["triplet_ids"], data["triplet_camids"], 0.3)
    assert logs["pseudo_loss"] == pytest.approx(expected_pseudo, rel=1e-5)
    assert logs["loss"] == pytest.approx(expected_triplet + 0.5 * expected_pseudo, rel=1e-5)
    no_stage = ACAN(encoder, build_discriminator(5, 2, width=3), scheme="none")
    assert "pseudo_loss" not in no_stage.metrics_names and "pseudo_loss" not in [m.name for m in no_stage.metrics]


def test_association_round_links_each_person_across_cameras(people):
    train = training_set(people, min_ids=4)
    made = make_round(config(), train, mean_colour, epoch=1, step=10)
    ids, record = made.pseudo_ids, made.record
    assert record["epoch"] == 2 and record["step"] == 10
    assert record["pair_precision"] == 1.0 and record["pair_recall"] == 1.0
    assert record["num_components"] == NUM_PEOPLE
    true = np.array([r.pid for r in train.records])
    for pseudo in np.unique(ids):
        assert len(set(true[ids == pseudo])) == 1
    made = make_round(config(association_threshold=1.0), train, mean_colour, epoch=1, step=10)
    strict, record = made.pseudo_ids, made.record
    assert strict is None and record["num_components"] < 2


def test_unrelated_ids_across_cameras_change_no_association_batch_or_loss(people):
    # The tracker's ids mean nothing across cameras: the association must be made from features alone.
    relabelled = [dataclasses.replace(r, pid=1000 * (r.camid + 1) + (7 * r.pid) % NUM_PEOPLE) for r in people]
    outcomes = []
    for records in (people, relabelled):
        train = training_set(records, min_ids=4)
        ids = make_round(config(), train, mean_colour, epoch=1, step=0).pseudo_ids
        batches = TrainingBatches(train.records, train.local_ids, train.classes, 4, 2, 6, 1, seed=0)
        stream = training_dataset(batches.with_pseudo_ids(ids), 16, 8, NO_AUGMENTATION)
        outcomes.append((ids, [{k: v.numpy() for k, v in b.items()} for b in stream.take(2)]))
    (ids_a, batches_a), (ids_b, batches_b) = outcomes
    np.testing.assert_array_equal(ids_a, ids_b)
    for a, b in zip(batches_a, batches_b):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        features = mean_colour(tf.constant(a["pseudo_images"]))
        assert float(losses.cross_camera_triplet_loss(features, a["pseudo_ids"])) == float(
            losses.cross_camera_triplet_loss(mean_colour(tf.constant(b["pseudo_images"])), b["pseudo_ids"]))


def test_rounds_run_at_the_flagged_epochs_and_the_state_round_trips(people):
    settings = config(epochs=8, association_first_epoch=3, association_every=2)
    assert [epoch for epoch in range(8) if is_round_epoch(settings, epoch)] == [2, 4, 6]
    assert not any(is_round_epoch(dataclasses.replace(settings, cross_camera="none"), e) for e in range(8))
    train = training_set(people, min_ids=4)
    stage = CrossCameraStage(settings, train, None, lambda ids: ids)
    state = stage.associate(stage.start(CrossCameraState(None)), mean_colour, epoch=2, step=40)
    restored = CrossCameraState.from_json(state.to_json())
    np.testing.assert_array_equal(restored.pseudo_ids, state.pseudo_ids)
    assert restored.rounds == state.rounds and len(restored.rounds) == 1


def test_supervised_mode_uses_the_true_ids_and_says_so(people):
    train = training_set(people, min_ids=4)
    settings = config(cross_camera="supervised")
    state = CrossCameraStage(settings, train, None, lambda ids: ids).start(CrossCameraState(None))
    true = np.array([r.pid for r in train.records])
    assert len(np.unique(state.pseudo_ids)) == NUM_PEOPLE
    for pseudo in np.unique(state.pseudo_ids):
        assert len(set(true[state.pseudo_ids == pseudo])) == 1
    assert "SUPERVISED" in describe_stages(settings) and "true cross-camera labels" in describe_stages(settings)
    assert "association" not in describe_stages(Config(cross_camera="none"))
    assert "cross-camera association" in describe_stages(Config()), "the default run associates"


@pytest.mark.parametrize("flags, message", [
    (dict(association_threshold=1.5), "--association_threshold=1.5: expected a cosine similarity in"),
    (dict(association_first_epoch=4), "--association_first_epoch=4: expected an epoch in 1..--epochs=3"),
    (dict(association_every=0), "--association_every=0: expected an integer >= 1"),
    (dict(association_weight=-1.0), "--association_weight=-1.0: expected a number >= 0"),
])
def test_impossible_association_flags_fail_before_training(flags, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(".", r"\.")):
        config(**flags)


def test_a_run_whose_rounds_find_no_component_trains_on_without_the_third_batch(tiny_tree, tmp_path, caplog):
    # A cosine of 1 between centred proxies links nothing: the round says so and the run goes on as plain ACAN.
    config = tiny_config(tiny_tree, str(tmp_path / "run"), cross_camera="association", association_threshold=1.0)
    with caplog.at_level("WARNING"):
        report = run(config)
    assert [r["num_components"] for r in report["association"]] == [0]
    assert report["history"]["pseudo_loss"] == [0.0, 0.0] and np.isfinite(report["final"]["mAP"])
    assert any("training continues without the pseudo-identity batch" in r.getMessage() for r in caplog.records)


def test_a_config_saved_before_the_stage_existed_reads_as_acan_without_it():
    saved = {name: value for name, value in Config().to_json().items() if not name.startswith(("association_",))}
    del saved["cross_camera"]
    assert Config.from_json(saved).cross_camera == "none"
    assert Config.from_json(Config().to_json()).cross_camera == "association"


def camera_centering_data():
    """A step's batches: the triplet batch of camera 0, the camera batch and pseudo batch of cameras 0 and 1."""
    rng = np.random.default_rng(4)
    return {
        "triplet_images": rng.uniform(0, 255, (4, 4, 2, 3)).astype(np.float32),
        "triplet_ids": np.array([0, 0, 1, 1], np.int32), "triplet_camids": np.zeros(4, np.int32),
        "camera_images": rng.uniform(0, 255, (6, 4, 2, 3)).astype(np.float32),
        "camera_camids": np.array([0, 1, 0, 1, 0, 1], np.int32),
        "pseudo_images": rng.uniform(0, 255, (6, 4, 2, 3)).astype(np.float32),
        "pseudo_ids": np.array([5, 5, 8, 8, 9, 9], np.int32), "pseudo_camids": np.array([0, 1, 1, 0, 0, 1], np.int32),
    }


def linear_encoder():
    keras.utils.set_random_seed(2)
    inputs = keras.Input((4, 2, 3))
    return keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(inputs / 255.0)))


def test_camera_centering_gives_d_and_the_cross_camera_loss_camera_centred_features():
    encoder, data = linear_encoder(), camera_centering_data()
    discriminator = build_discriminator(5, 2, width=3)
    acan = ACAN(encoder, discriminator, scheme="oce", pseudo_weight=0.5, camera_centering=True)
    acan.compile(f_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    camera = encoder(data["camera_images"]).numpy().astype(np.float64)
    pseudo = encoder(data["pseudo_images"]).numpy().astype(np.float64)
    triplet = encoder(data["triplet_images"]).numpy()
    means = np.stack([camera[data["camera_camids"] == c].mean(0) for c in (0, 1)])
    centred_camera = camera - means[data["camera_camids"]]
    centred_pseudo = pseudo - means[data["pseudo_camids"]]
    logits = discriminator(centred_camera.astype(np.float32)).numpy()
    logs = {name: float(value) for name, value in acan.train_step(data).items()}
    assert logs["pseudo_loss"] == pytest.approx(numpy_batch_hard(centred_pseudo, data["pseudo_ids"], np.zeros(6), 0.3),
                                                rel=1e-5)
    assert logs["d_loss"] == pytest.approx(float(losses.camera_cross_entropy(logits, data["camera_camids"])), rel=1e-5)
    assert logs["adv_loss"] == pytest.approx(float(losses.oce_loss(logits, data["camera_camids"])), rel=1e-5)
    assert logs["triplet_loss"] == pytest.approx(
        numpy_batch_hard(triplet, data["triplet_ids"], data["triplet_camids"], 0.3), rel=1e-5)
    # Without the flag, D sees the features as they are.
    plain = ACAN(encoder, discriminator, scheme="oce", pseudo_weight=0.5)
    plain.compile(f_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
    raw_logits = discriminator(camera.astype(np.float32)).numpy()
    assert float(plain.train_step(data)["d_loss"]) == pytest.approx(
        float(losses.camera_cross_entropy(raw_logits, data["camera_camids"])), rel=1e-5)


def test_camera_centering_makes_the_cross_camera_loss_blind_to_a_camera_offset():
    # A bias only camera 1's images carry: every feature of camera 1 moves by one vector.
    encoder = linear_encoder()
    data = camera_centering_data()
    shifted = dict(data)
    bright = np.zeros((4, 2, 3), np.float32)
    bright[..., 0] = 40.0
    for key, camids in (("camera_images", "camera_camids"), ("pseudo_images", "pseudo_camids"),
                        ("triplet_images", "triplet_camids")):
        shifted[key] = data[key] + bright * (data[camids] == 1)[:, None, None, None]

    def pseudo_loss(batch, centering):
        acan = ACAN(encoder, build_discriminator(5, 2, width=3), scheme="none", pseudo_weight=1.0,
                    camera_centering=centering)
        acan.compile(f_optimizer=keras.optimizers.SGD(0.0), d_optimizer=keras.optimizers.SGD(0.0))
        return float(acan.train_step(batch)["pseudo_loss"])

    assert pseudo_loss(shifted, True) == pytest.approx(pseudo_loss(data, True), rel=1e-5)
    assert abs(pseudo_loss(shifted, False) - pseudo_loss(data, False)) > 0.05


def test_the_pseudo_batch_carries_its_cameras(people):
    train = training_set(people, min_ids=4)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, 4, 2, 6, 1, seed=3)
    with_pseudo = batches.with_pseudo_ids(supervised_ids(train))
    (batch,) = training_dataset(with_pseudo, 16, 8, NO_AUGMENTATION).take(1)
    items, _ = with_pseudo.indices(0)
    np.testing.assert_array_equal(batch["pseudo_camids"].numpy(), with_pseudo.camids[items[-with_pseudo.pseudo_size:]])
