"""`python -m acan_tf.camera_stats`: computes one camera's statistics for camera-aware normalisation from a folder of
that camera's images (unlabelled), with an export, and adds them to its statistics file.

    python -m acan_tf.camera_stats --model=models/acan/1 --camera=lobby --images=footage/lobby/
    python -m acan_tf.camera_stats --model=models/acan/1/model_int8.onnx --camera=c1 --images=c1/ --runtime=onnx

The file (default: camera_stats.json in the export folder, which the export writes for the training cameras) keeps
the other cameras' statistics; a camera already in it is replaced. A file of another model is refused, naming both
model hashes, and nothing is written when anything is wrong. The library code is acan_tf.deploy.camera_stats.
"""

from __future__ import annotations

import sys

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app, flags

from acan_tf.deploy.camera_stats import RUNTIMES, update_camera
from acan_tf.errors import UserError
from acan_tf.evaluation.camera_norm import STATISTICS_FILE
from acan_tf.logs import warnings_only_unless_asked


def define_flags() -> None:
    """The command's flags (defined only when run as a program, so the module can be imported next to others)."""
    flags.DEFINE_string("model", None, "Export folder OUT/NAME/VERSION (with model.json), or model.onnx / "
                        "model_int8.onnx in it.", required=True)
    flags.DEFINE_string("camera", None, "The camera's name, as the deployment names it (training cameras: c1, c2, "
                        "...).", required=True)
    flags.DEFINE_string("images", None, "Folder of the camera's images (unlabelled; its image files, not sub-folders).",
                        required=True)
    flags.DEFINE_enum("runtime", "auto", list(RUNTIMES), "Runtime computing the embeddings; auto: ONNX Runtime if the "
                      "export has model.onnx, else the SavedModel.")
    flags.DEFINE_string("statistics", None, f"Statistics file to update or create; default: {STATISTICS_FILE} in the "
                        "export folder.")
    flags.DEFINE_integer("batch_size", 64, "Images per batch.", lower_bound=1)


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    warnings_only_unless_asked()
    try:
        statistics, path = update_camera(options.model, options.camera, options.images, options.runtime,
                                         options.statistics, options.batch_size)
    except UserError as error:
        sys.exit(f"acan_tf.camera_stats: error: {error}")
    cameras = ", ".join(f"{name} ({statistics.counts[name]} images)" for name in statistics.cameras)
    print(f"camera {options.camera}: statistics of {statistics.counts[options.camera]} images")
    print(f"wrote {path}: model_hash {statistics.model_hash}, cameras {cameras}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
