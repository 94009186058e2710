"""Benchmark of a graceful stop: seconds from SIGTERM to the trainer's exit, on the default run, tiny and ResNet-50.

Starts `python -m acan_tf.train` on the synthetic benchmark (generated on first use), waits until it has trained a
few steps of its first epoch (read off the progress bar), sends SIGTERM and times the exit. The trainer finishes
the step in flight, saves the full training state and exits with status 143, so the time is about one step plus
one save; the median time per step, read off the same progress bar, is printed beside it. A scheduler's usual grace
period is 30 s.

    python benchmarks/preemption.py [--models default tiny resnet50] [--repeats 3]
        [--output benchmarks/results/preemption.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
# "default" is the README's default run (pretrained EfficientNet-Lite0 at 128x64), "tiny" the small CNN of
# configs/tiny.cfg; ResNet-50 takes the paper's input and batches (256x128, P=32, K=4, camera batch 64), from random
# initialisation since the benchmark measures time, not accuracy.
MODELS = {
    "default": [],
    "tiny": ["--backbone=tiny", "--backbone_weights=none", "--image_height=64", "--image_width=32", "--pad=4"],
    "resnet50": ["--backbone=resnet50", "--backbone_weights=none", "--image_height=256", "--image_width=128",
                 "--num_identities=32", "--num_instances=4", "--pad=10"],
}
STEPS_BEFORE_SIGNAL = 2
STEP = re.compile(r"(\d+)/(\d+)\D.*?(\d+(?:\.\d+)?)(ms|s)/step")


def stop_once(model: str, data_root: str, output_dir: str) -> dict:
    """One run of `model` stopped by SIGTERM after a few steps: exit status, seconds to exit, seconds per step."""
    command = [sys.executable, "-m", "acan_tf.train", f"--data_root={data_root}", f"--output_dir={output_dir}",
               "--epochs=2", "--steps_per_epoch=1000", "--checkpoint_every_steps=100000", "--noanalyses",
               *MODELS[model]]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    progress = {"step": 0, "per_step": None}
    ready = threading.Event()

    def read() -> None:
        buffer = b""
        while chunk := process.stdout.read1(4096):
            buffer = (buffer + chunk)[-4096:]
            found = STEP.findall(buffer.decode("utf-8", "replace").replace("\x1b", ""))
            if found:
                step, _, value, unit = found[-1]
                progress["step"] = int(step)
                progress["per_step"] = float(value) / (1000.0 if unit == "ms" else 1.0)
                if int(step) >= STEPS_BEFORE_SIGNAL:
                    ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    ready.wait(timeout=3600)
    sent = time.perf_counter()
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=3600)
    return {"status": status, "seconds_to_exit": time.perf_counter() - sent, "step_at_signal": progress["step"],
            "seconds_per_step": progress["per_step"]}


def main() -> None:
    """Runs every model --repeats times and prints and writes the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data_root", default=os.path.join(REPO, "data", "synthetic"))
    parser.add_argument("--output", default=os.path.join(REPO, "benchmarks", "results", "preemption.json"))
    options = parser.parse_args()
    results = {"load_average_before": os.getloadavg()}
    for model in options.models:
        runs = []
        for _ in range(options.repeats):
            with tempfile.TemporaryDirectory() as folder:
                runs.append(stop_once(model, options.data_root, os.path.join(folder, "run")))
            print(model, runs[-1], flush=True)
        seconds = sorted(run["seconds_to_exit"] for run in runs)
        results[model] = {"runs": runs, "median_seconds_to_exit": seconds[len(seconds) // 2],
                          "all_exited_143": all(run["status"] == 128 + signal.SIGTERM for run in runs)}
        print(f"{model}: SIGTERM to exit, median {results[model]['median_seconds_to_exit']:.1f} s over {len(runs)} "
              f"runs; a step takes {runs[-1]['seconds_per_step']} s", flush=True)
    results["load_average_after"] = os.getloadavg()
    os.makedirs(os.path.dirname(options.output), exist_ok=True)
    with open(options.output, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
