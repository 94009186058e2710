"""The collapse guard: the embedding spread against numpy, the guard's window, warning mode, the callback's step."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.model.acan import SPREAD_LOG, embedding_spread
from acan_tf.model.builder import build_acan
from acan_tf.training.collapse import (
    CollapseCallback,
    CollapseError,
    CollapseGuard,
    DeadDiscriminatorCallback,
    discriminator_is_dead,
)
from acan_tf.training.run_state import RunState
from tests.run_fixtures import NUM_CAMERAS, batches_dataset, training_batch


def test_spread_matches_numpy():
    features = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32) * 3.0
    expected = np.sqrt(np.mean(np.sum((features - features.mean(axis=0)) ** 2, axis=1))) / 0.3
    assert float(embedding_spread(tf.constant(features), 0.3)) == pytest.approx(expected, rel=1e-5)


def test_spread_of_equal_or_nearly_equal_embeddings():
    point = np.random.default_rng(1).normal(size=(1, 32)).astype(np.float32) * 20.0  # norm ~110
    # Equal rows: zero but for float32 rounding of the mean, far below the guard's 1e-2.
    assert float(embedding_spread(tf.constant(np.repeat(point, 8, axis=0)), 0.3)) < 1e-4
    # Distances of 1e-3 (a third of the guard's threshold) around a point of norm ~110 stay measurable.
    nudged = np.repeat(point, 8, axis=0) + np.eye(8, 32, dtype=np.float32) * 1e-3
    expected = np.sqrt(np.mean(np.sum((nudged.astype(np.float64) - nudged.mean(axis=0)) ** 2, axis=1))) / 0.3
    assert float(embedding_spread(tf.constant(nudged), 0.3)) == pytest.approx(expected, rel=0.05)
    half = tf.constant(np.repeat(point, 4, axis=0), dtype=tf.bfloat16)  # mixed precision's features
    assert embedding_spread(half, 0.3).dtype == tf.float32


def test_guard_fires_after_the_window_of_collapsed_steps():
    guard = CollapseGuard(threshold=1e-2, window=5)
    assert not guard.update(1, 3e-3)
    assert not guard.update(2, 0.5)  # a healthy step restarts the count
    for step in range(3, 7):
        assert not guard.update(step, 1e-5)
    with pytest.raises(CollapseError) as raised:
        guard.update(7, 2e-5)
    assert raised.value.step == 7
    message = str(raised.value)
    assert message.startswith("step 7: ") and "since step 3" in message and "--lr_pretrained" in message
    assert "below 0.01 margins for 5 of the last 5 steps" in raised.value.symptom and "\n" not in message


def test_a_collapsed_embedding_that_blips_above_the_threshold_is_still_caught():
    # Measured in a collapsed run: the spread is 0 but for a step now and then at 0.03 or 0.2 margins.
    guard = CollapseGuard(threshold=1e-2, window=20)
    spreads = [0.0] * 60
    spreads[5], spreads[12] = 0.2, 0.03  # steps 6 and 13
    with pytest.raises(CollapseError) as raised:
        for step, spread in enumerate(spreads, 1):
            guard.update(step, spread)
    assert raised.value.step == 20 and "for 18 of the last 20 steps, since step 1" in raised.value.symptom
    guard = CollapseGuard(threshold=1e-2, window=20)
    assert not any(guard.update(step, 0.0 if step % 2 else 1.0) for step in range(1, 100)), "half low is no collapse"


def test_guard_stays_quiet_on_healthy_spreads():
    guard = CollapseGuard()
    # The least spread measured in healthy runs (1.95 margins, the default synthetic config), with noise.
    spreads = 1.95 * np.exp(np.random.default_rng(2).normal(scale=0.5, size=2000))
    assert not any(guard.update(step, float(spread)) for step, spread in enumerate(spreads, 1))


def test_nan_is_left_to_the_loops_nan_check():
    guard = CollapseGuard(window=1)
    assert not guard.update(1, float("nan"))


def test_warning_mode_warns_once_and_does_not_raise(caplog):
    guard = CollapseGuard(threshold=1e-2, window=3, warn_only=True)
    with caplog.at_level(logging.WARNING):
        flags = [guard.update(step, 0.0) for step in range(1, 7)]
    assert flags == [False, False, True, True, True, True]
    warnings = [record.getMessage() for record in caplog.records if "collapsed" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("step 3: ")


@pytest.mark.parametrize("threshold, window", [(0.0, 5), (1e-2, 0)])
def test_guard_rejects_bad_settings(threshold, window):
    with pytest.raises(ValueError, match="threshold > 0 and a window >= 1"):
        CollapseGuard(threshold, window)


@pytest.mark.parametrize("warn_only", [False, True])
def test_callback_feeds_the_guard_at_the_runs_step_and_holds_saves_while_it_suspects(warn_only):
    run = RunState(steps_per_epoch=3, step=3, epoch=1)  # a resumed run: steps 4, 5, 6 of epoch 2, then 7, 8
    callback = CollapseCallback(CollapseGuard(threshold=1e-2, window=4, warn_only=warn_only), run)
    run.step = 4
    callback.on_train_batch_end(0, {SPREAD_LOG: 1.0})
    assert not run.hold_saves
    for step in (5, 6, 7):
        run.step = step
        callback.on_train_batch_end((step - 1) % 3, {SPREAD_LOG: 1e-4})
        assert run.hold_saves != warn_only  # a warning-only guard never holds a save
    run.step = 8
    if warn_only:
        callback.on_train_batch_end(1, {SPREAD_LOG: 1e-4})
        assert callback.guard.warned
        return
    with pytest.raises(CollapseError, match=r"^step 8: .*since step 5"):
        callback.on_train_batch_end(1, {SPREAD_LOG: 1e-4})


def test_dead_discriminator_rule_on_measured_epochs():
    assert discriminator_is_dead(1.7917616, 0.16666676, 6)  # Lite0 at --lr_new=0.01, epoch 3: dead since epoch 1
    assert not discriminator_is_dead(3.7532661, 0.2121665, 6)  # the epoch in which it died
    assert not discriminator_is_dead(1.6671326, 0.3743334, 6)  # Lite0 at --lr_new=0.001, OCE: alive
    assert not discriminator_is_dead(math.log(6), 0.5, 6)
    assert discriminator_is_dead(math.log(15), 1 / 15, 15)


def test_a_discriminator_whose_units_died_gives_f_no_gradient_and_is_reported(caplog):
    config = Config(backbone="tiny", backbone_weights="none", image_height=32, image_width=16, num_identities=2,
                    num_instances=2, camera_batch_size=NUM_CAMERAS, cross_camera="none", lr_decay_epochs=())
    acan = build_acan(config, NUM_CAMERAS, steps_per_epoch=3)
    hidden = acan.discriminator.get_layer("hidden")
    hidden.bias.assign(np.full(hidden.bias.shape, -1e4, np.float32))  # every unit off, for every input
    batch = training_batch(0, config)
    features = acan.embed(tf.constant(batch["camera_images"]), training=False)
    with tf.GradientTape() as tape:
        tape.watch(features)
        _, f_adv_term = acan._adversarial_term(features, batch["camera_camids"], 1.0)
    assert np.all(tape.gradient(f_adv_term, features).numpy() == 0.0)

    data = batches_dataset([training_batch(step, config) for step in range(3)])
    history = acan.fit(data, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0).history
    logs = {name: values[-1] for name, values in history.items()}
    assert logs["d_loss"] == pytest.approx(math.log(NUM_CAMERAS), abs=1e-5)
    run = RunState(steps_per_epoch=3)
    callback = DeadDiscriminatorCallback(NUM_CAMERAS, run)
    with caplog.at_level(logging.WARNING):
        callback.on_epoch_end(0, logs)
        run.epoch = 1
        callback.on_epoch_end(1, {"d_loss": 1.0, "d_accuracy": 0.5})
    assert caplog.text.count("D's output no longer depends on its input") == 1
    assert "epoch 1:" in caplog.text and "--lr_new" in caplog.text
