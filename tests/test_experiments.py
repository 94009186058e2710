"""python -m acan_tf.experiments: minute-sized scheme and sweep experiments, their tables and figures, resuming."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from acan_tf.config import Config
from acan_tf.data import load_existing_dataset
from acan_tf.data.validation import carve_validation
from acan_tf.deploy.calibration import calibrate_links, identified_records
from acan_tf.errors import UserError
from acan_tf.evaluation.features import extract_features, frame_embedder
from acan_tf.evaluation.reid import record_ids
from acan_tf.experiments import EXPERIMENTS, ExperimentError, markdown, run_experiment, runner, summarize_runs
from acan_tf.model.builder import load_run
from tests import tiny_runs

pytestmark = pytest.mark.slow  # whole experiments and their command: the full suite only

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shared tiny run, cut to one 2-step epoch.
TINY = {**tiny_runs.TINY, "epochs": 1, "steps_per_epoch": 2, "lr_decay_epochs": ()}
TINY_FLAGS = [f"--{key}={value}" for key, value in TINY.items() if key != "lr_decay_epochs"] + ["--lr_decay_epochs="]


def table_rows(markdown_text: str) -> list[list[str]]:
    rows = [line for line in markdown_text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


@pytest.fixture(scope="module")
def schemes(tiny_tree, tmp_path_factory):
    """The schemes experiment on none and oce, one seed, two steps each: (output folder, results)."""
    out = str(tmp_path_factory.mktemp("schemes"))
    base = Config(**TINY, data_root=tiny_tree)
    return out, run_experiment("schemes", base, [0], out, values=["none", "oce"], command="test")


def test_schemes_table_holds_each_runs_final_metrics(schemes):
    out, results = schemes
    assert [(run["value"], run["seed"]) for run in results["runs"]] == [("none", 0), ("oce", 0)]
    rows = table_rows(open(os.path.join(out, "results.md")).read())
    ranking = ("mAP", "rank1", "rank5", "rank10", "rank20", "mINP")
    titles = ["mAP (%)", "Rank-1 (%)", "Rank-5 (%)", "Rank-10 (%)", "Rank-20 (%)", "mINP (%)"]
    assert rows[0] == ["Scheme", *titles, *(title.replace(" (%)", " cam-norm (%)") for title in titles),
                       "Discrepancy d", "D accuracy (%)"]
    for row, scheme in zip(rows[2:], ["none", "oce"]):
        run_dir = os.path.join(out, f"scheme-{scheme}_seed0")
        with open(os.path.join(run_dir, "report.json")) as handle:
            final = json.load(handle)["final"]
        assert row == [scheme, *(f"{100 * final[key]:.1f}" for key in ranking),
                       *(f"{100 * final[key + '_camnorm']:.1f}" for key in ranking),
                       f"{final['discrepancy']:.4f}", f"{100 * final['d_test_accuracy']:.1f}"]
    assert len(rows) == 4
    on_disk = json.load(open(os.path.join(out, "results.json")))
    assert on_disk["summary"]["oce"]["mAP"]["values"] == [results["runs"][1]["final"]["mAP"]]
    assert on_disk["base_config"]["data_root"] == results["base_config"]["data_root"]


def test_schemes_figures_are_written_and_linked(schemes):
    out, _ = schemes
    # One evaluation per run: no convergence curve; schemes are not a numeric sweep.
    assert sorted(name for name in os.listdir(out) if name.endswith(".png")) == ["cmc.png", "confusion_matrices.png"]
    text = open(os.path.join(out, "results.md")).read()
    assert "![confusion_matrices](confusion_matrices.png)" in text and "![cmc](cmc.png)" in text
    for name in ("cmc.png", "confusion_matrices.png"):
        assert os.path.getsize(os.path.join(out, name)) > 1000


def test_a_finished_run_is_reused_not_retrained(schemes, tiny_tree):
    out, first = schemes
    report = os.path.join(out, "scheme-none_seed0", "report.json")
    before = os.stat(report).st_mtime_ns
    again = run_experiment("schemes", Config(**TINY, data_root=tiny_tree), [0], out, values=["none"])
    assert [run["reused"] for run in again["runs"]] == [True]
    assert os.stat(report).st_mtime_ns == before
    assert again["runs"][0]["final"] == first["runs"][0]["final"]


def test_a_folder_holding_another_run_is_not_replaced(schemes, tiny_tree):
    out, _ = schemes
    other = Config(**{**TINY, "steps_per_epoch": 1}, data_root=tiny_tree)
    with pytest.raises(ExperimentError, match="scheme-none_seed0 holds a run with another configuration"):
        run_experiment("schemes", other, [0], out, values=["none"])


def test_lambda_sweep_plots_the_sweep(tiny_tree, tmp_path):
    base = Config(**{**TINY, "steps_per_epoch": 1}, data_root=tiny_tree)
    results = run_experiment("lambda_sweep", base, [0], str(tmp_path), values=[0.0, 2.0])
    assert [run["run_dir"] for run in results["runs"]] == [str(tmp_path / "adv_weight-0.0_seed0"),
                                                           str(tmp_path / "adv_weight-2.0_seed0")]
    with open(tmp_path / "adv_weight-2.0_seed0" / "config.json") as handle:
        assert json.load(handle)["adv_weight"] == 2.0
    assert os.path.getsize(tmp_path / "sweep.png") > 1000
    assert [row[0] for row in table_rows((tmp_path / "results.md").read_text())[2:]] == ["0.0", "2.0"]


def test_summary_is_mean_and_sample_std_over_seeds():
    finals = [{"mAP": 0.1, "rank1": 0.2, "discrepancy": 0.03}, {"mAP": 0.3, "rank1": 0.5, "discrepancy": 0.01},
              {"mAP": 0.2, "rank1": 0.2, "discrepancy": 0.02}]
    runs = [{"value": "grl", "seed": seed, "final": final} for seed, final in enumerate(finals)]
    summary = summarize_runs(runs, ["grl"])["grl"]
    assert summary["mAP"]["mean"] == pytest.approx(0.2)
    assert summary["rank1"]["std"] == pytest.approx(np.std([0.2, 0.5, 0.2], ddof=1))
    assert summary["discrepancy"]["values"] == [0.03, 0.01, 0.02]
    assert "d_test_accuracy" not in summary  # runs without D have no D accuracy
    results = {"base_config": Config().to_json(), "seeds": [0, 1, 2], "command": "", "parameter": "scheme",
               "values": ["grl"], "summary": {"grl": summary}}
    row = table_rows(markdown(EXPERIMENTS["schemes"], results, []))[2]
    assert row[:3] == ["grl", "20.0 ± 10.0", f"30.0 ± {100 * np.std([0.2, 0.5, 0.2], ddof=1):.1f}"]
    assert row[7:] == ["0.0200 ± 0.0100", "–"]


def test_camera_normalised_columns_appear_where_runs_have_them_and_say_whose_statistics():
    finals = [{"mAP": 0.1, "mAP_camnorm": 0.3, "rank1_camnorm": 0.4}, {"mAP": 0.3, "mAP_camnorm": 0.5}]
    runs = [{"value": "oce", "seed": seed, "final": final} for seed, final in enumerate(finals)]
    results = {"base_config": Config().to_json(), "seeds": [0, 1], "command": "", "parameter": "scheme",
               "values": ["oce"], "summary": summarize_runs(runs, ["oce"])}
    text = markdown(EXPERIMENTS["schemes"], results, [])
    header, _, row = table_rows(text)
    assert row[header.index("mAP cam-norm (%)")] == "40.0 ± 14.1"
    assert row[header.index("Rank-1 cam-norm (%)")] == "40.0"  # one seed has it
    assert "unlabelled per-camera statistics of the test images" in text
    results["summary"] = summarize_runs([{**run, "final": {"mAP": 0.2}} for run in runs], ["oce"])
    text = markdown(EXPERIMENTS["schemes"], results, [])
    assert "cam-norm" not in text and "per-camera statistics" not in text


def test_unknown_experiment_or_value_is_refused_before_training(tmp_path):
    with pytest.raises(ExperimentError, match="unknown experiment 'heights'"):
        run_experiment("heights", Config(), [0], str(tmp_path))
    with pytest.raises(ExperimentError, match="'dann' is not a valid scheme"):
        run_experiment("schemes", Config(), [0], str(tmp_path / "out"), values=["oce", "dann"])
    assert not (tmp_path / "out").exists()


def test_cli_runs_the_experiment_and_prints_its_table(tiny_tree, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "acan_tf.experiments", "schemes", "--values=grl", "--seeds=3", "--noanalyses",
         f"--data_root={tiny_tree}", f"--output_dir={out}", *TINY_FLAGS],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "| grl |" in result.stdout and "1 runs (1 trained now)" in result.stdout
    assert "Sharding callback duration" not in result.stderr  # TensorFlow's INFO line at every state save
    assert (out / "scheme-grl_seed3" / "report.json").is_file()
    assert "Command: `python -m acan_tf.experiments schemes --values=grl --seeds=3" in (out / "results.md").read_text()


def test_cli_names_a_bad_value():
    result = subprocess.run([sys.executable, "-m", "acan_tf.experiments", "disc_width_sweep", "--values=wide"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "acan_tf.experiments: error: --values: cannot read 'wide'" in result.stderr


def test_linking_columns_are_the_mean_and_std_of_each_runs_linking_over_seeds():
    linking = [{"pair_precision": 0.9, "pair_recall": 0.5, "pair_f1": 0.6, "people_recovered_exactly": 0.25},
               {"pair_precision": 0.7, "pair_recall": 0.7, "pair_f1": 0.7, "people_recovered_exactly": 0.75}]
    runs = [{"value": "oce", "seed": seed, "final": {"mAP": 0.2}, "linking": document}
            for seed, document in enumerate(linking)]
    summary = summarize_runs(runs, ["oce"])
    assert summary["oce"]["pair_f1"]["values"] == [0.6, 0.7]
    assert summary["oce"]["pair_precision"]["std"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    results = {"base_config": Config().to_json(), "seeds": [0, 1], "command": "", "parameter": "setting",
               "values": ["oce"], "summary": summary,
               "linking": {"validation_identities": 100, "fpr": 0.001, "checkpoint": "last"}}
    text = markdown(EXPERIMENTS["association"], results, [])
    header, _, row = table_rows(text)
    assert header[-4:] == ["Link precision (%)", "Link recall (%)", "Link F1 (%)", "Exact ids (%)"]
    assert row[-4:] == ["80.0 ± 14.1", "60.0 ± 14.1", "65.0 ± 7.1", "50.0 ± 35.4"]
    assert "FPR 0.001 on 100 training identities" in text and "never on the test split" in text
    results["summary"] = summarize_runs([{"value": "oce", "seed": 0, "final": {"mAP": 0.2}}], ["oce"])
    assert "Link" not in markdown(EXPERIMENTS["schemes"], results, [])  # runs without linking: no such columns


def test_association_experiment_links_held_out_people_for_every_run(tiny_tree, tmp_path, monkeypatch):
    """At tiny size: each run's linking is evaluate --link's document, its threshold chosen on validation
    identities carved from the training split (never the test split), summarised over seeds, and reused."""
    out = str(tmp_path / "association")
    base = Config(**{**TINY, "steps_per_epoch": 1}, data_root=tiny_tree)
    linking = runner.Linking(validation_identities=4, fpr=0.01)
    results = run_experiment("association", base, [0, 1], out, values=["none", "oce"], linking=linking)
    dataset = load_existing_dataset("synthetic", tiny_tree)
    test_items = len(identified_records(dataset))
    for run in results["runs"]:
        document = run["linking"]
        assert document == json.load(open(os.path.join(run["run_dir"], "report.json")))["linking"]
        assert document["model"]["checkpoint"] == "last" and document["test_split"]["items"] == test_items
        config, acan, _ = load_run(run["run_dir"], "last")
        validation = identified_records(carve_validation(dataset, 4, run["seed"]))
        embed = frame_embedder(acan.encoder, config.image_height, config.image_width)
        features = extract_features(embed, validation, config.image_height, config.image_width, 64)
        pids, cameras = record_ids(validation)
        expected = calibrate_links(features, cameras, pids, 0.01, config.association_centering)
        assert document["threshold"]["similarity_threshold"] == pytest.approx(expected["similarity_threshold"])
        assert document["threshold"]["validation_identities"] == 4
        assert 0.0 <= document["pair_f1"] <= 1.0
    for value in ("none", "oce"):
        f1 = [run["linking"]["pair_f1"] for run in results["runs"] if run["value"] == value]
        assert results["summary"][value]["pair_f1"]["mean"] == pytest.approx(np.mean(f1))
        assert results["summary"][value]["pair_f1"]["std"] == pytest.approx(np.std(f1, ddof=1))
    header = table_rows(open(os.path.join(out, "results.md")).read())[0]
    assert header[-4:] == ["Link precision (%)", "Link recall (%)", "Link F1 (%)", "Exact ids (%)"]
    assert json.load(open(os.path.join(out, "results.json")))["linking"] == {"validation_identities": 4,
                                                                             "fpr": 0.01, "checkpoint": "last"}

    def not_again(*args):
        raise AssertionError("linked again")

    monkeypatch.setattr(runner, "link_run", not_again)
    again = run_experiment("association", base, [0, 1], out, values=["none", "oce"], linking=linking)
    assert [run["linking"] for run in again["runs"]] == [run["linking"] for run in results["runs"]]
    with pytest.raises(AssertionError, match="linked again"):  # other settings: linked anew
        run_experiment("association", base, [0], out, values=["none"], linking=runner.Linking(4, 0.02))
    with pytest.raises(UserError, match="--link_fpr=2.0: expected a false-positive rate"):
        run_experiment("association", base, [0], out, values=["none"], linking=runner.Linking(4, 2.0))


def test_the_ladder_is_the_association_ladder_then_the_default_with_each_ingredient_alone(tmp_path):
    ladder = EXPERIMENTS["ladder"]
    default = runner.ASSOCIATION_LADDER["oce+association"]
    assert {name: ladder.settings[name] for name in runner.ASSOCIATION_LADDER} == runner.ASSOCIATION_LADDER
    for name, overrides in runner.INGREDIENTS.items():
        row = ladder.overrides(f"oce+association+{name}")
        assert row == {**default, **overrides} and set(row) - set(default) == set(overrides)
        # every row is a valid configuration, refused before training if not
        config = runner._run_config(Config(), ladder, f"oce+association+{name}", 0, str(tmp_path))
        assert all(getattr(config, key) == value for key, value in row.items())
