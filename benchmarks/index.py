"""Benchmark of the kit's gallery index (export/gallery_index.py): faiss against NumPy brute force, side by side.

For each gallery size (10k and 100k embeddings of --dim, the default Lite0 encoder's 1280; 1M of 256, which fits in
memory twice over): seconds to build the index, resident memory it added, search latency p50/p99 at batch 1 and 64,
and recall@10 against exact search (NumPy brute force's answers). Both backends are built in the same process on
the same data and take turns on every timed batch, so their ratio holds under any load; the load averages before
and after are recorded (`uptime`), and absolute figures taken under load are noisy. Both run on --threads threads
(default 1: OpenBLAS's and OpenMP's spinning threads starved each other on 2 shared cores, slowing both 3-10x).

Data: a Re-ID-like gallery, not uniform noise: N/10 people, each gallery item a noisy view of one (the person's
unit mean + Gaussian noise, L2-normalised); queries are new views of gallery people. People's means vary along 32
latent directions mapped into the embedding space (`--centres=latent`, as learnt embeddings have a low intrinsic
dimension), or are isotropic random directions (`--centres=isotropic`, the hard case for IVF). The mean
same-person and different-person distances are recorded beside the figures. An IVF index's nprobe (lists scanned per
query) is chosen by `GalleryIndex.choose_nprobe`: the fewest reaching --target_recall (recall@10 against exact
search) on --held_out further queries drawn like the measured ones, so the recall reported is not the one tuned.

    python benchmarks/index.py [--sizes 10k,100k,1m] [--dim 1280] [--queries 100] [--threads 1]
                               [--held_out 400] [--target_recall 0.97] [--output benchmarks/results/index.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "export"))

from machine import machine  # noqa: E402  (benchmarks/, the script's own folder)

from acan_tf.io import write_json  # noqa: E402
from gallery_index import TARGET_RECALL, GalleryIndex, faiss, recall_at_k  # noqa: E402  (the kit: export/)

SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}
LARGE_DIM = 256  # the 1M case: 1M x 1280 float32 is 5 GB, twice over with faiss's own copy
ITEMS_PER_PERSON = 10
NOISE = 0.06  # per dimension; at 256-d a view lies ~0.7 from its person's other views, different people ~1.41
TOP_K = 10
BATCH = 64
BATCH_CALLS = 10
LATENT = 32


def gallery_data(count: int, dim: int, num_queries: int, centres: str, seed: int = 0, num_held_out: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(gallery [N, dim], queries [Q, dim], held-out queries [H, dim]) of unit rows (both sets new views of gallery
    people, drawn alike), and the queries' same/different-person mean distances."""
    rng = np.random.default_rng(seed)
    people = max(1, count // ITEMS_PER_PERSON)
    if centres == "latent":  # people vary along few directions (clothing, build...), as learnt embeddings do
        means = rng.standard_normal((people, LATENT), dtype=np.float32) @ rng.standard_normal((LATENT, dim),
                                                                                               dtype=np.float32)
    else:
        means = rng.standard_normal((people, dim), dtype=np.float32)
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    noise = NOISE * float(np.sqrt(256 / dim))  # the same view-to-view distance at every dimension; a float64 NumPy
    # scalar would make the views float64 (NEP 50)

    def views(owner: np.ndarray) -> np.ndarray:
        values = means[owner] + noise * rng.standard_normal((len(owner), dim), dtype=np.float32)
        return values / np.linalg.norm(values, axis=1, keepdims=True)

    owner = np.arange(count) % people
    gallery = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):  # bounded temporaries at 1M
        gallery[start:start + 100_000] = views(owner[start:start + 100_000])
    query_owner = rng.integers(0, people, num_queries + num_held_out)
    queries = views(query_owner)
    held_out, queries, query_owner = queries[num_queries:], queries[:num_queries], query_owner[:num_queries]
    same, other = gallery[query_owner], gallery[(query_owner + 1) % people]  # gallery item i < people: person i
    distances = {"same_person": float(np.linalg.norm(queries - same, axis=1).mean()),
                 "different_person": float(np.linalg.norm(queries - other, axis=1).mean())}
    return gallery, queries, held_out, distances


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def build(backend: str, gallery: np.ndarray) -> tuple[GalleryIndex, dict]:
    """An index of `backend` over `gallery`, and its build seconds and the resident memory it added."""
    before, begin = resident_bytes(), time.perf_counter()
    index = GalleryIndex(gallery.shape[1], "benchmark", backend=backend)
    index.add(gallery)
    figures = {"kind": index.kind, "build_seconds": time.perf_counter() - begin,
               "memory_added_mb": (resident_bytes() - before) / 2**20}
    if index.kind == "ivf":
        figures.update(nlist=index._faiss.nlist, nprobe=index._faiss.nprobe)
    return index, figures


def latencies(indexes: dict[str, GalleryIndex], queries: np.ndarray, batch: int, calls: int) -> dict[str, dict]:
    """p50 and p99 milliseconds per index over `calls` searches of `batch` queries; the indexes take turns on each
    batch (after one warm-up call each), so a change of load hits them alike."""
    times = {name: [] for name in indexes}
    for index in indexes.values():
        index.search(queries[:batch], TOP_K)
    for call in range(calls):
        start = (call * batch) % max(1, len(queries) - batch + 1)
        for name, index in indexes.items():
            begin = time.perf_counter()
            index.search(queries[start:start + batch], TOP_K)
            times[name].append(1000 * (time.perf_counter() - begin))
    return {name: {"p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
                   "calls": calls, "batch": batch} for name, values in times.items()}


def run_size(name: str, dim: int, num_queries: int, centres: str, num_held_out: int, target_recall: float) -> dict:
    """Both backends on one gallery size; an IVF index scans the fewest lists that reach `target_recall` on held-out
    queries (never the measured ones)."""
    count = SIZES[name]
    dim = LARGE_DIM if count >= 1_000_000 else dim
    gallery, queries, held_out, distances = gallery_data(count, dim, num_queries, centres, num_held_out=num_held_out)
    indexes, result = {}, {"size": count, "dim": dim, "centres": centres, "mean_distances": distances}
    for backend in ("numpy", "faiss") if faiss is not None else ("numpy",):
        indexes[backend], result[backend] = build(backend, gallery)
    if faiss is not None and indexes["faiss"].kind == "ivf":
        begin = time.perf_counter()
        recalls = indexes["faiss"].choose_nprobe(held_out, target_recall, TOP_K)
        result["faiss"].update(nprobe=indexes["faiss"].nprobe, choose_nprobe_seconds=time.perf_counter() - begin,
                               nprobe_chosen_on={"held_out_queries": len(held_out), "target_recall": target_recall,
                                                 "recall_at_10_by_nprobe": recalls})
    for batch, calls in ((1, num_queries), (BATCH, BATCH_CALLS)):
        for backend, figures in latencies(indexes, queries, batch, calls).items():
            result[backend][f"batch_{batch}"] = figures
    if faiss is not None:
        exact, found = ([[match.id for match in row] for row in indexes[name].search(queries, TOP_K)]
                        for name in ("numpy", "faiss"))
        result["faiss"]["recall_at_10"] = recall_at_k(found, exact)
        for batch in (1, BATCH):
            result["faiss"][f"speedup_p50_batch_{batch}"] = (result["numpy"][f"batch_{batch}"]["p50_ms"]
                                                             / result["faiss"][f"batch_{batch}"]["p50_ms"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1m", help=f"Comma-separated, of {', '.join(SIZES)}.")
    parser.add_argument("--dim", type=int, default=1280, help="Embedding size below 1M items (Lite0's: 1280).")
    parser.add_argument("--queries", type=int, default=100, help="Batch-1 searches timed per backend.")
    parser.add_argument("--centres", choices=("latent", "isotropic"), default="latent",
                        help=f"People's mean embeddings: along {LATENT} latent directions (as learnt embeddings), or "
                             "isotropic random directions (the hard case for IVF).")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and OpenMP threads of both backends.")
    parser.add_argument("--held_out", type=int, default=400,
                        help="Held-out queries (drawn like the measured ones) on which the IVF nprobe is chosen.")
    parser.add_argument("--target_recall", type=float, default=TARGET_RECALL,
                        help="Recall@10 on the held-out queries that the chosen nprobe must reach.")
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "index.json"))
    parser.add_argument("--size", help=argparse.SUPPRESS)  # one size, in a child process
    args = parser.parse_args()
    if args.size:
        write_json(args.output, run_size(args.size, args.dim, args.queries, args.centres, args.held_out,
                                         args.target_recall))
        return
    sizes = args.sizes.split(",")
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        parser.error(f"--sizes: unknown {', '.join(unknown)}; expected of {', '.join(SIZES)}")
    load_before = os.getloadavg()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    results = {}
    for name in sizes:  # each size in a fresh process: resident memory starts from the same point
        part = f"{args.output}.{name}.tmp.json"
        threads = str(args.threads)  # read by OpenBLAS and OpenMP when the child loads them
        environment = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        subprocess.run([sys.executable, __file__, "--size", name, "--dim", str(args.dim), "--queries",
                        str(args.queries), "--centres", args.centres, "--held_out", str(args.held_out),
                        "--target_recall", str(args.target_recall), "--output", part], check=True, env=environment)
        with open(part) as handle:
            results[name] = json.load(handle)
        os.remove(part)
        figures = results[name]
        line = (f"{name} x {figures['dim']}: numpy p50 {figures['numpy']['batch_1']['p50_ms']:.2f} ms "
                f"(batch {BATCH}: {figures['numpy'][f'batch_{BATCH}']['p50_ms']:.1f} ms)")
        if "faiss" in figures:
            fa = figures["faiss"]
            lists = f" ({fa['nlist']} lists, {fa['nprobe']} scanned)" if fa["kind"] == "ivf" else ""
            line += (f"; faiss {fa['kind']}{lists} p50 {fa['batch_1']['p50_ms']:.3f} ms "
                     f"({fa['speedup_p50_batch_1']:.0f}x), batch {BATCH}: {fa[f'batch_{BATCH}']['p50_ms']:.2f} ms, "
                     f"recall@10 {fa['recall_at_10']:.3f}, build {fa['build_seconds']:.1f} s "
                     f"(numpy {figures['numpy']['build_seconds']:.1f} s), "
                     f"+{fa['memory_added_mb']:.0f} MB (numpy +{figures['numpy']['memory_added_mb']:.0f} MB)")
        print(line, flush=True)
    document = {"uptime_before": uptime, "threads": args.threads, "faiss": None if faiss is None else faiss.__version__,
                "machine": machine(load_before), "results": results}
    write_json(args.output, document)
    print(f"wrote {os.path.abspath(args.output)}")


if __name__ == "__main__":
    main()
