"""Builds ACAN and its optimizers from a Config, in the compute precision of --mixed_precision."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Iterator, Sequence

import keras

from acan_tf.config import Config
from acan_tf.model.acan import ACAN
from acan_tf.model.discriminator import build_discriminator
from acan_tf.model.encoder import BN_NECK, POOL, build_encoder
from acan_tf.model.identity_heads import build_identity_head
from acan_tf.run_dir import RunDir, RunDirectoryError

# --mixed_precision → Keras dtype policy: variables stay float32, layers compute in the policy's dtype.
DTYPE_POLICIES = {"none": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras' global dtype policy set to `name` while the block builds layers, then put back."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """A rate rising linearly over `warmup_steps` steps, multiplied by `factor` at each step of `boundaries`."""

    def __init__(self, base_rate: float, warmup_steps: int, boundaries: list[int], factor: float):
        self.base_rate, self.warmup_steps, self.boundaries, self.factor = base_rate, warmup_steps, boundaries, factor

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        # After a boundary, as keras.optimizers.schedules.PiecewiseConstantDecay (the schedule without warm-up).
        decays = sum(keras.ops.cast(step > boundary, "float32") for boundary in self.boundaries)
        rate = self.base_rate * keras.ops.power(self.factor, decays)
        if self.warmup_steps:  # the first step (0) already moves: (step + 1) / warmup_steps
            rate = rate * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return rate

    def get_config(self) -> dict:
        return {"base_rate": self.base_rate, "warmup_steps": self.warmup_steps, "boundaries": self.boundaries,
                "factor": self.factor}


def step_decay(
    base_rate: float, config: Config, steps_per_epoch: int, warmup_steps: int | None = None
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`base_rate` after `warmup_steps` (default: --lr_warmup_epochs) of linear warm-up, multiplied by
    --lr_decay_factor at each of --lr_decay_epochs (IV-A: ×0.1 at 100 and 200; the paper has no warm-up)."""
    warmup = config.lr_warmup_epochs * steps_per_epoch if warmup_steps is None else warmup_steps
    if not config.lr_decay_epochs and not warmup:
        return base_rate
    boundaries = [epoch * steps_per_epoch for epoch in config.lr_decay_epochs]
    if not warmup:  # exactly the schedule runs made before the warm-up existed
        values = [base_rate * config.lr_decay_factor**i for i in range(len(boundaries) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    return WarmupStepDecay(base_rate, warmup, boundaries, config.lr_decay_factor)


def build_optimizer(
    config: Config, rate: float | keras.optimizers.schedules.LearningRateSchedule
) -> keras.optimizers.Optimizer:
    """--optimizer at `rate`, with --weight_decay (decoupled), loss-scaled under --mixed_precision=float16."""
    weight_decay = config.weight_decay or None
    if config.optimizer == "adam":
        optimizer = keras.optimizers.Adam(rate, weight_decay=weight_decay)
    else:
        optimizer = keras.optimizers.SGD(rate, momentum=config.momentum, weight_decay=weight_decay)
    return keras.optimizers.LossScaleOptimizer(optimizer) if config.mixed_precision == "float16" else optimizer


def build_acan(
    config: Config, num_cameras: int, steps_per_epoch: int, ids_per_camera: Sequence[int] | None = None
) -> ACAN:
    """A compiled ACAN: F (--optimizer at --lr_pretrained, --warmup_steps) and D (at --lr_new), both with step decay.

    `ids_per_camera` (camera-local ids of each of D's camera classes) sizes the head of --intra_id_loss.

    Initialised from Keras' global RNG: the trainer seeds it once with --seed before calling this.
    With --mixed_precision, F's layers compute in bfloat16 or float16 but its features leave it in float32, and D
    stays in float32: the losses (and the triplet loss's 1e-12 distance floor, which float16 flushes to zero) are
    float32. With float16, both optimizers scale the loss dynamically against gradient underflow.
    """
    with dtype_policy(DTYPE_POLICIES[config.mixed_precision]):
        encoder = build_encoder(config.backbone, config.image_height, config.image_width, config.backbone_weights,
                                config.bn_neck)
    if config.mixed_precision != "none":
        # The pooling layer (and the BN-neck) cast their input, so the architecture and weight files stay those of a
        # float32 run.
        for name in (POOL, BN_NECK) if config.bn_neck else (POOL,):
            encoder.get_layer(name).dtype_policy = "float32"
    discriminator = build_discriminator(encoder.output_shape[-1], num_cameras, config.disc_width)
    teacher = None
    if config.association_teacher_momentum:  # CMT's mean teacher, starting from F's initial weights
        teacher = keras.models.clone_model(encoder)
        teacher.set_weights(encoder.get_weights())
    acan = ACAN(
        encoder,
        discriminator,
        scheme=config.scheme,
        adv_weight=config.adv_weight,
        margin=config.margin,
        warmup=config.adv_warmup,
        warmup_steps=config.adv_warmup_epochs * steps_per_epoch,
        total_steps=config.epochs * steps_per_epoch,
        pseudo_weight=None if config.cross_camera == "none" else config.association_weight,
        camera_centering=config.camera_centering,
        teacher=teacher,
        teacher_momentum=config.association_teacher_momentum,
        identity_head=build_identity_head(config, ids_per_camera, encoder.output_shape[-1]),
        identity_weight=config.intra_id_weight,
    )
    f_rate = step_decay(config.lr_pretrained, config, steps_per_epoch, config.warmup_steps or None)
    d_rate = step_decay(config.lr_new, config, steps_per_epoch)
    acan.compile(f_optimizer=build_optimizer(config, f_rate), d_optimizer=build_optimizer(config, d_rate))
    return acan


def load_run(run_dir: str, which: str = "best") -> tuple[Config, ACAN, dict]:
    """(config, ACAN in float32 with the checkpoint's weights, run.json) of a training run, from its folder alone."""
    folder = RunDir(run_dir)
    config = folder.read_config()
    info = folder.read_info()
    path = folder.checkpoint(which)
    if not os.path.isfile(path):
        raise RunDirectoryError(f"{path} not found: the run has no {which!r} checkpoint yet")
    # Rebuilt in float32 whatever --mixed_precision the run trained with: the variables are float32 under every
    # policy, and evaluation, TF Serving and ONNX Runtime's CPU kernels then need no bfloat16/float16 support.
    # Without initial weights: the checkpoint replaces them all, and the file they came from (a path, the Keras
    # cache, Lite0's converted ImageNet file) need not exist where the run is evaluated or exported.
    inference = dataclasses.replace(config, mixed_precision="none", backbone_weights="none")
    acan = build_acan(inference, len(info["camera_classes"]), info["steps_per_epoch"], info.get("ids_per_camera"))
    acan.load_weights(path)
    return config, acan, info
