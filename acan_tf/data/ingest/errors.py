"""IngestError: an input folder, track file or video that cannot be turned into crops (one line, no traceback)."""

from acan_tf.errors import UserError


class IngestError(UserError):
    """Bad tracker output or frames; the message names the file (and the line of a track file) and what was expected."""
