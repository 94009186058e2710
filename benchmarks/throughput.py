"""Throughput of the input pipeline and of ACAN's train step, and the ResNet-50 step's share of peak FLOP/s.

    python benchmarks/throughput.py [--output=benchmarks/results/throughput.json] [--steps=5]

Cases: the default synthetic config (pretrained EfficientNet-Lite0 at 128x64), the tiny backbone at 64x32 and the
paper's ResNet-50 at 256x128 with a 128-image triplet batch (P=32, K=4) plus a 64-image camera batch. Figures are
medians over --steps timed steps after warm-up; the matmul baseline is measured in the same run.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import acan_tf  # noqa: E402,F401  (sets TensorFlow's environment before TensorFlow is imported)

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from acan_tf.config import Config  # noqa: E402
from acan_tf.data import load_dataset  # noqa: E402
from acan_tf.data.pipeline import Augmentation, TrainingBatches, training_dataset  # noqa: E402
from acan_tf.data.sampling import training_set  # noqa: E402
from acan_tf.model.builder import build_acan  # noqa: E402

flags.DEFINE_string("output", "benchmarks/results/throughput.json", "Where to write the JSON figures.")
flags.DEFINE_integer("steps", 5, "Timed steps per measurement (after warm-up).")
flags.DEFINE_string("data_root", "", "Synthetic benchmark folder (default: a temporary one, generated).")
FLAGS = flags.FLAGS

RESNET50_TRAIN_GFLOP_PER_IMAGE = 15.0  # ≈ 3 × 2 × 2.5 GMAC forward at 256×128 (forward + backward)


def median_seconds(function, steps: int, warmup: int = 2) -> float:
    """Median wall time of `function()` over `steps` calls after `warmup` calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(size: int = 4096, steps: int = 5) -> float:
    """Achieved GFLOP/s of a size² fp32 matmul: the machine's practical peak."""
    a = tf.random.normal((size, size))
    product = tf.function(lambda: tf.matmul(a, a))
    seconds = median_seconds(lambda: product().numpy(), steps)
    return 2 * size**3 / seconds / 1e9


def measure(config: Config, data_root: str, steps: int) -> dict:
    """Images/s of the pipeline alone and of the train step alone (fed from memory) for one config."""
    dataset = load_dataset(config.dataset, data_root)
    train = training_set(dataset.train, config.min_ids)
    batches = TrainingBatches(train.records, train.local_ids, train.classes, config.num_identities,
                              config.num_instances, config.camera_batch_size, 1, config.seed)
    images_per_step = batches.items_per_step
    iterator = iter(training_dataset(batches, config.image_height, config.image_width, Augmentation()))
    pipeline_seconds = median_seconds(lambda: next(iterator), steps * 4, warmup=5)

    acan = build_acan(config, len(train.camera_classes), steps_per_epoch=100)
    batch = next(iterator)
    step = tf.function(acan.train_step)
    step_seconds = median_seconds(lambda: step(batch)["loss"].numpy(), steps)
    return {
        "backbone": config.backbone,
        "image_size": [config.image_height, config.image_width],
        "images_per_step": images_per_step,
        "pipeline_images_per_s": images_per_step / pipeline_seconds,
        "train_step_images_per_s": images_per_step / step_seconds,
        "pipeline_over_step": step_seconds / pipeline_seconds,
    }


def main(argv: list[str]) -> None:
    del argv
    with tempfile.TemporaryDirectory() as scratch:
        data_root = FLAGS.data_root or os.path.join(scratch, "synthetic")
        default = Config(data_root=data_root)
        tiny = Config(data_root=data_root, backbone="tiny", backbone_weights="none", image_height=64, image_width=32)
        paper = Config(data_root=data_root, backbone="resnet50", backbone_weights="none", image_height=256,
                       image_width=128, num_identities=32, num_instances=4, camera_batch_size=64)
        results = {"default_synthetic": measure(default, data_root, FLAGS.steps)}
        results["tiny_synthetic"] = measure(tiny, data_root, FLAGS.steps)
        results["resnet50_256x128"] = measure(paper, data_root, FLAGS.steps)
    peak = matmul_gflops()
    resnet = results["resnet50_256x128"]
    resnet["achieved_gflops"] = resnet["train_step_images_per_s"] * RESNET50_TRAIN_GFLOP_PER_IMAGE
    resnet["fraction_of_matmul_peak"] = resnet["achieved_gflops"] / peak
    results["matmul_4096_gflops"] = peak
    results["environment"] = {
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as handle:
        json.dump(results, handle, indent=2)
    for name in ("default_synthetic", "tiny_synthetic", "resnet50_256x128"):
        r = results[name]
        print(f"{name:>18}: pipeline {r['pipeline_images_per_s']:8.1f} img/s | train step "
              f"{r['train_step_images_per_s']:7.1f} img/s | pipeline/step {r['pipeline_over_step']:.1f}x")
    print(f"ResNet-50 step: {resnet['achieved_gflops']:.1f} GFLOP/s = {100 * resnet['fraction_of_matmul_peak']:.0f}% "
          f"of a 4096² fp32 matmul ({peak:.1f} GFLOP/s); JSON: {FLAGS.output}")


if __name__ == "__main__":
    sys.exit(app.run(main))
