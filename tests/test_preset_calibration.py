"""python -m acan_tf.experiments calibration: the realistic preset's figures against the real ones, at tiny size."""

import json
import os
import subprocess
import sys

import pytest

from acan_tf.config import Config
from acan_tf.data import synthetic
from acan_tf.data.synthetic.spec import PRESET_SPECS, spec_document
from acan_tf.experiments import ExperimentError
from acan_tf.experiments.calibration import REAL_FIGURES, run_calibration
from tests import tiny_runs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The realistic preset at tiny size: 2 cameras, 12 training identities with 2 images per camera, 32x16.
TINY_REALISTIC = synthetic.preset_spec("realistic", num_train_ids=12, num_test_ids=6, height=32, width=16)
# The shared tiny run with association rounds before epoch 2, as the default run has them.
TINY_FLAGS = [f"--{key}={value}" for key, value in {**tiny_runs.TINY, "cross_camera": "association"}.items()
              if key != "lr_decay_epochs"] + ["--lr_decay_epochs=1", "--noanalyses"]


def test_the_calibration_band_is_x1_5_around_each_real_figure():
    assert [(figure.real, figure.band) for figure in REAL_FIGURES] == [
        (2.1, pytest.approx((1.4, 3.15))), (5.5, pytest.approx((5.5 / 1.5, 8.25))),
        (6.4, pytest.approx((6.4 / 1.5, 9.6))), (19.7, pytest.approx((19.7 / 1.5, 29.55)))]


def test_calibration_needs_the_synthetic_benchmark(tmp_path):
    with pytest.raises(ExperimentError, match="expected --dataset=synthetic, got --dataset=market1501"):
        run_calibration(Config(dataset="market1501", data_root=str(tmp_path)), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_calibration_generates_the_preset_measures_the_four_figures_and_the_cli_reuses_its_runs(tmp_path, monkeypatch):
    tree, out = tmp_path / "realistic", tmp_path / "calibration"
    monkeypatch.setitem(PRESET_SPECS, "realistic", TINY_REALISTIC)  # generated at tiny size
    base = Config(**{**tiny_runs.TINY, "cross_camera": "association", "lr_decay_epochs": (1,)}, data_root=str(tree),
                  synthetic_preset="realistic")
    results = run_calibration(base, str(out))
    assert synthetic.read_spec_document(str(tree)) == spec_document(TINY_REALISTIC)
    assert results["generation_seconds"] > 0
    measured = {figure["key"]: figure["measured"] for figure in results["figures"]}
    intra_only = json.loads((out / "intra_only" / "report.json").read_text())
    first_round = json.loads((out / "first_round" / "report.json").read_text())
    assert (intra_only["config"]["scheme"], intra_only["config"]["cross_camera"]) == ("none", "none")
    assert (first_round["config"]["cross_camera"], first_round["config"]["epochs"]) == ("association", 2)
    assert measured["intra_only_mAP"] == pytest.approx(100 * intra_only["final"]["mAP"])
    assert measured["first_round_precision"] == pytest.approx(100 * first_round["association"][0]["pair_precision"])
    assert 0 < measured["untrained_mAP"] <= 100 and 0 < measured["untrained_mAP_camnorm"] <= 100
    for figure in results["figures"]:
        assert figure["within"] == (figure["band"][0] <= figure["measured"] <= figure["band"][1])

    # The command with the same settings (the preset and its folder are the experiment's defaults) reuses both runs.
    command = [sys.executable, "-m", "acan_tf.experiments", "calibration", f"--data_root={tree}",
               f"--output_dir={out}", *TINY_FLAGS]
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                           env=tiny_runs.subprocess_env())
    assert again.returncode == 0, again.stderr
    assert "2 runs (0 trained now)" in again.stdout
    rerun = json.loads((out / "results.json").read_text())
    assert rerun["figures"] == results["figures"] and rerun["generation_seconds"] is None  # the untrained ones too
    rows = [line for line in again.stdout.splitlines() if line.startswith("| ") and "(%)" not in line]
    assert [row.split(" | ")[1:3] for row in rows] == [["2.1", "1.40–3.15"], ["5.5", "3.67–8.25"],
                                                        ["6.4", "4.27–9.60"], ["19.7", "13.13–29.55"]]
