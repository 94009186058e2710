"""ACAN.train_step: per scheme, which variables a step updates and by how much (Eq. 13-15)."""

from acan_tf import losses

import keras
import numpy as np
import pytest
import tensorflow as tf

from acan_tf.model.acan import ACAN, adv_weight_factor
from acan_tf.model.discriminator import build_discriminator

LR_F, LR_D, LAMBDA, MARGIN = 0.05, 0.1, 0.7, 0.3


def small_encoder():
    inputs = keras.Input((12, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs / 255.0)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(6)(x))


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


def make_acan(scheme):
    keras.utils.set_random_seed(1)
    encoder = small_encoder()
    acan = ACAN(encoder, build_discriminator(6, 3, width=5), scheme=scheme, adv_weight=LAMBDA, margin=MARGIN)
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
    with tf.GradientTape() as tape:
        features = encoder(images, training=True)
        objective = losses.batch_hard_triplet_loss(features[:8], data["triplet_ids"], data["triplet_camids"], MARGIN)
        if scheme == "oce":
            objective += LAMBDA * losses.oce_loss(disc(features[8:]), data["camera_camids"])
        elif scheme == "ace":
            objective += LAMBDA * losses.ace_loss(disc(features[8:]))
        elif scheme == "grl":  # Eq. 14 without a GRL: θ_F −= μ(∂L_Triplet − λ ∂L_D)
            objective -= LAMBDA * losses.camera_cross_entropy(disc(features[8:]), data["camera_camids"])
    for var, grad in zip(encoder.trainable_variables, tape.gradient(objective, encoder.trainable_variables)):
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
