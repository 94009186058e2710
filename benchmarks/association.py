"""Benchmark of the cross-camera association (acan_tf.training.association) on the CPU.

(a) `associate` on 10k proxies from 10 and from 100 cameras and on 100k proxies from 100 cameras, 256-d clustered
    features (people seen in several cameras, a per-camera offset, noise): seconds, peak NumPy allocations
    (tracemalloc) and peak resident memory, each size in a fresh process;
(b) one association round at MSMT17 size (32,621 training images, 15 cameras, 4,100 camera-local identities):
    proxy building + association from given features, and, separately, the feature extraction that a round also
    needs, measured on a small sample with the `tiny` backbone at 64x32 and extrapolated to 32,621 images.

Timings are medians over --repeats runs (--repeats_100k for the 100k case, whose run takes minutes).

    python benchmarks/association.py [--output benchmarks/results/association.json] [--repeats 3] [--repeats_100k 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from machine import machine  # noqa: E402  (benchmarks/, the script's own folder)

from acan_tf.io import write_json  # noqa: E402
from acan_tf.training.association import associate, association_quality, proxy_global_ids  # noqa: E402

SIZES = {
    "10k_proxies_10_cameras": (10_000, 10),
    "10k_proxies_100_cameras": (10_000, 100),
    "100k_proxies_100_cameras": (100_000, 100),
}
MSMT17 = dict(num_images=32_621, num_cameras=15, num_proxies=4_100, num_people=1_041)
THRESHOLD = 0.3
DIM = 256


def clustered_items(num_items, num_proxies, num_cameras, num_people, seed=0):
    """Features [N, 256] with cameras and camera-local ids of `num_proxies` identities, and each one's person."""
    rng = np.random.default_rng(seed)
    proxy_camera = np.sort(rng.integers(0, num_cameras, num_proxies))
    proxy_camera[:num_cameras] = np.arange(num_cameras)  # every camera present
    proxy_camera.sort()
    # Camera-local ids 0.. inside each camera, as camera_local_labels numbers them.
    proxy_local = np.arange(num_proxies) - np.searchsorted(proxy_camera, proxy_camera)
    proxy_person = rng.integers(0, num_people, num_proxies)
    item_proxy = np.r_[np.arange(num_proxies), rng.integers(0, num_proxies, num_items - num_proxies)]
    centres = rng.standard_normal((num_people, DIM), dtype=np.float32)
    offsets = 0.5 * rng.standard_normal((num_cameras, DIM), dtype=np.float32)
    features = centres[proxy_person[item_proxy]] + offsets[proxy_camera[item_proxy]]
    features += 0.8 * rng.standard_normal((num_items, DIM), dtype=np.float32)
    return features, proxy_camera[item_proxy], proxy_local[item_proxy], proxy_person[item_proxy]


def median_seconds(call, repeats):
    """Median wall time of `repeats` calls, and the last call's result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def quality(association, cameras, local_ids, people):
    """Association precision/recall against the planted people (the benchmark's sanity check, not a target)."""
    truth = proxy_global_ids(association.proxies, cameras, local_ids, people)
    report = association_quality(association.pseudo_ids, association.proxies.cameras, truth)
    return {key: report[key] for key in ("pair_precision", "pair_recall", "num_components", "mean_component_size")}


def size_child(name, repeats):
    """Case (a) at one size in this (fresh) process; prints its figures as one JSON line."""
    num_proxies, num_cameras = SIZES[name]
    features, cameras, local_ids, people = clustered_items(num_proxies, num_proxies, num_cameras, num_proxies // 4)
    with open("/proc/self/statm") as statm:
        inputs_rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    seconds, association = median_seconds(lambda: associate(features, cameras, local_ids, THRESHOLD), repeats)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    # A separate run under tracemalloc, so that its bookkeeping slows none of the timed runs.
    tracemalloc.start()
    associate(features, cameras, local_ids, THRESHOLD)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    result = {
        "case": name,
        "num_proxies": num_proxies,
        "num_cameras": num_cameras,
        "dim": DIM,
        "threshold": THRESHOLD,
        "repeats": repeats,
        "associate_s": seconds,
        "tracemalloc_peak_mb": traced_peak / 1e6,
        "rss_after_inputs_mb": inputs_rss / 1e6,
        "peak_rss_mb": peak_rss / 1e6,
        "dense_similarity_matrix_mb": num_proxies**2 * 4 / 1e6,
        "num_links": len(association.links),
        "quality": quality(association, cameras, local_ids, people),
    }
    print(json.dumps(result))


def run_child(name, repeats):
    """Case (a) at one size, in a fresh process."""
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--size-child", name, "--repeats", str(repeats)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def msmt17_round(repeats):
    """Case (b): proxies + association of MSMT17-sized training features."""
    features, cameras, local_ids, people = clustered_items(
        MSMT17["num_images"], MSMT17["num_proxies"], MSMT17["num_cameras"], MSMT17["num_people"]
    )
    seconds, association = median_seconds(lambda: associate(features, cameras, local_ids, THRESHOLD), repeats)
    return {
        **MSMT17,
        "dim": DIM,
        "repeats": repeats,
        "proxies_and_association_s": seconds,
        "num_links": len(association.links),
        "quality": quality(association, cameras, local_ids, people),
    }


def tiny_extraction(repeats, small=64, large=512, height=64, width=32):
    """Per-image feature-extraction seconds of the untrained `tiny` F at 64x32, from a small sample of images.

    The marginal cost (large - small sample) / (large - small) leaves out the one-off tracing that every
    extraction pays, which is reported on its own.
    """
    # Imported here: the size children measure the resident memory of NumPy alone, without TensorFlow.
    from PIL import Image

    from acan_tf.config import Config
    from acan_tf.data.records import ImageRecord
    from acan_tf.evaluation.features import extract_features
    from acan_tf.model.builder import build_acan

    config = Config(backbone="tiny", backbone_weights="none", image_height=height, image_width=width)
    acan = build_acan(config, num_cameras=MSMT17["num_cameras"], steps_per_epoch=1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        records = []
        for index in range(large):
            path = os.path.join(folder, f"{index:04d}.jpg")
            Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(path)
            records.append(ImageRecord(path, index, index % MSMT17["num_cameras"]))
        extract_features(acan.encoder, records[:small], height, width, config.eval_batch_size)  # warm-up
        small_s, _ = median_seconds(
            lambda: extract_features(acan.encoder, records[:small], height, width, config.eval_batch_size), repeats
        )
        large_s, _ = median_seconds(
            lambda: extract_features(acan.encoder, records, height, width, config.eval_batch_size), repeats
        )
    per_image = (large_s - small_s) / (large - small)
    overhead = max(small_s - small * per_image, 0.0)
    return {
        "backbone": "tiny",
        "input_size": [height, width],
        "batch_size": config.eval_batch_size,
        "sample_images": [small, large],
        "sample_s": [small_s, large_s],
        "per_image_ms": 1000 * per_image,
        "per_extraction_overhead_s": overhead,
        "extrapolated_msmt17_train_s": overhead + per_image * MSMT17["num_images"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "association.json"))
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (the median is reported)")
    parser.add_argument("--repeats_100k", type=int, default=1, help="runs of the 100k-proxy case")
    parser.add_argument("--size-child", choices=sorted(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats < 1 or args.repeats_100k < 1:
        parser.error("--repeats and --repeats_100k must be at least 1")
    if args.size_child:
        size_child(args.size_child, args.repeats)
        return
    load_before = os.getloadavg()
    sizes = [run_child(name, args.repeats_100k if name.startswith("100k") else args.repeats) for name in SIZES]
    header = f"{'case':<28}{'associate s':>12}{'tracemalloc MB':>16}{'peak RSS MB':>13}{'dense M x M MB':>16}"
    print(f"{header}  links, quality")
    for case in sizes:
        print(
            f"{case['case']:<28}{case['associate_s']:>12.2f}{case['tracemalloc_peak_mb']:>16.0f}"
            f"{case['peak_rss_mb']:>13.0f}"
            f"{case['dense_similarity_matrix_mb']:>16.0f}  {case['num_links']}, {case['quality']}"
        )
    msmt17 = msmt17_round(args.repeats)
    print(
        f"MSMT17-sized round ({msmt17['num_images']} images, {msmt17['num_cameras']} cameras, "
        f"{msmt17['num_proxies']} proxies): proxies + association {msmt17['proxies_and_association_s']:.2f} s, "
        f"{msmt17['num_links']} links, {msmt17['quality']}"
    )
    extraction = tiny_extraction(args.repeats)
    print(
        f"feature extraction, tiny at 64x32, measured on {extraction['sample_images']} images: "
        f"{extraction['per_image_ms']:.2f} ms per image + {extraction['per_extraction_overhead_s']:.2f} s per "
        "extraction; "
        f"EXTRAPOLATED to {MSMT17['num_images']} images: {extraction['extrapolated_msmt17_train_s']:.1f} s"
    )
    write_json(
        args.output,
        {
            "sizes": sizes,
            "msmt17_round": msmt17,
            "tiny_feature_extraction_extrapolated": extraction,
            "repeats": args.repeats,
            "repeats_100k": args.repeats_100k,
            **machine(load_before),
        },
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
