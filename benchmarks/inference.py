"""Benchmark of the deployed model on the CPU: the SavedModel in TensorFlow against the ONNX model in ONNX Runtime.

Builds F (default: ResNet-50 at 256x128, untrained weights: speed does not depend on them), exports it with
acan_tf.deploy exactly as `python -m acan_tf.export` does, or takes an existing export (--export_dir), then times
serving_default and the ONNX model on the same uint8 batches at each batch size, taking turns: median latency
over --runs runs after --warmup runs, images/s = batch / median latency, and the ONNX/TensorFlow speed-up.

    python benchmarks/inference.py [--output benchmarks/results/inference.json] [--runs 20] [--batch_sizes 1,32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import acan_tf  # noqa: E402,F401  (first: it sets TensorFlow's environment before TensorFlow is imported)
import onnxruntime  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402

from acan_tf.config import Config  # noqa: E402
from acan_tf.deploy.model_card import ONNX_FILE  # noqa: E402
from acan_tf.deploy.onnx_export import OPSET, write_onnx  # noqa: E402
from acan_tf.deploy.serving import EMBEDDINGS, IMAGE_SIGNATURE, IMAGES, write_saved_model  # noqa: E402
from acan_tf.io import write_json  # noqa: E402
from acan_tf.model.builder import build_acan  # noqa: E402
from acan_tf.versions import package_versions  # noqa: E402


def median_seconds(calls: dict[str, Callable[[], object]], runs: int, warmup: int) -> dict[str, float]:
    """Median wall time of each call over `runs` runs after `warmup` untimed runs, the calls taking turns."""
    # Taking turns exposes every runtime to the same background load on a shared machine.
    times = {name: [] for name in calls}
    for index in range(warmup + runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            if index >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def export_untrained(backbone: str, height: int, width: int, folder: str, opset: int) -> None:
    """Writes an untrained F as the SavedModel and model.onnx into `folder`, as the exporter does."""
    acan = build_acan(Config(backbone=backbone, image_height=height, image_width=width), num_cameras=2, steps_per_epoch=1)
    write_saved_model(acan, height, width, folder)
    write_onnx(acan, height, width, os.path.join(folder, ONNX_FILE), opset)


def benchmark(export_dir: str, batch_sizes: list[int], runs: int, warmup: int, threads: int = 0) -> dict:
    """Latency and throughput of both runtimes on the export in `export_dir`, per batch size (threads 0: their defaults)."""
    serve = tf.saved_model.load(export_dir).signatures[IMAGE_SIGNATURE]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(os.path.join(export_dir, ONNX_FILE), options, providers=["CPUExecutionProvider"])
    _, height, width, _ = session.get_inputs()[0].shape
    rng = np.random.default_rng(0)
    results, largest_difference = {}, 0.0
    for batch in batch_sizes:
        images = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        tensor = tf.constant(images)
        runners = {
            "tensorflow": lambda: serve(**{IMAGES: tensor})[EMBEDDINGS].numpy(),
            "onnxruntime": lambda: session.run([EMBEDDINGS], {IMAGES: images})[0],
        }
        largest_difference = max(largest_difference, float(np.abs(runners["tensorflow"]() - runners["onnxruntime"]()).max()))
        row = {name: {"median_latency_ms": 1000 * seconds, "images_per_second": batch / seconds}
               for name, seconds in median_seconds(runners, runs, warmup).items()}
        row["onnx_speedup"] = row["onnxruntime"]["images_per_second"] / row["tensorflow"]["images_per_second"]
        results[str(batch)] = row
    return {"input_size": [height, width], "batches": results, "max_abs_difference_onnx_vs_tensorflow": largest_difference}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export_dir", help="An export OUT/NAME/VERSION to time; default: export an untrained --backbone.")
    parser.add_argument("--backbone", default="resnet50", help="Backbone of the untrained F.")
    parser.add_argument("--image_height", type=int, default=256)
    parser.add_argument("--image_width", type=int, default=128)
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset of the untrained export.")
    parser.add_argument("--batch_sizes", default="1,32", help="Comma-separated batch sizes.")
    parser.add_argument("--runs", type=int, default=20, help="Timed runs per runtime and batch size (the median is reported).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed runs first.")
    parser.add_argument("--threads", type=int, default=0, help="Threads of each runtime (0: each runtime's default).")
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "inference.json"), help="JSON result file.")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    """Runs the benchmark, prints a table and writes the JSON."""
    args = parse_args(argv)
    batch_sizes = [int(value) for value in args.batch_sizes.split(",")]
    if args.threads:  # before TensorFlow's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        if args.export_dir:
            model = {"export_dir": os.path.abspath(args.export_dir)}
            result = benchmark(args.export_dir, batch_sizes, args.runs, args.warmup, args.threads)
        else:
            model = {"backbone": args.backbone, "weights": "untrained", "opset": args.opset}
            export_untrained(args.backbone, args.image_height, args.image_width, folder, args.opset)
            result = benchmark(folder, batch_sizes, args.runs, args.warmup, args.threads)
    report = {
        "model": model,
        **result,
        "runs": args.runs,
        "warmup": args.warmup,
        "threads": args.threads or "runtime defaults",
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "versions": package_versions(tf2onnx, onnxruntime),
    }
    write_json(args.output, report)
    print(f"{'batch':>5} {'runtime':<12} {'latency ms':>11} {'images/s':>10}")
    for batch, row in report["batches"].items():
        for name in ("tensorflow", "onnxruntime"):
            print(f"{batch:>5} {name:<12} {row[name]['median_latency_ms']:11.1f} {row[name]['images_per_second']:10.1f}")
        print(f"{batch:>5} ONNX Runtime / TensorFlow images/s: {row['onnx_speedup']:.2f}x")
    print(f"largest |ONNX - TensorFlow| on these inputs: {report['max_abs_difference_onnx_vs_tensorflow']:.2e}")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main(sys.argv[1:])
