"""Logging of the commands, set up once: our INFO lines stay, TensorFlow's own chatter does not."""

from __future__ import annotations

import logging as python_logging

import tensorflow as tf
from absl import flags, logging


def _not_checkpoint_saver(record: python_logging.LogRecord) -> bool:
    """False for the checkpoint saver's per-save INFO records ("Sharding callback duration")."""
    return not record.pathname.endswith("functional_saver.py")


def quiet_tensorflow_logging() -> None:
    """Keeps TensorFlow's own INFO lines out of a command's output, leaving ours; calling it again changes nothing."""
    # One per checkpoint save and per collective op: they would break up the progress bar. The checkpoint saver
    # logs through absl, which also carries our INFO lines, so only its records are dropped there; adding the same
    # filter function twice is a no-op.
    tf.get_logger().setLevel("WARNING")
    logging.get_absl_logger().addFilter(_not_checkpoint_saver)


def warnings_only_unless_asked() -> None:
    """absl's verbosity at WARNING unless --verbosity was given: a command prints its figures, and INFO lines (the
    SavedModel writer's, the projector's checkpoints) would bury them."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
