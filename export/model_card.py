"""The export's model.json as the kit reads it: where it is, and the model's identity. Needs only the standard library.

`model_hash` is the SHA-256 of the exported encoder's weights (acan_tf.model.identity, which writes it; a test keeps
the names equal): camera_stats.json and the gallery index files name their model by it.
"""

from __future__ import annotations

import json
import os
from typing import Optional

MODEL_CARD = "model.json"
MODEL_HASH = "model_hash"
# The naming of exports made before model_hash identified the model everywhere (as acan_tf.model.identity).
LEGACY_KEYS = ("fingerprint", "model_fingerprint")


def read_card(path: str) -> Optional[dict]:
    """The model card at `path`, or None if there is none (a model file copied alone)."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            card = json.load(handle)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a model card (JSON: {error})") from error
    if not isinstance(card, dict):
        raise ValueError(f"{path}: not a model card (expected a JSON object)")
    return card


def model_hash(document: dict, where: str) -> Optional[str]:
    """The model_hash a model card or statistics file names (None: none); the old naming is refused, saying to
    export again."""
    legacy = [key for key in LEGACY_KEYS if key in document]
    if legacy:
        raise ValueError(f"{where}: names its model by '{legacy[0]}', the naming of exports made before "
                         f"'{MODEL_HASH}' (the SHA-256 of F's weights) identified the model everywhere; export the "
                         "run again (python -m acan_tf.export)")
    return document.get(MODEL_HASH)
