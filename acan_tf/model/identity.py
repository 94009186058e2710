"""A model's identity: the SHA-256 of its weights, the one fact by which every file names the model it belongs to.

model.json, camera_stats.json, identities.json and the kit's gallery index files call it `model_hash`: the SHA-256
(64 hex digits) of F's weights, so equal weights have equal hashes whatever file they were saved in. The kit
(export/model_card.py) reads the same key without TensorFlow; a test keeps the two names equal.
"""

from __future__ import annotations

import hashlib
from typing import Mapping

import keras
import numpy as np

from acan_tf.errors import UserError

MODEL_HASH = "model_hash"
# Files written before the identity was unified named F by a shortened hash under these keys (model.json:
# "fingerprint", next to a "model_hash" of the checkpoint file; camera_stats.json: "model_fingerprint").
LEGACY_KEYS = ("fingerprint", "model_fingerprint")


class ModelIdentityError(UserError, ValueError):
    """A file names its model in a way this version cannot compare; the message names the file and what to do."""


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of all of `model`'s weights in order: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for variable in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(variable)).tobytes())
    return digest.hexdigest()


def model_hash(encoder: keras.Model) -> str:
    """The deployed model's identity: the SHA-256 of F's weights (D and the optimizers are not deployed)."""
    return weights_digest(encoder)


def read_model_hash(document: Mapping, where: str) -> str | None:
    """The `model_hash` a model card or statistics file names (None: tied to no model); a file of the old naming is
    refused, saying to export again."""
    legacy = [key for key in LEGACY_KEYS if key in document]
    if legacy:
        raise ModelIdentityError(f"{where}: names its model by '{legacy[0]}', the naming of exports made before "
                                 f"'{MODEL_HASH}' (the SHA-256 of F's weights) identified the model everywhere; "
                                 "export the run again (python -m acan_tf.export)")
    value = document.get(MODEL_HASH)
    if value is not None and not isinstance(value, str):
        raise ModelIdentityError(f"{where}: {MODEL_HASH} must be a hex string, not {value!r}")
    return value
