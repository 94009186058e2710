"""`python -m acan_tf.export`: exports a trained run's F as a TF Serving SavedModel and/or ONNX, checked against Keras.

Layout: OUT/NAME/VERSION/ holds the SavedModel (saved_model.pb, variables/), model.onnx and model.json (the model card),
and with --formats=...,onnx_int8 model_int8.onnx, refused if it loses more than --int8_map_tolerance of test mAP.
"""

from __future__ import annotations

import sys

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app, flags

from acan_tf.deploy import calibration, quantize
from acan_tf.deploy.exporter import DEFAULT_FORMATS, ONNX_TOLERANCE, SAVED_MODEL_TOLERANCE, export_run
from acan_tf.deploy.onnx_export import OPSET
from acan_tf.errors import UserError
from acan_tf.logs import warnings_only_unless_asked
from acan_tf.run_dir import CHECKPOINTS


def define_flags() -> None:
    """The command's flags (defined only when run as a program, so the module can be imported next to others)."""
    flags.DEFINE_string("run_dir", None, "Training run directory (config.json, run.json, checkpoints/).", required=True)
    flags.DEFINE_string("output_dir", None, "Model base folder: the export goes to OUTPUT_DIR/MODEL_NAME/VERSION.",
                        required=True)
    flags.DEFINE_string("model_name", None, "Model name (TF Serving's model folder).", required=True)
    flags.DEFINE_integer("version", None,
                         "Version folder; default: one more than the highest present. Never overwritten.")
    flags.DEFINE_list("formats", list(DEFAULT_FORMATS), "Formats to export: saved_model, onnx, onnx_int8 (needs onnx).")
    flags.DEFINE_enum("checkpoint", "best", list(CHECKPOINTS), "Checkpoint of the run to export.")
    flags.DEFINE_integer("opset", OPSET, "ONNX opset.")
    flags.DEFINE_float("saved_model_tolerance", SAVED_MODEL_TOLERANCE,
                       "Largest allowed |SavedModel − Keras| on sample inputs.")
    flags.DEFINE_float("onnx_tolerance", ONNX_TOLERANCE, "Largest allowed |ONNX Runtime − Keras| on sample inputs.")
    flags.DEFINE_float("int8_map_tolerance", quantize.MAP_TOLERANCE,
                       "Largest allowed drop of test mAP from the Keras model to the int8 ONNX model "
                       "(0.01: one point).")
    flags.DEFINE_enum("int8_quantization", "static", list(quantize.QUANTIZATIONS),
                      "static: QDQ, calibrated on training images (fast on CPU); dynamic: activations quantized "
                      "when run.")
    flags.DEFINE_integer("int8_calibration_images", quantize.CALIBRATION_IMAGES,
                         "Training images (seeded draw) that calibrate static quantization.", lower_bound=1)
    flags.DEFINE_float("calibration_fpr", calibration.DEFAULT_FPR,
                       "False-positive rate (different people, different cameras) at which the model card's "
                       "same-person distance threshold is chosen, on the run's labelled test split.")
    flags.DEFINE_float("threshold", None, "Same-person distance threshold (in [0, 2]) to write into the model card "
                       "instead of the calibrated one; the way to give one when the run has no labelled test split.")


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    warnings_only_unless_asked()
    try:
        result = export_run(
            options.run_dir, options.output_dir, options.model_name, options.version, options.formats,
            options.checkpoint, options.opset, options.saved_model_tolerance, options.onnx_tolerance,
            options.int8_map_tolerance, options.int8_quantization, options.int8_calibration_images,
            options.calibration_fpr, options.threshold,
        )
    except UserError as error:
        sys.exit(f"acan_tf.export: error: {error}")
    for name, values in result.card["parity"]["max_abs_difference"].items():
        figures = ", ".join(f"{kind} {value:.2e}" for kind, value in values.items())
        print(f"{name}: largest difference from Keras {figures} "
              f"(tolerance {result.card['parity']['tolerance'][name]:g})")
    int8 = result.card["parity"].get("onnx_int8")
    if int8 is not None:
        print(f"onnx_int8 ({int8['quantization']['method']}): test " + ", ".join(
            f"{name} {100 * int8['keras'][name]:.2f} % -> {100 * int8['onnx_int8'][name]:.2f} % "
            f"({100 * int8['change'][name]:+.2f} points)" for name in quantize.COMPARED)
            + f" (mAP tolerance {100 * int8['map_tolerance']:g} points)")
    calibrated = result.card["calibration"]
    if "formats" in calibrated:
        print(f"calibration on {calibrated['split']['dataset']} {calibrated['split']['split']} "
              f"({calibrated['split']['items']} items; threshold at FPR {calibrated['fpr_target']:g}):")
        print(calibration.format_table(calibrated["formats"]))
    if calibrated["status"] == "uncalibrated":
        print(f"calibration: none ({calibrated['reason']}); the same-person threshold is left to the user "
              "(pass --threshold to the kit, or export again with --threshold)")
    elif calibrated["status"] == "user":
        print(f"same-person threshold: {calibrated['threshold']:g}, given by --threshold")
    print(f"exported {', '.join(result.card['formats'])} to {result.path}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
