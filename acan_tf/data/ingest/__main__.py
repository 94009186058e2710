"""`python -m acan_tf.data.ingest --input=DIR --output=DIR2`: a tracker's output to your own cameras' layout.

DIR holds one folder per camera, named as the camera: its frames (img1/000001.jpg ... or one video file, with
pip install -e ".[video]") and its track file (gt/gt.txt, or --tracks). DIR2 gets train/<camera>/<track id>/
crops, manifest.csv and ingest.json; train on it with --dataset=cameras --data_root=DIR2.
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

from acan_tf.data.ingest import DEFAULT_TRACKS, Filters, ingest
from acan_tf.errors import UserError

DEFAULTS = Filters()


def define_flags() -> None:
    """The command's flags (only when run as a program, so importing never clashes with another command's)."""
    flags.DEFINE_string("input", None, "Folder of camera folders: <camera>/img1/000001.jpg (or a video) and the "
                                       "track file.")
    flags.DEFINE_string("output", None, "New folder to write train/<camera>/<track id>/ crops into.")
    flags.DEFINE_string("tracks", DEFAULT_TRACKS, "Track file of each camera, relative to its folder unless absolute; "
                                                  "{camera} is replaced by the camera's name (e.g. "
                                                  "/results/bytetrack/{camera}.txt).")
    flags.DEFINE_float("min_confidence", DEFAULTS.min_confidence, "Boxes with a lower confidence are dropped "
                       "(MOT ground truth marks boxes to ignore with 0: use 0.5 on gt.txt).")
    flags.DEFINE_float("min_visible", DEFAULTS.min_visible, "Boxes with a smaller share of their area inside the "
                       "frame are dropped.")
    flags.DEFINE_integer("min_box_height", DEFAULTS.min_box_height, "Boxes lower than this (pixels, after clipping "
                         "to the frame) are dropped.")
    flags.DEFINE_integer("min_track_length", DEFAULTS.min_track_length, "Tracks with fewer boxes left are dropped.")
    flags.DEFINE_integer("frames_per_track", DEFAULTS.frames_per_track, "Crops kept per track, spread evenly over "
                         "it (0: every frame).")
    flags.DEFINE_integer("min_ids_per_camera", DEFAULTS.min_ids_per_camera, "Cameras with fewer tracks kept are "
                         "dropped.")
    flags.DEFINE_boolean("progress", True, "Show the progress of the crops written.")
    flags.mark_flags_as_required(["input", "output"])


def main(argv: Sequence[str]) -> None:
    """Runs the ingest with the command-line flags."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    try:
        filters = Filters(**{field: values[field].value for field in Filters.__dataclass_fields__})
        ingest(values.input, values.output, filters, values.tracks, progress=values.progress)
    except UserError as error:
        sys.exit(f"acan_tf.data.ingest: error: {error}")
    except OSError as error:  # a full disk or a folder without permission: nothing was renamed into place
        sys.exit(f"acan_tf.data.ingest: error: cannot write {error.filename or values.output}: "
                 f"{error.strerror or error}; nothing was written to --output={values.output}")
    print(f"train on it: python -m acan_tf.train --dataset=cameras --data_root={values.output}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
