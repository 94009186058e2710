"""The realistic preset's calibration: four figures on the generated benchmark against the same on real people.

`python -m acan_tf.experiments calibration` generates the benchmark of --synthetic_preset (default here:
realistic, in data/synthetic_realistic) if its folder is empty, and measures with --seed (default 0) and the
default run's settings:

    untrained      the encoder as built (ImageNet weights, no training) evaluated on the test split: mAP
    camera-norm    the same features normalised per camera (acan_tf.evaluation.camera_norm; each camera's statistics
                   from its unlabelled test images): mAP
    intra-only     a run with --scheme=none --cross_camera=none: test mAP
    first round    the default run (--cross_camera=association) trained up to its first association round
                   (--epochs=--association_first_epoch): that round's link precision, report.json "association"[0]

and compares each with the same settings' figure on a real two-camera set (REAL_FIGURES; FINDINGS.md): the preset
predicts real data if every figure falls within x1.5 of the real one. The two runs go to OUTPUT_DIR/intra_only and
OUTPUT_DIR/first_round and are reused or resumed as the other experiments' runs are. Outputs in OUTPUT_DIR: results.json
and results.md (the table with the bands).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Mapping

import keras
import numpy as np

from acan_tf.config import Config
from acan_tf.data import load_dataset
from acan_tf.data.records import ReIDDataset
from acan_tf.data.synthetic import SPEC_FILE
from acan_tf.evaluation.camera_norm import CameraStatistics
from acan_tf.evaluation.features import extract_features
from acan_tf.evaluation.reid import evaluate_reid_features, record_ids
from acan_tf.experiments.runner import ExperimentError, train_or_reuse
from acan_tf.io import write_json, write_text
from acan_tf.model.encoder import build_encoder
from acan_tf.run_dir import RunDir

NAME = "calibration"
TOLERANCE = 1.5  # a figure predicts the real one if it is within this factor of it
# What the experiment changes in acan_tf.train's defaults unless the flag is given.
CALIBRATION_DEFAULTS = {"synthetic_preset": "realistic", "data_root": "data/synthetic_realistic"}


@dataclasses.dataclass(frozen=True)
class Figure:
    """One calibrated figure and its value on real people (in %)."""

    key: str
    title: str
    real: float

    @property
    def band(self) -> tuple[float, float]:
        """The values within x TOLERANCE of the real figure."""
        return self.real / TOLERANCE, self.real * TOLERANCE


# A public two-camera set of real people (485 training identities with 2 images per camera, 486 test identities),
# the default settings with seed 0, Market-1501 protocol (../shared/FINDINGS.md, 2026-12-02).
REAL_FIGURES = (
    Figure("untrained_mAP", "untrained ImageNet features: mAP", 2.1),
    Figure("untrained_mAP_camnorm", "same, each camera's mean subtracted (its unlabelled test images): mAP", 5.5),
    Figure("intra_only_mAP", "intra-camera only (`--scheme=none --cross_camera=none`): mAP", 6.4),
    Figure("first_round_precision", "default run, first association round: link precision", 19.7),
)


def run_calibration(base: Config, output_dir: str, command: str = "") -> dict:
    """Measures the calibrated figures of `base`'s synthetic benchmark (generating it if needed); writes the table."""
    if base.dataset != "synthetic":
        raise ExperimentError(f"calibration measures a generated benchmark: expected --dataset=synthetic, got "
                              f"--dataset={base.dataset}")
    generated = not os.path.isfile(os.path.join(base.data_root, SPEC_FILE))
    started = time.time()
    data = load_dataset("synthetic", base.data_root, camera_shift=base.synthetic_camera_shift,
                        preset=base.synthetic_preset)
    generation_seconds = time.time() - started if generated else None
    measured = _untrained(base, data)
    runs = []
    intra_only = dataclasses.replace(base, scheme="none", cross_camera="none", eval_every=0, analyses=False,
                                     output_dir=os.path.join(output_dir, "intra_only"))
    runs.append({"name": "intra_only", "run_dir": intra_only.output_dir, **train_or_reuse(intra_only)})
    measured["intra_only_mAP"] = 100 * runs[-1]["final"]["mAP"]
    first_round = dataclasses.replace(base, cross_camera="association", epochs=base.association_first_epoch,
                                      eval_every=0, analyses=False, output_dir=os.path.join(output_dir, "first_round"))
    runs.append({"name": "first_round", "run_dir": first_round.output_dir, **train_or_reuse(first_round)})
    measured["first_round_precision"] = 100 * RunDir(first_round.output_dir).read_report()["association"][0][
        "pair_precision"]
    results = {
        "experiment": NAME,
        "command": command,
        "base_config": base.to_json(),
        "generation_seconds": generation_seconds,
        "figures": [{**dataclasses.asdict(figure), "band": list(figure.band), "measured": measured[figure.key],
                     "within": _within(figure, measured[figure.key])} for figure in REAL_FIGURES],
        "runs": runs,
    }
    write_json(os.path.join(output_dir, "results.json"), results)
    write_text(os.path.join(output_dir, "results.md"), markdown(results))
    return results


def markdown(results: Mapping) -> str:
    """The calibration table: each figure, its real value, the band it must fall in, the measured value."""
    config = results["base_config"]
    generated = results["generation_seconds"]
    lines = ["# Calibration of the synthetic benchmark against real people", ""]
    if results["command"]:
        lines += [f"Command: `{results['command']}`", ""]
    lines += [
        f"Preset {config['synthetic_preset']} at `{config['data_root']}` ("
        + (f"generated in {generated:.0f} s" if generated is not None else "found there") + "), seed "
        f"{config['seed']}, backbone {config['backbone']} ({config['backbone_weights']} weights) at "
        f"{config['image_height']}x{config['image_width']}, {config['epochs']} epochs x {config['steps_per_epoch']} "
        f"steps, learning rates {config['lr_pretrained']} (F) and {config['lr_new']} (D), scheme {config['scheme']}; "
        f"the first round after {config['association_first_epoch'] - 1} epoch(s). Real: the same settings on a public "
        f"two-camera set; band: within x{TOLERANCE} of it.",
        "",
        "| figure | real (%) | band (%) | measured (%) | within |",
        "|---|---|---|---|---|",
    ]
    for figure in results["figures"]:
        low, high = figure["band"]
        lines.append(f"| {figure['title']} | {figure['real']:.1f} | {low:.2f}–{high:.2f} | "
                     f"{figure['measured']:.2f} | {'yes' if figure['within'] else 'NO'} |")
    return "\n".join([*lines, ""])


def _within(figure: Figure, value: float) -> bool:
    """Whether `value` falls in the figure's band."""
    low, high = figure.band
    return low <= value <= high


def _untrained(config: Config, data: ReIDDataset) -> dict[str, float]:
    """mAP (%) of the encoder as built, untrained, on the test split: raw and camera-normalised."""
    keras.utils.set_random_seed(config.seed)  # the initialisation of layers without pretrained weights
    encoder = build_encoder(config.backbone, config.image_height, config.image_width, config.backbone_weights)
    query, gallery = (extract_features(encoder, records, config.image_height, config.image_width,
                                       config.eval_batch_size) for records in (data.query, data.gallery))
    (_, query_cameras), (_, gallery_cameras) = record_ids(data.query), record_ids(data.gallery)
    # Statistics from the unlabelled test images of each camera, as a deployment takes them from its footage.
    statistics = CameraStatistics.from_features(np.concatenate([query, gallery]),
                                                np.concatenate([query_cameras, gallery_cameras]))
    normalised = statistics.apply(query, query_cameras), statistics.apply(gallery, gallery_cameras)
    return {
        "untrained_mAP": 100 * evaluate_reid_features(query, gallery, data.query, data.gallery)["mAP"],
        "untrained_mAP_camnorm": 100 * evaluate_reid_features(*normalised, data.query, data.gallery)["mAP"],
    }
