"""Run guards and precision: a NaN or Inf loss stops training at its step and keeps the last good state;
--mixed_precision computes F in a low-precision dtype with float32 features and losses; --jit_compile."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from acan_tf.model.builder import build_acan
from acan_tf.training.loop import use_jit_compile
from acan_tf.training.state import TrainingState, read_progress
from acan_tf.training.trainer import RunError, run
from tests.run_fixtures import training_batch
from tests.tiny_runs import h5_arrays, make_tree, tiny_config


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_tree(str(tmp_path_factory.mktemp("guards") / "tree"))


def test_a_diverging_run_stops_at_the_step_whose_loss_is_not_finite(tree, tmp_path):
    out = tmp_path / "run"
    # A learning rate of 1e30 makes the weights overflow within a few steps.
    config = tiny_config(tree, str(out), lr_pretrained=1e30, epochs=1, steps_per_epoch=8, checkpoint_every_steps=1,
                         lr_decay_epochs=())
    with pytest.raises(RunError) as caught:
        run(config)
    message = str(caught.value)
    found = re.search(r"step (\d+): (loss|triplet_loss|d_loss|adv_loss) is (nan|inf|-inf) \(loss=", message)
    assert found, message
    step = int(found.group(1))
    assert step >= 2, "the first step starts from finite weights; the test needs a state saved before the failure"
    assert f"training stopped. The last good state, step {step - 1}, is intact" in message
    assert read_progress(str(out))["step"] == step - 1 and not (out / "report.json").exists()
    state = TrainingState(build_acan(config, num_cameras=3, steps_per_epoch=8))
    state.restore(str(out))
    assert all(np.all(np.isfinite(v)) for v in state.acan.weights), "the state kept is finite"


@pytest.mark.slow  # several tiny runs
def test_bfloat16_computes_f_in_bfloat16_with_float32_features_and_losses(tree, tmp_path):
    config = tiny_config(tree, str(tmp_path / "run"), mixed_precision="bfloat16", epochs=1, steps_per_epoch=2)
    acan = build_acan(config, num_cameras=3, steps_per_epoch=2)
    conv = acan.encoder.get_layer("tiny").get_layer("conv0")
    assert (conv.compute_dtype, conv.variable_dtype) == ("bfloat16", "float32")
    assert acan.embed(tf.zeros([2, 32, 16, 3])).dtype == tf.float32
    assert acan.discriminator.get_layer("camera_logits").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32", "the global policy is put back after building"

    report = run(config)
    assert np.all(np.isfinite(report["history"]["loss"]))
    # The weight file has a float32 run's layout: export and evaluation can load it into a float32 model.
    float32 = build_acan(tiny_config(tree, str(tmp_path / "x")), num_cameras=3, steps_per_epoch=2)
    float32.load_weights(str(tmp_path / "run" / "checkpoints" / "last.weights.h5"))


def first_applied_update(mixed_precision: str, tmp_path) -> list[np.ndarray]:
    """F's weight change from the first step its optimizer applies (float16 skips steps until the loss scale fits)."""
    config = tiny_config(str(tmp_path), str(tmp_path), mixed_precision=mixed_precision, scheme="none", momentum=0.0,
                         weight_decay=0.0, lr_decay_epochs=())
    keras.utils.set_random_seed(config.seed)  # both precisions start from the same weights
    acan = build_acan(config, num_cameras=3, steps_per_epoch=5)
    before = [np.array(v) for v in acan.encoder.trainable_weights]
    batch = {key: tf.constant(value) for key, value in training_batch(0, config).items()}
    optimizer = getattr(acan.f_optimizer, "inner_optimizer", acan.f_optimizer)
    for _ in range(5):
        acan.train_step(batch)
        if int(optimizer.iterations.numpy()) == 1:
            return [np.array(v) - b for v, b in zip(acan.encoder.trainable_weights, before)]
    raise AssertionError("no step was applied in 5")


def test_float16_scales_the_loss_and_takes_the_float32_step(tmp_path):
    config = tiny_config(str(tmp_path), str(tmp_path), mixed_precision="float16")
    assert isinstance(build_acan(config, num_cameras=3, steps_per_epoch=5).f_optimizer,
                      keras.optimizers.LossScaleOptimizer)
    float32, float16 = first_applied_update("none", tmp_path), first_applied_update("float16", tmp_path)
    for exact, low in zip(float32, float16):
        # float16 arithmetic in a small network: about 10% of the update (observed 9%), not a factor 2**15.
        assert np.linalg.norm(low - exact) < 0.25 * np.linalg.norm(exact)


@pytest.mark.slow  # several tiny runs
def test_jit_compile_is_off_on_a_cpu_unless_asked_and_takes_the_same_steps(tree, tmp_path):
    assert not use_jit_compile("auto") and use_jit_compile("on") and not use_jit_compile("off")
    weights = {}
    for setting in ("off", "on"):
        run(tiny_config(tree, str(tmp_path / setting), jit_compile=setting, epochs=1, steps_per_epoch=2))
        weights[setting] = h5_arrays(str(tmp_path / setting / "checkpoints" / "last.weights.h5"))
    worst = max(float(np.max(np.abs(weights["on"][name] - weights["off"][name]))) for name in weights["off"])
    assert worst < 1e-4, f"XLA and the default kernels differ by {worst}"
