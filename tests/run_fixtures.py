"""A tiny trained run directory, laid out as acan_tf.train writes it, for the export tests."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from acan_tf.config import Config
from acan_tf.io import write_json
from acan_tf.model.acan import ACAN
from acan_tf.model.builder import build_acan

HEIGHT, WIDTH = 32, 16
NUM_CAMERAS = 3
FINAL_METRICS = {"epoch": 1, "mAP": 0.25, "rank1": 0.5, "rank5": 0.75, "rank10": 1.0, "rank20": 1.0, "mINP": 0.1,
                 "discrepancy": 0.2, "cmc": [0.5, 0.75, 1.0]}


def training_batch(seed: int, config: Config) -> dict[str, np.ndarray]:
    """One ACAN batch: a P×K triplet batch from camera 0 and one image of every camera."""
    rng = np.random.default_rng(seed)
    shape = (config.image_height, config.image_width, 3)
    count = config.num_identities * config.num_instances
    return {
        "triplet_images": rng.uniform(0, 255, (count, *shape)).astype(np.float32),
        "triplet_ids": np.repeat(np.arange(config.num_identities), config.num_instances).astype(np.int32),
        "triplet_camids": np.zeros(count, np.int32),
        "camera_images": rng.uniform(0, 255, (NUM_CAMERAS, *shape)).astype(np.float32),
        "camera_camids": np.arange(NUM_CAMERAS, dtype=np.int32),
    }


def batches_dataset(batches: list[dict[str, np.ndarray]]) -> tf.data.Dataset:
    """`batches` as a finite tf.data.Dataset, one element per batch, for `fit`."""
    return tf.data.Dataset.from_generator(lambda: iter(batches), output_signature={
        key: tf.TensorSpec(value.shape, tf.as_dtype(value.dtype)) for key, value in batches[0].items()})


def make_run(run_dir: str, steps: int = 2, **overrides) -> ACAN:
    """Trains a tiny ACAN (Config `overrides`) `steps` steps so BatchNorm's statistics move; writes its run folder."""
    config = Config(backbone="tiny", backbone_weights="none", image_height=HEIGHT, image_width=WIDTH, num_identities=2,
                    num_instances=2, camera_batch_size=NUM_CAMERAS, epochs=1, lr_pretrained=0.01, lr_new=0.01,
                    lr_decay_epochs=(), output_dir=run_dir, cross_camera="none", **overrides)
    ids_per_camera = (config.num_identities,) * NUM_CAMERAS  # the batches' ids 0..P-1 (in camera 0)
    acan = build_acan(config, NUM_CAMERAS, steps_per_epoch=steps, ids_per_camera=ids_per_camera)
    data = batches_dataset([training_batch(step, config) for step in range(steps)])
    acan.fit(data, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
    acan.save_weights(os.path.join(run_dir, "checkpoints", "best.weights.h5"))
    write_json(os.path.join(run_dir, "config.json"), config.to_json())
    write_json(os.path.join(run_dir, "run.json"), {
        "camera_classes": {str(c): c for c in range(NUM_CAMERAS)}, "ids_per_camera": list(ids_per_camera),
        "steps_per_epoch": steps,
        "dataset": "synthetic", "is_video": False, "versions": {"tensorflow": tf.__version__},
    })
    write_json(os.path.join(run_dir, "report.json"), {"final": FINAL_METRICS})
    return acan
