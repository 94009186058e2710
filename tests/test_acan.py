"""ACAN.train_step: per scheme, which variables a step updates and by how much (Eq. 13-15)."""

from acan_tf import losses

import keras
import numpy as np
import pytest
import tensorflow as tf

from acan_tf.model.acan import ACAN, adv_weight_factor, embedding_spread
from acan_tf.model.discriminator import build_discriminator
from acan_tf.model.encoder import BN_NECK, NECK_EPSILON, NECK_MOMENTUM, POOL
from acan_tf.model.identity_heads import CameraMemory, PerCameraClassifier

LR_F, LR_D, LAMBDA, MARGIN = 0.05, 0.1, 0.7, 0.3
W_ID = 0.4
IDS_PER_CAMERA = (4, 3, 2)  # the triplet batch holds ids 0-3 of camera 0


def small_encoder(bn_neck=False):
    inputs = keras.Input((12, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs / 255.0)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(6, name=POOL)(x)
    if bn_neck:  # as build_encoder's
        x = keras.layers.BatchNormalization(center=False, momentum=NECK_MOMENTUM, epsilon=NECK_EPSILON,
                                            name=BN_NECK)(x)
    return keras.Model(inputs, x)


def batch(seed=0, frames=None):
    rng = np.random.default_rng(seed)
    shape = (12, 6, 3) if frames is None else (frames, 12, 6, 3)
    return {
        "triplet_images": rng.uniform(0, 255, (8, *shape)).astype(np.float32),
        "triplet_ids": np.repeat(np.arange(4), 2).astype(np.int32),
        "triplet_camids": np.zeros(8, np.int32),
        "camera_images": rng.uniform(0, 255, (6, *shape)).astype(np.float32),
        "camera_camids": np.tile(np.arange(3), 2).astype(np.int32),
    }


def make_acan(scheme, identity_head=None, bn_neck=False):
    keras.utils.set_random_seed(1)
    encoder = small_encoder(bn_neck)
    acan = ACAN(encoder, build_discriminator(6, 3, width=5), scheme=scheme, adv_weight=LAMBDA, margin=MARGIN,
                identity_head=identity_head, identity_weight=W_ID)
    acan.compile(f_optimizer=keras.optimizers.SGD(LR_F), d_optimizer=keras.optimizers.SGD(LR_D))
    return acan


def manual_step(acan, data, scheme):
    """Eq. 14/15 written out: D steps on detached features, then F steps against the updated D."""
    encoder, disc = acan.encoder, acan.discriminator
    images = np.concatenate([data["triplet_images"], data["camera_images"]])
    features = encoder(images, training=True)
    camera_features = features[8:]
    with tf.GradientTape() as tape:
        d_loss = losses.camera_cross_entropy(disc(camera_features), data["camera_camids"])
    for var, grad in zip(disc.trainable_variables, tape.gradient(d_loss, disc.trainable_variables)):
        var.assign_sub(LR_D * grad)
    head = acan.identity_head
    f_variables = encoder.trainable_variables + ([] if head is None else head.trainable_variables)
    with tf.GradientTape() as tape:
        features = encoder(images, training=True)
        objective = losses.batch_hard_triplet_loss(features[:8], data["triplet_ids"], data["triplet_camids"], MARGIN)
        if isinstance(head, PerCameraClassifier):  # MATE: a linear classifier per camera
            scores = tf.matmul(features[:8], head.kernel)
        elif isinstance(head, CameraMemory):  # Precise-ICS: the memory as it was before the step
            scores = losses.memory_scores(features[:8], tf.constant(head.centres.numpy()), head.temperature)
        if head is not None:
            objective += W_ID * losses.per_camera_identity_loss(scores, data["triplet_ids"], data["triplet_camids"],
                                                                IDS_PER_CAMERA)
        if scheme == "oce":
            objective += LAMBDA * losses.oce_loss(disc(features[8:]), data["camera_camids"])
        elif scheme == "ace":
            objective += LAMBDA * losses.ace_loss(disc(features[8:]))
        elif scheme == "grl":  # Eq. 14 without a GRL: θ_F −= μ(∂L_Triplet − λ ∂L_D)
            objective -= LAMBDA * losses.camera_cross_entropy(disc(features[8:]), data["camera_camids"])
    for var, grad in zip(f_variables, tape.gradient(objective, f_variables)):
        var.assign_sub(LR_F * grad)


@pytest.mark.parametrize("scheme", ["none", "grl", "oce", "ace"])
def test_train_step_updates_f_and_d_as_the_paper(scheme):
    acan = make_acan(scheme)
    data = batch()
    before_f = [v.numpy() for v in acan.encoder.trainable_variables]
    before_d = [v.numpy() for v in acan.discriminator.trainable_variables]
    logs = acan.train_step({k: tf.constant(v) for k, v in data.items()})
    after_f = [v.numpy() for v in acan.encoder.trainable_variables]
    after_d = [v.numpy() for v in acan.discriminator.trainable_variables]
    assert all(np.any(a != b) for a, b in zip(after_f, before_f)), "every F variable moves"
    assert all(np.any(a != b) for a, b in zip(after_d, before_d)), "every D variable moves"
    assert np.isfinite(float(logs["loss"]))
    if scheme == "none":
        assert float(logs["adv_loss"]) == 0.0

    for var, value in zip(acan.encoder.trainable_variables + acan.discriminator.trainable_variables,
                          before_f + before_d):
        var.assign(value)
    manual_step(acan, data, scheme)
    for got, expected in zip(after_f + after_d,
                             acan.encoder.trainable_variables + acan.discriminator.trainable_variables):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_grl_scheme_differs_from_oce_and_none():
    updates = {}
    for scheme in ("none", "grl", "oce"):
        acan = make_acan(scheme)
        acan.train_step({k: tf.constant(v) for k, v in batch().items()})
        updates[scheme] = np.concatenate([v.numpy().ravel() for v in acan.encoder.trainable_variables])
    assert not np.allclose(updates["none"], updates["grl"])
    assert not np.allclose(updates["grl"], updates["oce"])


def test_tracklets_are_temporally_average_pooled():
    acan = make_acan("oce")
    clips = batch(frames=3)["triplet_images"]
    per_frame = acan.encoder(clips.reshape(-1, 12, 6, 3)).numpy().reshape(8, 3, -1)
    np.testing.assert_allclose(acan.embed(tf.constant(clips)).numpy(), per_frame.mean(axis=1), rtol=1e-5, atol=1e-6)
    logs = acan.train_step({k: tf.constant(v) for k, v in batch(frames=3).items()})
    assert np.isfinite(float(logs["triplet_loss"]))


def test_adv_weight_warmups():
    assert float(adv_weight_factor(5, "none", 0, 100)) == 1.0
    np.testing.assert_allclose(float(adv_weight_factor(25, "linear", 100, 1000)), 0.25)
    np.testing.assert_allclose(float(adv_weight_factor(500, "linear", 100, 1000)), 1.0)
    p = 0.3
    np.testing.assert_allclose(float(adv_weight_factor(300, "dann", 0, 1000)), 2 / (1 + np.exp(-10 * p)) - 1, rtol=1e-6)
    with pytest.raises(ValueError, match="warm-up"):
        adv_weight_factor(0, "cosine", 0, 1)


def test_unknown_scheme_lists_the_choices():
    with pytest.raises(ValueError, match="none, grl, oce, ace"):
        ACAN(small_encoder(), build_discriminator(6, 3), scheme="dann")


def random_centres(seed=3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(sum(IDS_PER_CAMERA), 6))
    return (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["classifier", "memory"])
def test_identity_loss_joins_fs_step_and_ds_step_never_touches_the_head(kind):
    if kind == "classifier":
        head = PerCameraClassifier(IDS_PER_CAMERA, 6)
    else:
        head = CameraMemory(IDS_PER_CAMERA, 6, momentum=0.5, temperature=0.05)
    acan = make_acan("oce", head)
    if kind == "memory":
        head.centres.assign(random_centres())
    data = batch()
    tensors = {k: tf.constant(v) for k, v in data.items()}
    assert [id(v) for v in acan.f_variables] == [id(v) for v in acan.encoder.trainable_variables
                                                 + head.trainable_variables]
    head_before = [v.numpy() for v in head.weights]

    # D's step alone: D moves, the head does not.
    d_before = [v.numpy() for v in acan.discriminator.trainable_variables]
    acan._discriminator_step(acan.embed(tensors["camera_images"]), tensors["camera_camids"], 1.0)
    assert all(np.any(v.numpy() != b) for v, b in zip(acan.discriminator.trainable_variables, d_before))
    assert all(np.array_equal(v.numpy(), b) for v, b in zip(head.weights, head_before))
    for var, value in zip(acan.discriminator.trainable_variables, d_before):
        var.assign(value)

    features = acan.embed(tensors["triplet_images"]).numpy()  # what the step's memory update sees
    before = [v.numpy() for v in acan.f_variables + acan.discriminator.trainable_variables]
    logs = acan.train_step(tensors)
    after = [v.numpy() for v in acan.f_variables + acan.discriminator.trainable_variables]
    assert all(np.any(a != b) for a, b in zip(after, before)), "every F, head and D variable moves"
    assert float(logs["identity_loss"]) > 0.0
    np.testing.assert_allclose(float(logs["loss"]), float(logs["triplet_loss"]) + LAMBDA * float(logs["adv_loss"])
                               + W_ID * float(logs["identity_loss"]), rtol=1e-5)
    if kind == "memory":
        moved = head.centres.numpy()
        unit = features / np.linalg.norm(features, axis=1, keepdims=True)
        for local in range(4):  # the batch's ids are rows 0-3 (camera 0); the other cameras' rows stay
            mean = unit[data["triplet_ids"] == local].mean(axis=0)
            expected = 0.5 * head_before[0][local] + 0.5 * mean
            np.testing.assert_allclose(moved[local], expected / np.linalg.norm(expected), rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(moved[4:], head_before[0][4:])
        head.centres.assign(head_before[0])  # the manual step scores against the memory before the step

    for var, value in zip(acan.f_variables + acan.discriminator.trainable_variables, before):
        var.assign(value)
    manual_step(acan, data, "oce")
    for got, expected in zip(after, acan.f_variables + acan.discriminator.trainable_variables):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-6)


def test_bn_neck_triplet_and_adversarial_see_features_before_it_identity_and_embedding_after():
    acan = make_acan("oce", PerCameraClassifier(IDS_PER_CAMERA, 6), bn_neck=True)
    data = batch()
    tensors = {k: tf.constant(v) for k, v in data.items()}
    pooled_model = keras.Model(acan.encoder.input, acan.encoder.get_layer(POOL).output)
    images = np.concatenate([data["triplet_images"], data["camera_images"]])
    pooled = pooled_model(images).numpy().astype(np.float64)
    kernel = acan.identity_head.kernel.numpy()
    gamma = acan.encoder.get_layer(BN_NECK).gamma.numpy()
    d_loss_before = losses.camera_cross_entropy(acan.discriminator(pooled[8:]), data["camera_camids"])
    logs = acan.train_step(tensors)

    expected_triplet = losses.batch_hard_triplet_loss(pooled[:8], data["triplet_ids"], data["triplet_camids"], MARGIN)
    np.testing.assert_allclose(float(logs["triplet_loss"]), float(expected_triplet), rtol=1e-4)
    np.testing.assert_allclose(float(logs["embedding_spread"]), float(embedding_spread(pooled[:8], MARGIN)), rtol=1e-4)
    # D's loss (before its step) and L_MCAL (against the D just updated) are on the pooled camera batch.
    camids = data["camera_camids"]
    np.testing.assert_allclose(float(logs["d_loss"]), float(d_loss_before), rtol=1e-4)
    np.testing.assert_allclose(float(logs["adv_loss"]),
                               float(losses.oce_loss(acan.discriminator(pooled[8:]), camids)), rtol=1e-4)
    # In training, the BN-neck normalises with the statistics of the whole step's batch (triplet + camera).
    normalised = (pooled - pooled.mean(0)) / np.sqrt(pooled.var(0) + NECK_EPSILON) * gamma
    expected_identity = losses.per_camera_identity_loss(normalised[:8] @ kernel, data["triplet_ids"],
                                                        data["triplet_camids"], IDS_PER_CAMERA)
    np.testing.assert_allclose(float(logs["identity_loss"]), float(expected_identity), rtol=1e-4)

    neck = acan.encoder.get_layer(BN_NECK)
    np.testing.assert_allclose(neck.moving_mean.numpy(), (1 - NECK_MOMENTUM) * pooled.mean(0), rtol=1e-4, atol=1e-6)
    # At inference, F's embedding (what evaluation, association and export use) is after the neck.
    pooled_now = pooled_model(data["triplet_images"]).numpy()
    expected = (pooled_now - neck.moving_mean.numpy()) / np.sqrt(neck.moving_variance.numpy() + NECK_EPSILON)
    np.testing.assert_allclose(acan.embed(tf.constant(data["triplet_images"])).numpy(),
                               expected * neck.gamma.numpy(), rtol=1e-4, atol=1e-5)


def test_without_an_identity_loss_the_bn_necks_scale_stays_and_the_rest_of_f_trains():
    acan = make_acan("oce", bn_neck=True)
    gamma = acan.encoder.get_layer(BN_NECK).gamma
    before = [v.numpy() for v in acan.encoder.trainable_variables]
    acan.train_step({k: tf.constant(v) for k, v in batch().items()})
    moved = {v.path: np.any(v.numpy() != b) for v, b in zip(acan.encoder.trainable_variables, before)}
    assert moved == {v.path: v is not gamma for v in acan.encoder.trainable_variables}


def test_with_a_bn_neck_the_collapse_guard_still_sees_a_collapsed_embedding():
    # The BN-neck divides each dimension by its batch deviation (floored by its epsilon): after it, nearly equal
    # features are spread hundreds of times wider. The guard's spread is measured before it, so a collapse stays
    # visible.
    acan = make_acan("oce", bn_neck=True)
    pool = acan.encoder.get_layer(POOL)
    rng = np.random.default_rng(0)
    pool.kernel.assign(rng.normal(scale=1e-5, size=pool.kernel.shape).astype(np.float32))
    pool.bias.assign(np.ones(pool.bias.shape, np.float32))
    logs = acan.train_step({k: tf.constant(v) for k, v in batch().items()})
    spread = float(logs["embedding_spread"])
    assert spread < 1e-2  # the guard's threshold (acan_tf.training.collapse)
    _, after_neck = acan.features_and_embedding(tf.constant(batch()["triplet_images"]), training=True)
    assert float(embedding_spread(after_neck, MARGIN)) > 100 * spread
