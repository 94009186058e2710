"""Builds ACAN, its optimizers and the distribution strategy from a Config."""

from __future__ import annotations

import keras
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.model.acan import ACAN
from acan_tf.model.discriminator import build_discriminator
from acan_tf.model.encoder import build_encoder


def build_strategy(name: str) -> tf.distribute.Strategy:
    """`auto`: MirroredStrategy when more than one GPU is visible, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def step_decay(base_rate: float, config: Config, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """`base_rate` multiplied by --lr_decay_factor at each of --lr_decay_epochs (IV-A: ×0.1 at 100 and 200)."""
    if not config.lr_decay_epochs:
        return base_rate
    boundaries = [epoch * steps_per_epoch for epoch in config.lr_decay_epochs]
    values = [base_rate * config.lr_decay_factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def build_acan(config: Config, num_cameras: int, steps_per_epoch: int) -> ACAN:
    """A compiled ACAN: F (SGD at --lr_pretrained) and D (SGD at --lr_new), both with step decay."""
    keras.utils.set_random_seed(config.seed)
    encoder = build_encoder(config.backbone, config.image_height, config.image_width, config.backbone_weights)
    discriminator = build_discriminator(encoder.output_shape[-1], num_cameras, config.disc_width)
    acan = ACAN(
        encoder,
        discriminator,
        scheme=config.scheme,
        adv_weight=config.adv_weight,
        margin=config.margin,
        warmup=config.adv_warmup,
        warmup_steps=config.adv_warmup_epochs * steps_per_epoch,
        total_steps=config.epochs * steps_per_epoch,
    )

    def sgd(rate: float) -> keras.optimizers.Optimizer:
        return keras.optimizers.SGD(
            step_decay(rate, config, steps_per_epoch), momentum=config.momentum, weight_decay=config.weight_decay or None
        )

    acan.compile(f_optimizer=sgd(config.lr_pretrained), d_optimizer=sgd(config.lr_new))
    return acan
