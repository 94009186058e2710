"""Benchmark of the exact Re-ID evaluation at Market-1501 and MSMT17 size, with one thread and with all cores.

Market-1501 size (3,368 queries x 19,732 gallery entries, 751 identities, 6 cameras):
  distmat   evaluate on the float32 distance matrix of clustered 128-d features (a trained model's), against
            np.argsort of the same matrix (the first step of an argsort-based evaluator such as torchreid's);
  random    the same on random features, the worst case (every gallery row is scanned to its end);
  features  evaluate_features on 2,048-d features, against the bare matrix product q @ g.T it cannot avoid.
MSMT17 size (11,659 x 82,161, 3,060 identities, 15 cameras, 256-d features), in a fresh process for its peak
resident memory: evaluate_features, the bare product in the same chunks of queries, and np.argsort of a sample of
the distance rows scaled to all rows (sorting them all at once would need 7.7 GB of indices), which our whole
evaluation, product included, is compared with.

Every figure is the median of --repeats runs, taken with BLAS and our ranking limited to one thread (threadpoolctl,
`threads=1`) and with all cores; baselines and our evaluation alternate, and ratios are between figures of the same
run. CPU seconds of the process are recorded beside wall seconds: on a shared machine the one-thread ratios are
steadier in CPU seconds (with all cores, CPU seconds add up the threads).

    python benchmarks/evaluation.py [--quick] [--sizes market,msmt17] [--repeats 3] [--output PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from machine import machine  # noqa: E402  (benchmarks/, the script's own folder)

from acan_tf.evaluation.metrics import _CHUNK_BYTES, evaluate, evaluate_features, pairwise_distance  # noqa: E402
from acan_tf.io import write_json  # noqa: E402

MARKET = dict(num_ids=751, num_cams=6, num_queries=3368, num_gallery=19732)
MSMT17 = dict(num_ids=3060, num_cams=15, num_queries=11659, num_gallery=82161)
SIZES = ("market", "msmt17")
# The targets of issue 21: argsort / evaluate at Market size, features path / bare product, MSMT17 peak RSS.
TARGET_SPEEDUP = 15.0
TARGET_FEATURES_RATIO = 1.1
TARGET_PEAK_GB = 3.0
# --quick: one run per figure, no worst case, and a smaller argsort sample at MSMT17 size.
ARGSORT_SAMPLE = {False: 8, True: 32}


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
    """Median wall and CPU seconds of `repeats` alternating calls of baseline and candidate (alternating spreads
    the load of a shared machine over both), and the candidate's last result."""
    times = {"baseline_s": [], "evaluate_s": [], "baseline_cpu_s": [], "evaluate_cpu_s": []}
    for _ in range(repeats):
        for name, function in (("baseline", baseline), ("evaluate", candidate)):
            wall, cpu = time.perf_counter(), time.process_time()
            result = function()
            times[f"{name}_s"].append(time.perf_counter() - wall)
            times[f"{name}_cpu_s"].append(time.process_time() - cpu)
    return {name: float(np.median(values)) for name, values in times.items()}, result


def thread_settings():
    """(label, BLAS and ranking threads) of the two settings every figure is taken in."""
    return [("1 thread", 1), ("all cores", os.cpu_count())]


def summary(metrics):
    """The headline numbers of an evaluate result."""
    return {
        "mAP": round(metrics["mAP"], 4),
        "rank1": round(float(metrics["cmc"][0]), 4),
        "mINP": round(metrics["mINP"], 4),
        "num_valid_queries": metrics["num_valid_queries"],
    }


def market_distmat_case(label, noise, repeats):
    """evaluate vs np.argsort of one Market-sized distance matrix, in each thread setting."""
    q_feats, g_feats, *ids = synthetic_split(**MARKET, dim=128, noise=noise)
    distmat = pairwise_distance(q_feats, g_feats)
    cases = []
    for threads_label, threads in thread_settings():
        with threadpool_limits(limits=threads):
            times, metrics = paired_median_times(
                lambda: np.argsort(distmat, axis=1),
                functools.partial(evaluate, distmat, *ids, threads=threads),
                repeats,
            )
        cases.append(
            {
                "case": f"market {label}",
                "threads": threads_label,
                "shape": list(distmat.shape),
                "baseline": "np.argsort(distmat, axis=1)",
                **times,
                "speedup": times["baseline_s"] / times["evaluate_s"],
                "speedup_cpu": times["baseline_cpu_s"] / times["evaluate_cpu_s"],
                "target_speedup": TARGET_SPEEDUP if label == "distmat" else None,
                "metrics": summary(metrics),
                "load_average": os.getloadavg(),
            }
        )
    return cases


def market_features_case(repeats):
    """evaluate_features vs the bare matrix product on Market-sized 2,048-d features, in each thread setting."""
    q_feats, g_feats, *ids = synthetic_split(**MARKET, dim=2048, noise=2.6)
    cases = []
    for threads_label, threads in thread_settings():
        with threadpool_limits(limits=threads):
            times, metrics = paired_median_times(
                lambda: q_feats @ g_feats.T,
                functools.partial(evaluate_features, q_feats, g_feats, *ids, threads=threads),
                repeats,
            )
        cases.append(
            {
                "case": "market features",
                "threads": threads_label,
                "shape": [len(q_feats), len(g_feats), q_feats.shape[1]],
                "baseline": "q @ g.T",
                **times,
                "ratio": times["evaluate_s"] / times["baseline_s"],
                "ratio_cpu": times["evaluate_cpu_s"] / times["baseline_cpu_s"],
                "target_ratio": TARGET_FEATURES_RATIO,
                "metrics": summary(metrics),
                "load_average": os.getloadavg(),
            }
        )
    return cases


def msmt17_cases(repeats, quick):
    """The MSMT17-size figures, measured in a fresh process (its peak RSS is that of evaluate_features)."""
    command = [sys.executable, os.path.abspath(__file__), "--msmt17-child", "--repeats", str(repeats)]
    completed = subprocess.run(command + ["--quick"] * quick, capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"the MSMT17-size child process failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def msmt17_child(repeats, quick):
    """Measure evaluate_features at MSMT17 size in this fresh process and print the figures as one JSON line."""
    q_feats, g_feats, *ids = synthetic_split(**MSMT17, dim=256, noise=1.1)
    with open("/proc/self/statm") as statm:
        inputs_rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # evaluate_features' default chunk of queries; the bare product is taken in the same chunks.
    chunk = max(1, _CHUNK_BYTES // (len(g_feats) * 4))
    sample = len(q_feats) // ARGSORT_SAMPLE[quick]

    def bare_products():
        for start in range(0, len(q_feats), chunk):
            q_feats[start : start + chunk] @ g_feats.T

    def argsort_sample_s():
        seconds = 0.0
        for start in range(0, sample, chunk):
            distances = pairwise_distance(q_feats[start : min(start + chunk, sample)], g_feats)
            begin = time.perf_counter()
            np.argsort(distances, axis=1)
            seconds += time.perf_counter() - begin
        return seconds * len(q_feats) / sample

    cases, peak_gb = [], None
    for threads_label, threads in thread_settings():
        with threadpool_limits(limits=threads):
            times, metrics = paired_median_times(
                bare_products, functools.partial(evaluate_features, q_feats, g_feats, *ids, threads=threads), repeats
            )
            if peak_gb is None:  # before the argsort sample: evaluate_features and the products (one chunk each)
                peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux reports KiB
            argsort_s = argsort_sample_s()
        cases.append(
            {
                "case": "msmt17 features",
                "threads": threads_label,
                "shape": [len(q_feats), len(g_feats), q_feats.shape[1]],
                "baseline": f"q @ g.T in chunks of {chunk} queries",
                **times,
                "ratio": times["evaluate_s"] / times["baseline_s"],
                "ratio_cpu": times["evaluate_cpu_s"] / times["baseline_cpu_s"],
                "target_ratio": None,
                "argsort_s": argsort_s,
                "argsort_sample_rows": sample,
                "speedup_vs_argsort": argsort_s / times["evaluate_s"],
                "inputs_rss_gb": inputs_rss / 1e9,
                "peak_rss_gb": peak_gb,
                "target_peak_gb": TARGET_PEAK_GB,
                "dense_distmat_gb": len(q_feats) * len(g_feats) * 4 / 1e9,
                "metrics": summary(metrics),
                "load_average": os.getloadavg(),
            }
        )
    print(json.dumps(cases))


def print_table(cases):
    """One line per case and thread setting."""
    print(f"{'case':<18}{'threads':<11}{'shape':<19}{'baseline s':>11}{'ours s':>9}  figure")
    for case in cases:
        if "speedup" in case:
            figure = f"{case['speedup']:.1f}x faster than {case['baseline']} ({case['speedup_cpu']:.1f}x in CPU s)"
            if case["target_speedup"]:
                figure += f", target >= {case['target_speedup']:.0f}x"
        else:
            figure = f"{case['ratio']:.3f}x {case['baseline']} ({case['ratio_cpu']:.3f}x in CPU s)"
            if case["target_ratio"]:
                figure += f", target <= {case['target_ratio']}"
        if "peak_rss_gb" in case:
            figure += (
                f"; {case['speedup_vs_argsort']:.1f}x faster than the argsort alone ({case['argsort_s']:.1f} s, "
                f"from {case['argsort_sample_rows']} rows); peak RSS {case['peak_rss_gb']:.2f} GB, target <= "
                f"{case['target_peak_gb']:.0f} (the dense matrix: {case['dense_distmat_gb']:.1f} GB)"
            )
        shape = "x".join(map(str, case["shape"]))
        print(
            f"{case['case']:<18}{case['threads']:<11}{shape:<19}{case['baseline_s']:>11.3f}"
            f"{case['evaluate_s']:>9.3f}  {figure}  {case['metrics']}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=os.path.join("benchmarks", "results", "evaluation.json"))
    parser.add_argument("--repeats", type=int, default=None, help="runs per figure, the median is reported (3)")
    parser.add_argument("--quick", action="store_true", help="one run per figure, no worst case: about a minute")
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"comma-separated subset of {','.join(SIZES)}")
    parser.add_argument("--msmt17-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeats = args.repeats if args.repeats is not None else 1 if args.quick else 3
    if repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.msmt17_child:
        msmt17_child(repeats, args.quick)
        return
    sizes = args.sizes.split(",")
    if not sizes or not set(sizes) <= set(SIZES):
        parser.error(f"--sizes must be a comma-separated subset of {','.join(SIZES)}, got {args.sizes!r}")
    load_before = os.getloadavg()
    cases = []
    if "market" in sizes:
        cases += market_distmat_case("distmat", 1.0, repeats)
        if not args.quick:
            cases += market_distmat_case("random", 30.0, repeats)
        cases += market_features_case(repeats)
    if "msmt17" in sizes:
        cases += msmt17_cases(repeats, args.quick)
    print_table(cases)
    record = {"cases": cases, "repeats": repeats, "quick": args.quick, "blas": threadpool_info()}
    record.update(machine(load_before))
    print(f"numpy {record['numpy']}, load average {load_before} before, {record['load_average_after']} after")
    write_json(args.output, record)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
