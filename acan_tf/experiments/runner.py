"""The paper's ablations as repeated training runs and one table (the command is `python -m acan_tf.experiments`).

    schemes           none (only L_Triplet), grl, oce, ace: Tables V, VI and VII, the confusion matrices of Fig. 8
    lambda_sweep      λ (--adv_weight) in 0, 0.5, ..., 3 with the --scheme (default oce): Fig. 4
    disc_width_sweep  D's width in 64, 128, 256, 512 with the --scheme: Fig. 5
    association       none, oce, none+association, oce+association and the supervised ceiling (beyond the paper),
                      each run also linking held-out people across cameras (acan_tf.evaluation.linking)
    calibration       the realistic preset's calibrated figures against real data's (acan_tf.experiments.calibration)

Every setting is trained once per --seeds seed with `acan_tf.training.trainer.run`, one run after another in this
process, into OUTPUT_DIR/<parameter>-<value>_seed<seed>/. Every flag of acan_tf.train sets the base
configuration (dataset, backbone, steps, ...); the experiment overrides only its parameter, the seed and the
run's output folder. Defaults are acan_tf.train's except a shorter schedule (EXPERIMENT_DEFAULTS: 3 epochs of
100 steps, evaluated after each, learning rates x0.1 after epoch 2): `schemes` (12 runs) takes about 80 minutes on
2 CPU cores with the default pretrained EfficientNet-Lite0 at 128x64 (6-8 minutes a run, evaluated only at the end
with --eval_every=3) and under an hour with --flagfile=configs/tiny.cfg. A run whose report.json holds the same
configuration is reused, and a run of the same configuration that was killed or stopped before its report continues
from its saved step (as --resume does), so an interrupted experiment resumes where it stopped.

Outputs in OUTPUT_DIR (default runs/experiments/EXPERIMENT): results.json (every run's final metrics and
the mean and standard deviation over seeds), results.md (the table: mAP, rank-1/5/10, mINP in %, the
inter-camera discrepancy d of Table VII, D's camera accuracy on the test features), confusion_matrices.png
(D's camera confusion per setting, averaged over seeds), cmc.png, convergence.png (mAP and rank-1 per
evaluation, averaged over seeds, when the runs evaluate more than once) and, for the sweeps, sweep.png.
Each run directory also gets its analysis figures (plots/: t-SNE, CMC, ranked list, ...).

The association experiment also links every run's test split, each (camera, person) group of its query and gallery
one camera-local id, with training's association rule (as `python -m acan_tf.evaluate --link`): the threshold is
chosen at --link_fpr on --link_validation_identities training identities (carved with the run's seed), never on
the test split; pairwise link precision, recall, F1 and the people recovered exactly join the table, mean ± std over
seeds, and the run's report.json keeps the whole document (`linking`; reused while its settings are the same).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Sequence

import numpy as np
from absl import logging

from acan_tf.config import Config, ConfigError
from acan_tf.deploy.calibration import DEFAULT_FPR, check_fpr
from acan_tf.errors import UserError
from acan_tf.evaluation import plots
from acan_tf.evaluation.linking import link_run
from acan_tf.evaluation.reported import (
    ALWAYS_SHOWN,
    CAMERA_NORMALISED,
    CAMERA_STATISTICS_SOURCE,
    LINKING,
    METRICS,
    Metric,
    format_value,
)
from acan_tf.evaluation.runner import evaluate_run
from acan_tf.io import write_json, write_text
from acan_tf.run_dir import RunDir, RunDirectoryError
from acan_tf.training.trainer import run


class ExperimentError(UserError, ValueError):
    """An experiment option is unusable, or a run folder holds another run; the message says which."""


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One parameter of Config varied over `values`, each trained with every seed.

    With `settings`, the values are names of settings instead, each a set of Config overrides (a ladder of stages).
    With `link`, every run also links held-out people across cameras (acan_tf.evaluation.linking).
    """

    parameter: str
    values: tuple
    parse: Callable[[str], object]
    title: str
    label: str
    settings: Mapping[str, Mapping[str, object]] | None = None
    link: bool = False

    def overrides(self, value: object) -> dict[str, object]:
        """The Config fields that `value` sets."""
        if self.settings is None:
            return {self.parameter: value}
        if value not in self.settings:
            raise ExperimentError(f"--values: unknown setting {value!r}; choose from {', '.join(self.settings)}")
        return dict(self.settings[value])


@dataclasses.dataclass(frozen=True)
class Linking:
    """How an experiment's runs are linked: the threshold at `fpr` on `validation_identities` training identities."""

    validation_identities: int = 100
    fpr: float = DEFAULT_FPR
    checkpoint: str = "last"  # the weights of the runs' final evaluation, the table's other columns


# The association ladder: ACAN as published (with and without OCE), each plus the association stage, and the
# labelled ceiling that reads the true cross-camera identities.
ASSOCIATION_LADDER = {
    "none": {"scheme": "none", "cross_camera": "none"},
    "oce": {"scheme": "oce", "cross_camera": "none"},
    "none+association": {"scheme": "none", "cross_camera": "association"},
    "oce+association": {"scheme": "oce", "cross_camera": "association"},
    "supervised": {"scheme": "none", "cross_camera": "supervised"},
}

# Issue 18's ingredients, each switched on over the default (OCE + association) alone: the association's variants for
# weak features and the intra-camera recipe. Values are the papers' or, where they count in other units, the
# nearest for our 300-step default run (a teacher of momentum 0.99 averages about the last 100 steps; CMT's 0.999
# would average more steps than the run has).
INGREDIENTS = {
    "jaccard": {"association_distance": "jaccard"},
    "budget": {"association_budget": 0.3},
    "teacher": {"association_teacher_momentum": 0.99},
    "confidence": {"association_confidence": True},
    "id_memory": {"intra_id_loss": "memory"},
    "id_memory+bn_neck": {"intra_id_loss": "memory", "bn_neck": True},
    "adam": {"optimizer": "adam", "warmup_steps": 30, "lr_pretrained": 3.5e-4, "lr_new": 3.5e-4},
    "camera_centering": {"camera_centering": True},
}
# The ladder of issue 18: the association ladder, then the default with each ingredient.
LADDER = {**ASSOCIATION_LADDER,
          **{f"oce+association+{name}": {**ASSOCIATION_LADDER["oce+association"], **overrides}
             for name, overrides in INGREDIENTS.items()}}


EXPERIMENTS = {
    "schemes": Experiment("scheme", ("none", "grl", "oce", "ace"), str,
                          "Adversarial schemes (Tables V, VI, VII; Fig. 8)", "Scheme"),
    "lambda_sweep": Experiment("adv_weight", (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0), float,
                               "Sensitivity to λ (Fig. 4)", "λ"),
    "disc_width_sweep": Experiment("disc_width", (64, 128, 256, 512), int,
                                   "Sensitivity to the width of D (Fig. 5)", "D width"),
    "association": Experiment("setting", tuple(ASSOCIATION_LADDER), str,
                              "Cross-camera association vs ACAN and the supervised ceiling (which uses the true "
                              "cross-camera labels)", "Setting",
                              ASSOCIATION_LADDER, link=True),
    "ladder": Experiment("setting", tuple(LADDER), str,
                         "The ladder of issue 18: intra-only, OCE, the default, the supervised ceiling and the default "
                         "with each ingredient", "Setting", LADDER),
}


# Training flags whose default differs here: a shorter schedule, its learning-rate decay at 2/3 as in the paper (IV-A).
# The paper's ablations are of ACAN as published, without the association stage (the association ladder sets it).
EXPERIMENT_DEFAULTS = {"epochs": 3, "steps_per_epoch": 100, "eval_every": 1, "lr_decay_epochs": ["2"],
                       "cross_camera": "none"}


def run_experiment(
    name: str,
    base: Config,
    seeds: Sequence[int],
    output_dir: str,
    values: Sequence | None = None,
    command: str = "",
    linking: Linking = Linking(),
) -> dict:
    """Trains every (value, seed) run of experiment `name` (or reuses it) and writes the results; returns them.
    An experiment that links (`Experiment.link`) links each run's test split as `linking` says."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[name]
    values = tuple(experiment.values if values is None else values)
    if not values or not seeds:
        raise ExperimentError(f"the experiment needs at least one value and one seed, got values {values} and seeds "
                              f"{seeds}")
    # Validates every setting before the first (long) run.
    if experiment.link:
        check_fpr(linking.fpr, "--link_fpr")
    configs = {(value, seed): _run_config(base, experiment, value, seed, output_dir)
               for value in values for seed in seeds}
    runs = []
    for (value, seed), config in configs.items():
        runs.append({"value": value, "seed": seed, "run_dir": config.output_dir, **train_or_reuse(config)})
        if experiment.link:
            runs[-1]["linking"] = link_or_reuse(config.output_dir, linking)
    results = {
        "experiment": name,
        "parameter": experiment.parameter,
        "values": list(values),
        "seeds": list(seeds),
        "command": command,
        "base_config": base.to_json(),
        "linking": dataclasses.asdict(linking) if experiment.link else None,
        "runs": runs,
        "summary": summarize_runs(runs, values),
    }
    write_json(os.path.join(output_dir, "results.json"), results)
    figures = write_figures(experiment, results, output_dir)
    write_text(os.path.join(output_dir, "results.md"), markdown(experiment, results, figures))
    return results


def train_or_reuse(config: Config) -> dict:
    """{"final", "evaluations", "seconds", "reused"} of the run `config` describes, trained unless already done."""
    folder = RunDir(config.output_dir)
    previous = _previous_report(folder)
    reused = previous is not None and _same_run(previous.get("config", {}), config)
    if reused:
        logging.info("reusing %s", config.output_dir)
    else:
        if previous is None and _is_interrupted_run(config):
            config = dataclasses.replace(config, resume=True)  # continues from its saved step, as --resume does
        if previous is not None and not config.overwrite:
            raise ExperimentError(
                f"{config.output_dir} holds a run with another configuration; pass --overwrite to replace it or "
                "choose another --output_dir"
            )
        run(config)
    if config.analyses and not os.path.isdir(folder.plots_dir):  # a run reused from before
        evaluate_run(config.output_dir, "last", analyses=True)
    report = folder.read_report()  # as saved, so that trained and reused runs look the same
    return {"final": report["final"], "evaluations": report["evaluations"], "seconds": report["seconds"],
            "reused": reused}


def link_or_reuse(run_dir: str, linking: Linking) -> dict:
    """The linking document of a finished run (acan_tf.evaluation.linking), computed unless its report.json holds
    one of the same settings."""
    folder = RunDir(run_dir)
    previous = folder.read_report().get("linking")
    if previous is not None and _same_linking(previous, linking):
        logging.info("reusing the linking of %s", run_dir)
        return previous
    link_run(run_dir, linking.checkpoint, linking.validation_identities, linking.fpr)  # saved in its report.json
    return folder.read_report()["linking"]  # as saved, so that linked and reused runs look the same


def _same_linking(document: Mapping, linking: Linking) -> bool:
    """Whether a run's linking document was made with these settings."""
    threshold = document.get("threshold", {})
    return (document.get("model", {}).get("checkpoint") == linking.checkpoint
            and threshold.get("validation_identities") == linking.validation_identities
            and threshold.get("fpr_target") == linking.fpr)


def summarize_runs(runs: Sequence[Mapping], values: Sequence) -> dict:
    """Per value: mean, standard deviation (n-1; 0 for one seed) and per-seed values of every table metric (the
    linking metrics from each run's linking document)."""
    summary = {}
    for value in values:
        finals = [{**run["final"], **{metric.key: run["linking"][metric.key] for metric in METRICS
                                      if metric.section == LINKING and "linking" in run}}
                  for run in runs if run["value"] == value]
        summary[str(value)] = {}
        for metric in METRICS:
            samples = [final[metric.key] for final in finals if final.get(metric.key) is not None]
            if samples:
                summary[str(value)][metric.key] = {
                    "mean": float(np.mean(samples)),
                    "std": float(np.std(samples, ddof=1)) if len(samples) > 1 else 0.0,
                    "values": samples,
                }
    return summary


def markdown(experiment: Experiment, results: Mapping, figures: Sequence[str]) -> str:
    """The results as a Markdown document: settings, the mean ± std table, the figures."""
    config = results["base_config"]
    seeds = results["seeds"]
    # Ranking and alignment always, a dash where a run lacks one; the other sections only where a run has them.
    columns = [metric for metric in METRICS if metric.section in ALWAYS_SHOWN
               or any(metric.key in stats for stats in results["summary"].values())]
    lines = [f"# {experiment.title}", ""]
    if results["command"]:
        lines += [f"Command: `{results['command']}`", ""]
    lines += [
        f"Dataset {config['dataset']} at `{config['data_root']}`, backbone {config['backbone']} at "
        f"{config['image_height']}x{config['image_width']}, P={config['num_identities']}, K={config['num_instances']}, "
        f"camera batch {config['camera_batch_size']}, {config['epochs']} epochs x {config['steps_per_epoch']} steps, "
        f"learning rates {config['lr_pretrained']} (F) and {config['lr_new']} (D), "
        f"decay x{config['lr_decay_factor']} at "
        f"epochs {config['lr_decay_epochs']}, scheme {config['scheme']}, λ={config['adv_weight']}, "
        f"D width {config['disc_width']}; the experiment varies `{results['parameter']}`.",
        "",
        f"Mean ± sample standard deviation over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}) of the final "
        "evaluation of each run (Market-1501 protocol on the test split; discrepancy d = 1/C Σ_c ‖mean_c − mean‖ "
        "on the L2-normalised test features; D accuracy: D's camera accuracy on the test features)."
        + (f" Columns marked cam-norm: the same ranking on features normalised by {CAMERA_STATISTICS_SOURCE}."
           if any(metric.section == CAMERA_NORMALISED for metric in columns) else "")
        + (_linking_note(results["linking"]) if any(metric.section == LINKING for metric in columns) else ""),
        "",
        "| " + " | ".join([experiment.label, *(_column_title(metric) for metric in columns)]) + " |",
        "|" + "---|" * (len(columns) + 1),
    ]
    for value in results["values"]:
        stats = results["summary"][str(value)]
        cells = [_cell(stats.get(metric.key), metric) for metric in columns]
        lines.append("| " + " | ".join([str(value), *cells]) + " |")
    lines += ["", *(f"![{os.path.splitext(name)[0]}]({name})" for name in figures), ""]
    return "\n".join(lines)


def _linking_note(linking: Mapping) -> str:
    """What the table says of its linking columns: what is linked, where the threshold comes from."""
    return (f" Link precision, recall and F1: pairwise, over the cross-camera pairs of the test split's (camera, "
            "person) groups linked by the association rule (as `python -m acan_tf.evaluate --link`), each run's "
            f"{linking['checkpoint']} weights; exact ids: the share of test people whose groups form exactly one "
            f"identity. The threshold is chosen at FPR {linking['fpr']:g} on {linking['validation_identities']} "
            "training identities carved with the run's seed, never on the test split; the runs trained on those "
            "identities too, so the threshold may be looser than one chosen on unseen people.")


def write_figures(experiment: Experiment, results: Mapping, output_dir: str) -> list[str]:
    """confusion_matrices.png, cmc.png, convergence.png (several evaluations) and sweep.png (sweeps); their names."""
    by_value = {str(value): [run for run in results["runs"] if run["value"] == value] for value in results["values"]}
    figures = {}
    confusions = {label: np.mean([run["final"]["camera_confusion"] for run in runs], axis=0)
                  for label, runs in by_value.items()
                  if all(run["final"].get("camera_confusion") is not None for run in runs)}
    if confusions:
        figures["confusion_matrices.png"] = lambda path: plots.plot_confusion_matrices(
            confusions, path,
            title=f"D's camera confusion on the test features (mean of {len(results['seeds'])} seed(s))")
    figures["cmc.png"] = lambda path: plots.plot_cmc(
        {label: np.mean([run["final"]["cmc"] for run in runs], axis=0) for label, runs in by_value.items()}, path,
        title="CMC (mean over seeds)")
    histories = {label: _mean_history(runs) for label, runs in by_value.items()}
    if all(len(history) >= 2 for history in histories.values()):
        figures["convergence.png"] = lambda path: plots.plot_convergence(histories, path, title="Convergence (mean "
            "over seeds)")
    if experiment.parse is not str:
        figures["sweep.png"] = lambda path: plots.plot_sweep(
            results["values"],
            {"mAP": [results["summary"][label]["mAP"]["values"] for label in by_value],
             "rank1": [results["summary"][label]["rank1"]["values"] for label in by_value]},
            path, xlabel=experiment.label, title=experiment.title)
    for name, draw in figures.items():
        draw(os.path.join(output_dir, name))
    return list(figures)


def _mean_history(runs: Sequence[Mapping]) -> list[dict]:
    """mAP and rank-1 per epoch, averaged over the runs that evaluated at that epoch."""
    epochs = sorted({evaluation["epoch"] for run in runs for evaluation in run["evaluations"]})
    return [
        {"epoch": epoch,
         **{key: float(np.mean([e[key] for run in runs for e in run["evaluations"] if e["epoch"] == epoch]))
                            for key in ("mAP", "rank1")}}
        for epoch in epochs
    ]


def _column_title(metric: Metric) -> str:
    """A metric's column title, with its unit."""
    return f"{metric.column} (%)" if metric.percent else metric.column


def _cell(stats: Mapping | None, metric: Metric) -> str:
    """mean ± std as the table shows it; a dash for a metric the runs lack (D accuracy of a run without D)."""
    if stats is None:
        return "–"
    text = format_value(metric, stats["mean"], digits=1)
    return text + (f" ± {format_value(metric, stats['std'], digits=1)}" if len(stats["values"]) > 1 else "")


def _run_config(base: Config, experiment: Experiment, value, seed: int, output_dir: str) -> Config:
    """The configuration of one run: the base with the experiment's value, the seed and its own folder."""
    folder = os.path.join(output_dir, f"{experiment.parameter}-{value}_seed{seed}")
    try:
        return dataclasses.replace(base, **experiment.overrides(value), seed=seed, output_dir=folder)
    except ConfigError as error:
        raise ExperimentError(f"--values: {value!r} is not a valid {experiment.parameter} ({error})") from error


def _previous_report(folder: RunDir) -> dict | None:
    """A finished run's report.json, or None if there is none."""
    if not folder.is_finished():
        return None
    try:
        return folder.read_report()
    except RunDirectoryError as error:
        raise ExperimentError(f"{folder.report_file} is unreadable ({error}); delete the run folder to train it "
                              "again") from error


def _is_interrupted_run(config: Config) -> bool:
    """Whether the run folder holds this experiment's own run, stopped before its report (to resume)."""
    folder = RunDir(config.output_dir)
    if not folder.has_config():
        return False
    try:
        return _same_run(folder.read_config().to_json(), config)
    except (RunDirectoryError, ConfigError, TypeError):
        return False


def _same_run(saved: Mapping, config: Config) -> bool:
    """Whether a saved configuration computes the same run as `config` (Config.computed: the rule --resume uses)."""
    try:
        return Config.from_json(dict(saved)).computed() == config.computed()
    except (ConfigError, TypeError):
        return False
