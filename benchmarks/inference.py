"""Benchmark of the deployed model on the CPU: the SavedModel in TensorFlow against the fp32 and int8 ONNX models.

Builds F (default: ResNet-50 at 256x128, untrained weights: speed does not depend on them; any registered
--backbone), exports it with acan_tf.deploy exactly as `python -m acan_tf.export --formats=saved_model,onnx,onnx_int8`
does (the int8 model calibrated on seeded random images), or takes an existing export (--export_dir; its
model_int8.onnx is timed if present), then times serving_default and the ONNX models on the same uint8 batches at
each batch size, taking turns: median latency over --runs runs after --warmup runs, images/s = batch / median
latency, the ONNX/TensorFlow and int8/fp32 ONNX speed-ups.

    python benchmarks/inference.py [--backbone resnet50] [--output benchmarks/results/inference.json] [--runs 20]
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
from acan_tf.deploy.model_card import ONNX_FILE, ONNX_INT8_FILE  # noqa: E402
from acan_tf.deploy.onnx_export import OPSET, write_onnx  # noqa: E402
from acan_tf.deploy.quantize import CALIBRATION_IMAGES, quantize_onnx  # noqa: E402
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


def export_untrained(backbone: str, height: int, width: int, folder: str, opset: int, calibration_images: int) -> dict:
    """Writes an untrained F as SavedModel, model.onnx and model_int8.onnx into `folder`; returns the quantization."""
    config = Config(backbone=backbone, backbone_weights="none", image_height=height, image_width=width)
    acan = build_acan(config, num_cameras=2, steps_per_epoch=1)
    write_saved_model(acan, height, width, folder)
    write_onnx(acan, height, width, os.path.join(folder, ONNX_FILE), opset)
    # Random pixels calibrate as well as training images for timing: the int8 graph is the same either way.
    calibration = np.random.default_rng(0).integers(0, 256, (calibration_images, height, width, 3), dtype=np.uint8)
    return quantize_onnx(os.path.join(folder, ONNX_FILE), os.path.join(folder, ONNX_INT8_FILE), "static", calibration)


def onnx_session(path: str, threads: int) -> onnxruntime.InferenceSession:
    """An ONNX Runtime CPU session of the model at `path` (threads 0: its default)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def benchmark(export_dir: str, batch_sizes: list[int], runs: int, warmup: int, threads: int = 0) -> dict:
    """Latency and throughput of each runtime on the export in `export_dir`, per batch size (threads 0: defaults)."""
    serve = tf.saved_model.load(export_dir).signatures[IMAGE_SIGNATURE]
    sessions = {"onnxruntime": onnx_session(os.path.join(export_dir, ONNX_FILE), threads)}
    if os.path.isfile(os.path.join(export_dir, ONNX_INT8_FILE)):
        sessions["onnx_int8"] = onnx_session(os.path.join(export_dir, ONNX_INT8_FILE), threads)
    _, height, width, _ = sessions["onnxruntime"].get_inputs()[0].shape
    rng = np.random.default_rng(0)
    results, largest_differences = {}, dict.fromkeys(sessions, 0.0)
    for batch in batch_sizes:
        images = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        tensor = tf.constant(images)
        # Default arguments bind this batch's inputs (the runners are only called within this iteration).
        runners = {"tensorflow": lambda tensor=tensor: serve(**{IMAGES: tensor})[EMBEDDINGS].numpy()}
        runners.update({name: (lambda session=session, images=images: session.run([EMBEDDINGS], {IMAGES: images})[0])
                        for name, session in sessions.items()})
        reference = runners["tensorflow"]()
        for name in sessions:
            largest_differences[name] = max(largest_differences[name], float(np.abs(reference - runners[name]()).max()))
        row = {name: {"median_latency_ms": 1000 * seconds, "images_per_second": batch / seconds}
               for name, seconds in median_seconds(runners, runs, warmup).items()}
        row["onnx_speedup"] = row["onnxruntime"]["images_per_second"] / row["tensorflow"]["images_per_second"]
        if "onnx_int8" in row:
            row["int8_speedup_over_onnx"] = (row["onnx_int8"]["images_per_second"]
                                             / row["onnxruntime"]["images_per_second"])
        results[str(batch)] = row
    return {"input_size": [height, width], "batches": results,
            "max_abs_difference_vs_tensorflow": largest_differences}


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export_dir",
                        help="An export OUT/NAME/VERSION to time; default: export an untrained --backbone.")
    parser.add_argument("--backbone", default="resnet50", help="Backbone of the untrained F (any registered one).")
    parser.add_argument("--calibration_images", type=int, default=CALIBRATION_IMAGES,
                        help="Random images calibrating the untrained int8 model.")
    parser.add_argument("--image_height", type=int, default=256)
    parser.add_argument("--image_width", type=int, default=128)
    parser.add_argument("--opset", type=int, default=OPSET, help="ONNX opset of the untrained export.")
    parser.add_argument("--batch_sizes", default="1,32", help="Comma-separated batch sizes.")
    parser.add_argument("--runs", type=int, default=20,
                        help="Timed runs per runtime and batch size (the median is reported).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed runs first.")
    parser.add_argument("--threads", type=int, default=0, help="Threads of each runtime (0: each runtime's default).")
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "inference.json"),
                        help="JSON result file.")
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
            model["quantization"] = export_untrained(args.backbone, args.image_height, args.image_width, folder,
                                                     args.opset, args.calibration_images)
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
        for name in ("tensorflow", "onnxruntime", "onnx_int8"):
            if name in row:
                latency, speed = row[name]["median_latency_ms"], row[name]["images_per_second"]
                print(f"{batch:>5} {name:<12} {latency:11.1f} {speed:10.1f}")
        print(f"{batch:>5} ONNX Runtime / TensorFlow images/s: {row['onnx_speedup']:.2f}x")
        if "int8_speedup_over_onnx" in row:
            print(f"{batch:>5} int8 / fp32 ONNX images/s: {row['int8_speedup_over_onnx']:.2f}x")
    for name, value in report["max_abs_difference_vs_tensorflow"].items():
        print(f"largest |{name} - TensorFlow| on these inputs: {value:.2e}")
    print(f"load average (1, 5, 15 min): {' '.join(f'{value:.2f}' for value in report['load_average'])}")
    print(f"written to {args.output}")


if __name__ == "__main__":
    main(sys.argv[1:])
