"""The gradient reversal layer: identity forward, −λ·g backward."""

import numpy as np
import tensorflow as tf

from acan_tf.model.grl import gradient_reversal


def test_forward_is_identity_and_backward_is_minus_scale_times_gradient():
    x = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    upstream = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    with tf.GradientTape() as tape:
        y = gradient_reversal(x, scale=0.7)
        objective = tf.reduce_sum(y * upstream)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(objective, x).numpy(), -0.7 * upstream, rtol=1e-6)


def test_scale_may_be_a_tensor():
    x = tf.Variable([1.0, 2.0])
    with tf.GradientTape() as tape:
        objective = tf.reduce_sum(gradient_reversal(x, tf.constant(2.0)))
    np.testing.assert_allclose(tape.gradient(objective, x).numpy(), [-2.0, -2.0])
