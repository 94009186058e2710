"""Learning-rate schedules of F and D: step decay (IV-A) and the optional linear warm-up."""

import keras
import numpy as np
import pytest

from acan_tf.config import Config, ConfigError
from acan_tf.model.builder import build_acan, step_decay


def rates(schedule, steps):
    return np.array([float(schedule(step)) for step in steps])


def test_warm_up_rises_linearly_then_decays_at_each_boundary():
    config = Config(lr_warmup_epochs=2, lr_decay_epochs=(3, 5), lr_decay_factor=0.1)
    steps = np.arange(0, 70)
    expected = 0.5 * np.minimum(1.0, (steps + 1) / 20) * 0.1 ** ((steps > 30).astype(int) + (steps > 50))
    np.testing.assert_allclose(rates(step_decay(0.5, config, steps_per_epoch=10), steps), expected, rtol=1e-6)


def test_without_warm_up_the_schedule_is_the_papers_step_decay():
    config = Config(lr_decay_epochs=(3,), lr_decay_factor=0.1)
    np.testing.assert_allclose(rates(step_decay(0.1, config, 10), [0, 30, 31, 99]), [0.1, 0.1, 0.01, 0.01], rtol=1e-6)
    assert step_decay(0.1, Config(lr_decay_epochs=()), 10) == 0.1


def test_a_negative_warm_up_is_refused():
    with pytest.raises(ConfigError, match="--lr_warmup_epochs=-1: expected an integer >= 0"):
        Config(lr_warmup_epochs=-1)


def test_warmup_steps_warm_up_fs_rate_over_steps_then_the_step_decay_applies():
    config = Config(warmup_steps=4, lr_decay_epochs=(2,), lr_decay_factor=0.1)
    steps = np.arange(0, 30)
    expected = 0.5 * np.minimum(1.0, (steps + 1) / 4) * 0.1 ** (steps > 20).astype(int)
    np.testing.assert_allclose(rates(step_decay(0.5, config, 10, config.warmup_steps), steps), expected, rtol=1e-6)


@pytest.mark.parametrize("name, kind", [("sgd", keras.optimizers.SGD), ("adam", keras.optimizers.Adam)])
def test_optimizer_of_f_and_d_and_only_fs_rate_warms_up(name, kind):
    config = Config(backbone="tiny", backbone_weights="none", image_height=32, image_width=16, optimizer=name,
                    warmup_steps=4, lr_pretrained=0.002, lr_new=0.01, lr_decay_epochs=(), weight_decay=1e-4)
    acan = build_acan(config, num_cameras=3, steps_per_epoch=5)
    assert type(acan.f_optimizer) is kind and type(acan.d_optimizer) is kind
    assert acan.f_optimizer.weight_decay == acan.d_optimizer.weight_decay == 1e-4
    np.testing.assert_allclose(float(acan.f_optimizer.learning_rate), 0.002 / 4, rtol=1e-6)  # step 0: 1/4 of it
    np.testing.assert_allclose(float(acan.d_optimizer.learning_rate), 0.01, rtol=1e-6)
