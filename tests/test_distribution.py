"""ACAN's train_step under MirroredStrategy on two logical CPUs equals one step on one device.

Runs in a subprocess: logical devices must be configured before TensorFlow initialises.
"""

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import acan_tf
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from acan_tf.model.acan import ACAN
    from acan_tf.model.discriminator import build_discriminator

    def build(scheme):
        keras.utils.set_random_seed(3)
        inputs = keras.Input((12, 6, 3))
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs / 255.0)
        encoder = keras.Model(inputs, keras.layers.Dense(6)(keras.layers.GlobalAveragePooling2D()(x)))
        acan = ACAN(encoder, build_discriminator(6, 3, 5), scheme=scheme, adv_weight=0.8)
        acan.compile(keras.optimizers.SGD(0.05, momentum=0.9), keras.optimizers.SGD(0.1, momentum=0.9))
        return acan

    rng = np.random.default_rng(0)
    # The global triplet batch: replica 0 gets identities of camera 0, replica 1 those of camera 1, so
    # replica-local mining inside a camera sees the same triplets as one device does.
    batch = {
        "triplet_images": rng.uniform(0, 255, (16, 12, 6, 3)).astype("float32"),
        "triplet_ids": np.repeat(np.arange(8) % 4, 2).astype("int32"),
        "triplet_camids": np.repeat([0, 1], 8).astype("int32"),
        "camera_images": rng.uniform(0, 255, (6, 12, 6, 3)).astype("float32"),
        "camera_camids": np.tile(np.arange(3), 2).astype("int32"),
    }
    data = tf.data.Dataset.from_tensors(batch).repeat()
    results = {}
    for scheme in ("none", "grl", "oce", "ace"):
        single = build(scheme)
        single.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            mirrored = build(scheme)
        mirrored.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
        assert strategy.num_replicas_in_sync == 2
        diffs = [np.max(np.abs(a.numpy() - b.numpy()))
                 for a, b in zip(single.trainable_variables, mirrored.trainable_variables)]
        moved = max(np.max(np.abs(a.numpy() - b))
                    for a, b in zip(single.trainable_variables, [v.numpy() for v in build(scheme).trainable_variables]))
        print(scheme, "max_diff", max(diffs), "moved", moved)
    """
)


@pytest.mark.slow  # a subprocess with two logical CPUs
def test_two_replica_steps_equal_one_device_steps():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line.split() for line in result.stdout.splitlines() if "max_diff" in line]
    assert [line[0] for line in lines] == ["none", "grl", "oce", "ace"]
    for scheme, _, diff, _, moved in lines:
        assert float(moved) > 1e-3, f"{scheme}: the steps must change the weights for the comparison to mean anything"
        assert float(diff) < 1e-5, f"{scheme}: mirrored and single-device weights differ by {diff}"
