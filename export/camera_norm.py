"""The kit's "normalise" step: camera-aware normalisation with an export's camera_stats.json. Needs only numpy.

For an embedding x of camera c with mean μ_c (the mean L2-normalised embedding of camera c's images):
normalised = (x/|x| − μ_c) / |x/|x| − μ_c|. A camera the file has no statistics for uses the global mean (said once).
The same computation as acan_tf.evaluation.camera_norm, which writes the file; a test keeps the two equal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from matching import l2_normalize
from model_card import MODEL_CARD, model_hash, read_card

STATISTICS_FILE = "camera_stats.json"
KIND = "acan_tf.camera_statistics"
FORMAT_VERSION = 2  # as acan_tf.evaluation.camera_norm
# Largest |difference| between the file's probe embeddings and the model's for the two to be one model: an int8
# export differs from its float model by ~2e-3, another model by far more.
PROBE_TOLERANCE = 0.05


def probe_images(height: int, width: int, count: int) -> np.ndarray:
    """The fixed uint8 probe images [count, H, W, 3] (as acan_tf.deploy.camera_stats.probe_images)."""
    rows, columns, channels = np.arange(height)[:, None, None], np.arange(width)[None, :, None], np.arange(3)
    return np.stack([(rows * 13 + columns * 29 + channels * 61 + index * 101) % 256
                     for index in range(count)]).astype(np.uint8)


class CameraNormalizer:
    """The statistics of camera_stats.json: `normalize(embeddings, camera)` centres them on the camera's mean."""

    def __init__(self, path: str, warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr)):
        self.path, self.warn = path, warn
        self.said: set = set()
        expected = f"expected a camera statistics file written by acan_tf ({STATISTICS_FILE})"
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError as error:
            raise ValueError(f"{path}: no such camera statistics file") from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a readable JSON file ({error})") from error
        if not isinstance(document, dict) or document.get("kind") != KIND:
            raise ValueError(f"{path}: {expected}")
        self.model_hash: Optional[str] = model_hash(document, path)  # the old naming is refused first, by name
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {document.get('format_version')!r}, this kit reads "
                             f"{FORMAT_VERSION}")
        try:
            self.means: Dict[str, np.ndarray] = {str(name): np.asarray(entry["mean"], np.float64)
                                                 for name, entry in document["cameras"].items()}
            self.global_mean = np.asarray(document["global"]["mean"], np.float64)
            probe = document.get("probe")
            self.probe = None if probe is None else np.asarray(probe, np.float64)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ValueError(f"{path}: {expected}; {type(error).__name__}: {error}") from error
        shapes = {mean.shape for mean in (*self.means.values(), self.global_mean)}
        if not self.means or len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"{path}: {expected}; the cameras' means must be vectors of one length")
        if not all(np.all(np.isfinite(mean)) for mean in (*self.means.values(), self.global_mean)):
            raise ValueError(f"{path}: a camera's mean holds a non-finite number")

    def check_model(self, model_folder: Optional[str], embed_pixels: Callable[[np.ndarray], np.ndarray], height: int,
                    width: int, model: str) -> None:
        """Refuses statistics of another model than `model`: by the model_hash of the model.json in `model_folder`,
        else (no card: a served model, a copied file) by its embeddings of the probe images (`embed_pixels`)."""
        card_path = os.path.join(model_folder, MODEL_CARD) if model_folder else None
        card = read_card(card_path) if card_path else None
        if card is not None:
            named = model_hash(card, card_path)
            if named and self.model_hash and named != self.model_hash:
                raise ValueError(f"{self.path}: statistics of the model with model_hash {self.model_hash}, not of "
                                 f"this model (model_hash {named}, {card_path}); compute them with this model "
                                 "(python -m acan_tf.camera_stats)")
            return
        if self.probe is None:
            return
        embeddings = l2_normalize(np.asarray(embed_pixels(probe_images(height, width, len(self.probe))), np.float64))
        difference = float(np.max(np.abs(embeddings - self.probe))) if embeddings.shape == self.probe.shape else np.inf
        if difference > PROBE_TOLERANCE:
            raise ValueError(f"{self.path}: statistics of the model with model_hash {self.model_hash}, not of "
                             f"{model}: its embeddings of the probe images differ by {difference:.3f} "
                             f"(tolerance {PROBE_TOLERANCE}); compute them with this model "
                             "(python -m acan_tf.camera_stats)")

    def normalize(self, embeddings: np.ndarray, camera: str) -> np.ndarray:
        """Embeddings [N, D] of `camera`'s images centred on its mean, then L2-normalised."""
        if embeddings.shape[-1] != len(self.global_mean):
            raise ValueError(f"{self.path}: statistics of {len(self.global_mean)}-dimensional embeddings, the model's "
                             f"are {embeddings.shape[-1]}-dimensional")
        mean = self.means.get(camera)
        if mean is None:
            mean = self.global_mean
            if camera not in self.said:
                self.said.add(camera)
                self.warn(f"note: {self.path} has no statistics for camera {camera} (it has "
                          f"{', '.join(sorted(self.means))}): centred on the global mean of all cameras instead")
        return l2_normalize(l2_normalize(embeddings.astype(np.float64)) - mean).astype(np.float32)


Embed = Callable[[Sequence[Tuple[str, list]]], np.ndarray]


def add_arguments(parser: argparse.ArgumentParser, statistics_default: str) -> None:
    """The kit's camera options: the inputs' camera, the gallery's camera, the statistics file."""
    parser.add_argument("--camera", help="Camera of the inputs: normalise their embeddings with its statistics "
                                         "(camera-aware normalisation; training cameras are c1, c2, ...).")
    parser.add_argument("--gallery_camera", help="Camera of the gallery's images (with --camera and --gallery).")
    parser.add_argument("--camera_stats", help=f"Camera statistics file; default: {statistics_default}.")


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses camera options that do not go together."""
    if args.camera is None and (args.gallery_camera is not None or args.camera_stats is not None):
        parser.error("--gallery_camera and --camera_stats need --camera (the inputs' camera)")
    if args.camera is not None and args.gallery is not None and args.gallery_camera is None:
        parser.error("--camera with --gallery needs --gallery_camera: the gallery's images are normalised with "
                     "their own camera's statistics")


def camera_embedders(camera: Optional[str], gallery_camera: Optional[str], statistics: Optional[str], embed: Embed,
                     model_folder: Optional[str], embed_pixels: Callable[[np.ndarray], np.ndarray], height: int,
                     width: int, model: str) -> Tuple[Embed, Embed]:
    """(query embedder, gallery embedder): `embed` followed by each camera's normalisation, or `embed` itself."""
    if camera is None:
        return embed, embed
    normalizer = CameraNormalizer(statistics)
    normalizer.check_model(model_folder, embed_pixels, height, width, model)
    return (lambda items: normalizer.normalize(embed(items), camera),
            lambda items: normalizer.normalize(embed(items), gallery_camera or camera))
