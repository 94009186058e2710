"""The gradient reversal layer (Ganin & Lempitsky), used by the GRL scheme (Eq. 14)."""

from __future__ import annotations

import tensorflow as tf


def gradient_reversal(x: tf.Tensor, scale: float | tf.Tensor = 1.0) -> tf.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by −scale in the backward pass."""
    scale = tf.convert_to_tensor(scale, dtype=x.dtype)

    @tf.custom_gradient
    def _reverse(inputs: tf.Tensor):
        def grad(upstream: tf.Tensor) -> tf.Tensor:
            return -scale * upstream

        return tf.identity(inputs), grad

    return _reverse(x)
