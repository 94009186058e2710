"""Benchmark of the Re-ID evaluation on synthetic Market-1501 and MSMT17-sized splits.

(a) evaluate on a 3,368 x 19,732 float32 distance matrix, against np.argsort of that matrix alone;
    also on random features (the worst case: every gallery row must be scanned to its end);
(b) evaluate_features on 2,048-d features, against the bare distance-matrix product (norms + q @ g.T);
(c) peak resident memory of evaluate_features on 11,659 x 82,161 256-d features, in a fresh process.

Timings are medians over --repeats runs; ratios are against the baseline measured in the same run.

    python benchmarks/evaluation.py [--output benchmarks/results/evaluation.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from machine import machine  # noqa: E402  (benchmarks/, the script's own folder)

from acan_tf.evaluation.metrics import evaluate, evaluate_features, pairwise_distance  # noqa: E402
from acan_tf.io import write_json  # noqa: E402

MARKET = dict(num_ids=751, num_cams=6, num_queries=3368, num_gallery=19732)
MSMT17 = dict(num_ids=3060, num_cams=15, num_queries=11659, num_gallery=82161)


def synthetic_split(num_ids, num_cams, num_queries, num_gallery, dim, noise, seed=0):
    """Query/gallery features and ids shaped like a Re-ID test split, with exact duplicate gallery rows."""
    rng = np.random.default_rng(seed)
    # As in Market-1501, one query per (identity, camera); every identity is seen by >= 2 cameras.
    cams_per_id = np.full(num_ids, num_queries // num_ids)
    cams_per_id[rng.permutation(num_ids)[: num_queries % num_ids]] += 1
    id_cams = np.argsort(rng.random((num_ids, num_cams)), axis=1)  # row p: p's cameras come first
    q_pids = np.repeat(np.arange(num_ids), cams_per_id)
    q_cams = id_cams[q_pids, np.arange(num_queries) - np.repeat(np.cumsum(cams_per_id) - cams_per_id, cams_per_id)]
    # Gallery: 1/8 distractors (pid -1, any camera), the rest of the test identities in their cameras.
    num_distractors = num_gallery // 8
    g_pids = rng.integers(0, num_ids, num_gallery - num_distractors)
    g_cams = id_cams[g_pids, (rng.random(len(g_pids)) * cams_per_id[g_pids]).astype(int)]
    g_pids = np.concatenate([g_pids, np.full(num_distractors, -1)])
    g_cams = np.concatenate([g_cams, rng.integers(0, num_cams, num_distractors)])

    centres = rng.standard_normal((num_ids, dim), dtype=np.float32)
    camera_bias = 0.6 * rng.standard_normal((num_cams, dim), dtype=np.float32)

    def features(pids, cams):
        # Distractors get a centre of their own (a fresh random vector per image).
        own = rng.standard_normal((len(pids), dim), dtype=np.float32)
        own[pids >= 0] = centres[pids[pids >= 0]]
        return own + camera_bias[cams] + noise * rng.standard_normal((len(pids), dim), dtype=np.float32)

    q_feats, g_feats = features(q_pids, q_cams), features(g_pids, g_cams)
    # 1% of the gallery are exact copies of other gallery images (same person and camera): exact ties.
    copies, originals = rng.permutation(num_gallery)[: 2 * (num_gallery // 200)].reshape(2, -1)
    g_feats[copies], g_pids[copies], g_cams[copies] = g_feats[originals], g_pids[originals], g_cams[originals]
    return q_feats, g_feats, q_pids, g_pids, q_cams, g_cams


def paired_median_times(baseline, candidate, repeats):
    """Median wall times of `repeats` alternating calls of baseline and candidate (alternating spreads
    the load of a shared machine over both), and the candidate's last result."""
    baseline_times, candidate_times = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        baseline()
        baseline_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = candidate()
        candidate_times.append(time.perf_counter() - start)
    return float(np.median(baseline_times)), float(np.median(candidate_times)), result


def summary(metrics):
    """The headline numbers of an evaluate result."""
    return {
        "mAP": round(metrics["mAP"], 4),
        "rank1": round(float(metrics["cmc"][0]), 4),
        "mINP": round(metrics["mINP"], 4),
        "num_valid_queries": metrics["num_valid_queries"],
    }


def case_a(repeats, noise, label):
    """evaluate vs np.argsort on a Market-sized distance matrix."""
    q_feats, g_feats, *ids = synthetic_split(**MARKET, dim=128, noise=noise)
    distmat = pairwise_distance(q_feats, g_feats)
    argsort_time, evaluate_time, metrics = paired_median_times(
        lambda: np.argsort(distmat, axis=1), lambda: evaluate(distmat, *ids), repeats
    )
    return {
        "case": label,
        "shape": list(distmat.shape),
        "baseline": "np.argsort(distmat, axis=1)",
        "baseline_s": argsort_time,
        "evaluate_s": evaluate_time,
        "ratio": evaluate_time / argsort_time,
        "target_ratio": 0.15 if label == "a" else None,
        "metrics": summary(metrics),
    }


def case_b(repeats):
    """evaluate_features vs the bare distance-matrix product on Market-sized 2,048-d features."""
    q_feats, g_feats, *ids = synthetic_split(**MARKET, dim=2048, noise=2.6)

    def bare_distances():
        dist = q_feats @ g_feats.T
        dist *= -2
        dist += np.einsum("ij,ij->i", q_feats, q_feats)[:, None]
        dist += np.einsum("ij,ij->i", g_feats, g_feats)[None, :]
        return dist

    gemm_time, evaluate_time, metrics = paired_median_times(
        bare_distances, lambda: evaluate_features(q_feats, g_feats, *ids), repeats
    )
    return {
        "case": "b",
        "shape": [len(q_feats), len(g_feats), q_feats.shape[1]],
        "baseline": "norms + q @ g.T (full squared-distance matrix)",
        "baseline_s": gemm_time,
        "evaluate_s": evaluate_time,
        "ratio": evaluate_time / gemm_time,
        "target_ratio": 1.3,
        "metrics": summary(metrics),
    }


def case_c():
    """Peak RSS of evaluate_features on MSMT17-sized 256-d features, measured in a fresh process."""
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child"], capture_output=True, text=True, check=True
    )
    child = json.loads(completed.stdout.strip().splitlines()[-1])
    dense_gb = MSMT17["num_queries"] * MSMT17["num_gallery"] * 4 / 1e9
    return {
        "case": "c",
        "shape": [MSMT17["num_queries"], MSMT17["num_gallery"], 256],
        "dense_distmat_gb": dense_gb,
        "target_peak_gb": 3.0,
        **child,
    }


def memory_child():
    """Run (c) in this process and print its figures as one JSON line."""
    inputs = synthetic_split(**MSMT17, dim=256, noise=1.1)
    with open("/proc/self/statm") as statm:
        inputs_rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    start = time.perf_counter()
    metrics = evaluate_features(*inputs)
    seconds = time.perf_counter() - start
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(
        json.dumps(
            {
                "rss_after_inputs_gb": inputs_rss / 1e9,
                "peak_rss_gb": peak_bytes / 1e9,
                "evaluate_s": seconds,
                "metrics": summary(metrics),
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "evaluation.json"))
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (the median is reported)")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child()
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    load_before = os.getloadavg()
    cases = [case_a(args.repeats, 1.0, "a"), case_a(args.repeats, 30.0, "a_random_features"), case_b(args.repeats)]
    cases.append(case_c())
    print(f"{'case':<20}{'shape':<22}{'baseline s':>11}{'evaluate s':>11}{'ratio':>8}{'target':>8}  metrics")
    for case in cases[:3]:
        target = "" if case["target_ratio"] is None else f"{case['target_ratio']:.2f}"
        print(
            f"{case['case']:<20}{'x'.join(map(str, case['shape'])):<22}{case['baseline_s']:>11.3f}"
            f"{case['evaluate_s']:>11.3f}{case['ratio']:>8.3f}{target:>8}  {case['metrics']}"
        )
    memory = cases[3]
    print(
        f"{'c':<20}{'x'.join(map(str, memory['shape'])):<22}peak RSS {memory['peak_rss_gb']:.2f} GB "
        f"(inputs {memory['rss_after_inputs_gb']:.2f} GB; the dense matrix alone would be "
        f"{memory['dense_distmat_gb']:.2f} GB; target <= 3 GB), {memory['evaluate_s']:.1f} s  {memory['metrics']}"
    )
    write_json(
        args.output,
        {
            "cases": cases,
            "repeats": args.repeats,
            **machine(load_before),
        },
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
