"""From a tracker's output to your own cameras' layout: `python -m acan_tf.data.ingest --input=DIR --output=DIR2`.

One MOTChallenge-style sequence folder per camera (frames as img1/000001.jpg ... or a video, a track file in the
MOT format) becomes `DIR2/train/<camera>/<track id>/<frame>.jpg`, one local id per kept track, with a manifest
recording where every crop came from, read by --dataset=cameras.
"""

from acan_tf.data.ingest.errors import IngestError
from acan_tf.data.ingest.filters import Filters
from acan_tf.data.ingest.writer import DEFAULT_TRACKS, MANIFEST, SUMMARY, ingest

__all__ = ["DEFAULT_TRACKS", "MANIFEST", "SUMMARY", "Filters", "IngestError", "ingest"]
