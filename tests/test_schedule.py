"""Learning-rate schedules of F and D: step decay (IV-A) and the optional linear warm-up."""

import numpy as np
import pytest

from acan_tf.config import Config, ConfigError
from acan_tf.model.builder import step_decay


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
