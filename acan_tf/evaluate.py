"""`python -m acan_tf.evaluate`: Re-ID metrics of a training run or an exported SavedModel on a query and gallery.

    python -m acan_tf.evaluate --run_dir=runs/acan [--checkpoint=best|last] [--dataset=... --data_root=...]
    python -m acan_tf.evaluate --saved_model=models/acan/1 [--dataset=... --data_root=...]

Prints mAP, rank-1/5/10/20, mINP, the inter-camera discrepancy (Table VII) and, for a run evaluated on its
own dataset, D's camera accuracy; writes them as JSON (--output). --rerank applies k-reciprocal
re-ranking before ranking. --camera_normalization also reports the ranking metrics on features normalised by
unlabelled per-camera statistics of the test images (acan_tf.evaluation.camera_norm). --analyses also writes
the paper's figures into the run directory (or the folder of --output for a SavedModel) and TensorBoard. --link
also links the test split's (camera, person) groups across cameras with training's association rule, its threshold
chosen on validation identities, and measures it (acan_tf.evaluation.linking; a run's report.json gets it too).
The library code is acan_tf.evaluation.runner.
"""

from __future__ import annotations

import os
import sys

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app, flags

from acan_tf.data import DATASET_NAMES
from acan_tf.deploy.calibration import DEFAULT_FPR
from acan_tf.errors import UserError
from acan_tf.evaluation import reported
from acan_tf.evaluation.linking import format_linking, link_run, link_saved_model
from acan_tf.evaluation.reid import Reranking
from acan_tf.evaluation.reported import format_metrics
from acan_tf.evaluation.runner import check_output, default_output, evaluate_run, evaluate_saved_model
from acan_tf.io import write_json
from acan_tf.logs import warnings_only_unless_asked
from acan_tf.run_dir import CHECKPOINTS


def define_flags() -> None:
    """The command's flags (defined only when run as a program, so the module can be imported next to others)."""
    flags.DEFINE_string("run_dir", None, "Training run directory (config.json, run.json, checkpoints/).")
    flags.DEFINE_string("saved_model", None, "Exported SavedModel folder OUT/NAME/VERSION (with model.json).")
    flags.DEFINE_enum("checkpoint", "best", list(CHECKPOINTS), "Checkpoint of the run to evaluate.")
    flags.DEFINE_enum("dataset", None, list(DATASET_NAMES), "Dataset to evaluate on; default: the training dataset.")
    flags.DEFINE_string("data_root", None, "Dataset folder; default: the training data root (same dataset only).")
    flags.DEFINE_integer("batch_size", None, "Images per batch when extracting features; default: the run's "
                         "--eval_batch_size, 128 for a SavedModel.", lower_bound=1)
    flags.DEFINE_boolean("rerank", False, "Re-rank with k-reciprocal encoding (Zhong et al. 2017).")
    flags.DEFINE_integer("rerank_k1", Reranking.k1, "k1 of re-ranking.", lower_bound=1)
    flags.DEFINE_integer("rerank_k2", Reranking.k2, "k2 of re-ranking.", lower_bound=1)
    flags.DEFINE_float("rerank_lambda", Reranking.lambda_value,
                       "lambda of re-ranking: weight of the original distance.", lower_bound=0.0, upper_bound=1.0)
    flags.DEFINE_boolean("camera_normalization", False,
                         "Also report the ranking metrics (*_camnorm) on features normalised per camera: each "
                         "camera's mean embedding over its unlabelled query and gallery images subtracted, then "
                         "L2-normalised (no identity is read).")
    flags.DEFINE_string("output", None, "JSON file to write; default: "
                        "evaluation_<checkpoint>[_<dataset>][_rerank][_camnorm].json in the run directory, or "
                        "evaluation[_<dataset>][_rerank][_camnorm].json in the SavedModel folder.")
    flags.DEFINE_boolean("analyses", False, "Also write the analysis figures (plots/*.png) and TensorBoard images and "
                         "projector (logs/analysis/) into the run directory, or the folder of --output for a "
                         "SavedModel.")
    flags.DEFINE_integer("tsne_points", 2000, "Most points in the t-SNE figure.", lower_bound=3)
    flags.DEFINE_boolean("link", False, "Also link the test split's (camera, person) groups across cameras with "
                         "training's association rule and measure it (pairwise precision/recall/F1, people "
                         "recovered exactly, per camera pair); the threshold is chosen on validation identities.")
    flags.DEFINE_integer("validation_identities", None, "With --link: training identities held out to choose the "
                         "linking threshold on; default: the run's own --validation_identities.", lower_bound=1)
    flags.DEFINE_float("link_fpr", DEFAULT_FPR, "With --link: the false-positive rate of cross-camera proxy pairs "
                       "(validation split) at which the linking threshold is chosen.")


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    warnings_only_unless_asked()
    if (options.run_dir is None) == (options.saved_model is None):
        raise app.UsageError("pass exactly one of --run_dir and --saved_model")
    reranking = Reranking(options.rerank_k1, options.rerank_k2, options.rerank_lambda) if options.rerank else None
    output = options.output or default_output(options.run_dir, options.saved_model, options.checkpoint,
                                              options.dataset, options.rerank, options.camera_normalization)
    try:
        check_output(output)
        if options.run_dir is not None:
            document = evaluate_run(options.run_dir, options.checkpoint, options.dataset, options.data_root,
                                    options.batch_size, reranking, options.analyses, options.tsne_points,
                                    options.camera_normalization)
        else:
            document = evaluate_saved_model(options.saved_model, options.dataset, options.data_root,
                                            options.batch_size or 128, reranking,
                                            os.path.dirname(os.path.abspath(output)) if options.analyses else None,
                                            options.tsne_points, options.camera_normalization)
        if options.link:
            document["linking"] = (
                link_run(options.run_dir, options.checkpoint, options.validation_identities, options.link_fpr,
                         options.batch_size) if options.run_dir is not None else
                link_saved_model(options.saved_model, options.validation_identities, options.link_fpr,
                                 options.batch_size or 128))
    except UserError as error:
        sys.exit(f"acan_tf.evaluate: error: {error}")
    write_json(output, document)
    data = document["dataset"]
    print(f"{data['name']} at {data['root']}: {data['num_query']} queries, {data['num_gallery']} gallery "
          f"{'tracklets' if data['is_video'] else 'images'}"
          + (f"; re-ranked (k1={reranking.k1}, k2={reranking.k2}, lambda={reranking.lambda_value})"
             if reranking else "")
          + (f"; camera-normalised metrics from {reported.CAMERA_STATISTICS_SOURCE}"
             if document["camera_normalization"] else ""))
    print(format_metrics(document["metrics"]))
    for name, path in document["analyses"].items():
        print(f"{name}: {path}")
    if "linking" in document:
        print(format_linking(document["linking"]))
    print(f"wrote {os.path.abspath(output)}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
