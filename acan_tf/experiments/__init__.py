"""Experiments: the paper's ablations as repeated runs (acan_tf.experiments.runner)."""

from acan_tf.experiments.runner import (
    EXPERIMENTS,
    Experiment,
    ExperimentError,
    markdown,
    run_experiment,
    summarize_runs,
)

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentError", "markdown", "run_experiment", "summarize_runs"]
