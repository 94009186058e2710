"""What fragmented tracks cost: the synthetic sequences ingested with and without broken tracks, trained, evaluated.

Each condition renders the sequences of the default synthetic benchmark's training people (acan_tf.data.synthetic.
sequences), ingests them with the default filters, adds the benchmark's labelled test split as query/ and gallery/,
trains with the given flags (--dataset=cameras) and evaluates on that test split. The association's last round is
measured against the sequences' truth.csv (never read by training): pair precision and recall, and how many
same-person pairs inside one camera (a broken track) no component can hold.

    python benchmarks/fragmented_tracks.py --work /tmp/fragments --broken 0 0.5 [--seeds 0] \\
        [-- --flagfile=configs/synthetic.cfg --flagfile=configs/tiny.cfg]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from acan_tf.data.datasets import load_dataset  # noqa: E402
from acan_tf.data.ingest import MANIFEST, Filters, ingest  # noqa: E402
from acan_tf.data.synthetic import SyntheticSpec  # noqa: E402
from acan_tf.data.synthetic.sequences import TRUTH_FILE, SequenceSpec, write_sequences, write_test_split  # noqa: E402
from acan_tf.evaluation.features import extract_features, l2_normalize  # noqa: E402
from acan_tf.model.builder import load_run  # noqa: E402
from acan_tf.training.association import association_quality  # noqa: E402
from acan_tf.training.state import read_progress  # noqa: E402

DEFAULT_TRAIN_FLAGS = ["--flagfile=configs/synthetic.cfg", "--flagfile=configs/tiny.cfg"]


def truth(sequences: str, camera: str) -> dict[str, int]:
    """track id -> person of one camera."""
    with open(os.path.join(sequences, camera, TRUTH_FILE), encoding="utf-8") as handle:
        return {row["track_id"]: int(row["person"]) for row in csv.DictReader(handle)}


def measured_association(run_dir: str, data_root: str, sequences: str) -> dict:
    """The last round's pseudo-identities against the true people of the tracks (per proxy)."""
    progress = read_progress(run_dir)
    pseudo = (progress or {}).get("cross_camera", {}).get("pseudo_ids")
    if pseudo is None:
        return {}
    dataset = load_dataset("cameras", data_root)
    # Training keeps every camera here (each has far more than P local ids), in the dataset's record order.
    people, proxies = {}, {}
    for record, pseudo_id in zip(dataset.train, pseudo):
        camera = dataset.camera_names[record.camid]
        track = os.path.basename(os.path.dirname(record.path))
        proxies[(record.camid, track)] = pseudo_id
        people[(record.camid, track)] = truth(sequences, camera)[track]
    keys = sorted(proxies)
    cameras = np.array([camid for camid, _ in keys])
    quality = association_quality(np.array([proxies[k] for k in keys]), cameras, np.array([people[k] for k in keys]))
    # Same-person proxy pairs inside one camera: the broken tracks no component can join.
    per_camera: dict[tuple[int, int], int] = {}
    for key in keys:
        per_camera[(key[0], people[key])] = per_camera.get((key[0], people[key]), 0) + 1
    quality["same_camera_pairs"] = sum(n * (n - 1) // 2 for n in per_camera.values())
    return quality


def merge_candidates(run_dir: str, data_root: str, sequences: str) -> dict:
    """Could a within-camera merge find the broken tracks? With the run's final F: inside each camera, two local ids
    whose tracks never share a frame and that are each other's most similar such local id are merge candidates;
    their precision and recall against the true same-person pairs (the fragments)."""
    config, acan, _ = load_run(run_dir, "last")
    dataset = load_dataset("cameras", data_root)
    features = l2_normalize(extract_features(acan.encoder, dataset.train, config.image_height, config.image_width))
    with open(os.path.join(data_root, MANIFEST), encoding="utf-8") as handle:
        frames = {os.path.join(data_root, row["path"]): int(row["frame"]) for row in csv.DictReader(handle)}
    found = correct = true = 0
    for camid, camera in enumerate(dataset.camera_names):
        people = truth(sequences, camera)
        index = [i for i, record in enumerate(dataset.train) if record.camid == camid]
        tracks = sorted({os.path.basename(os.path.dirname(dataset.train[i].path)) for i in index})
        span, proxy = {}, []
        for track in tracks:
            items = [i for i in index if os.path.basename(os.path.dirname(dataset.train[i].path)) == track]
            track_frames = [frames[dataset.train[i].path] for i in items]
            span[track] = (min(track_frames), max(track_frames))
            proxy.append(features[items].mean(axis=0))
        proxy = l2_normalize(np.array(proxy))
        similarity = proxy @ proxy.T
        for a, first in enumerate(tracks):
            for b, second in enumerate(tracks):
                overlap = not (span[first][1] < span[second][0] or span[second][1] < span[first][0])
                if a == b or overlap:
                    similarity[a, b] = -np.inf
        best = similarity.argmax(axis=1)
        pairs = {(a, int(best[a])) for a in range(len(tracks)) if best[best[a]] == a and a < best[a]
                 and np.isfinite(similarity[a, best[a]])}
        found += len(pairs)
        correct += sum(people[tracks[a]] == people[tracks[b]] for a, b in pairs)
        by_person: dict[int, int] = {}
        for track in tracks:
            by_person[people[track]] = by_person.get(people[track], 0) + 1
        true += sum(n * (n - 1) // 2 for person, n in by_person.items() if person >= 0)
    return {"merge_pairs": found, "merge_correct": correct, "fragment_pairs": true,
            "merge_precision": correct / found if found else 0.0, "merge_recall": correct / true if true else 0.0}


def run_condition(work: str, broken: float, seed: int, bench_root: str, train_flags: list[str]) -> dict:
    """Render, ingest, train and evaluate one condition."""
    name = f"broken{broken:g}_seed{seed}"
    sequences, data_root, run_dir = (os.path.join(work, name, part) for part in ("sequences", "data", "run"))
    benchmark = load_dataset("synthetic", bench_root)
    if not os.path.isdir(data_root):
        spec = SequenceSpec(SyntheticSpec(), num_people=300, num_frames=200, broken_share=broken, noisy_tracks=10,
                            seed=seed)
        started = time.time()
        write_sequences(sequences, spec)
        rendered = time.time() - started
        started = time.time()
        summary = ingest(sequences, data_root, Filters(), say=print, progress=False)
        ingest_seconds = time.time() - started
        write_test_split(benchmark, data_root)
        crops = sum(camera["crops"] for camera in summary["cameras"].values())
        with open(os.path.join(work, name, "ingest_time.json"), "w") as handle:
            json.dump({"render_seconds": rendered, "ingest_seconds": ingest_seconds, "crops": crops}, handle)
    command = [sys.executable, "-m", "acan_tf.train", *train_flags, "--dataset=cameras", f"--data_root={data_root}",
               f"--output_dir={run_dir}", f"--seed={seed}", "--noanalyses", "--resume"]
    started = time.time()
    subprocess.run(command, check=True)
    with open(os.path.join(run_dir, "report.json")) as handle:
        report = json.load(handle)
    with open(os.path.join(work, name, "ingest_time.json")) as handle:
        timing = json.load(handle)
    return {"condition": name, "broken_share": broken, "seed": seed, "train_seconds": time.time() - started,
            "final": report["final"], "association": measured_association(run_dir, data_root, sequences),
            "within_camera_merge": merge_candidates(run_dir, data_root, sequences), **timing}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--broken", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--benchmark", default="data/synthetic")
    arguments, train_flags = parser.parse_known_args()
    results = []
    for seed in arguments.seeds:
        for broken in arguments.broken:
            results.append(run_condition(arguments.work, broken, seed, arguments.benchmark,
                                         [f for f in train_flags if f != "--"] or DEFAULT_TRAIN_FLAGS))
            print(json.dumps(results[-1], indent=1))
    with open(os.path.join(arguments.work, "results.json"), "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
