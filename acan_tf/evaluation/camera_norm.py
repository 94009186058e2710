"""Camera-aware normalisation: each camera's mean embedding subtracted, then L2-normalised.

A camera's statistics come from *unlabelled* images of that camera (its footage at deployment; the test images of
that camera at evaluation): no identity is read. For a feature x of camera c,

    x̂ = x / ‖x‖,   μ_c = mean of x̂ over the camera's images,   normalised(x) = (x̂ − μ_c) / ‖x̂ − μ_c‖.

The means are taken over L2-normalised embeddings, the output every export format gives (the SavedModel and TF
Serving return only those), so a statistics file computed with any runtime applies to any other. Dividing by each
camera's standard deviation as well changed nothing on real data (FINDINGS.md), so only means are kept. A camera
without statistics (a new one) falls back to the global mean, the count-weighted mean of the cameras' means.

A statistics file (JSON, `STATISTICS_FILE` beside an export) names the model it was computed with by its
`model_hash` (acan_tf.model.identity); applying it to another model is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Mapping, Sequence

import numpy as np

from acan_tf.errors import UserError
from acan_tf.evaluation.features import l2_normalize
from acan_tf.io import write_json
from acan_tf.model.identity import MODEL_HASH, ModelIdentityError, read_model_hash

STATISTICS_FILE = "camera_stats.json"
KIND = "acan_tf.camera_statistics"
FORMAT_VERSION = 2  # 2: the model is named by model_hash (1: by model_fingerprint, refused: export again)
SPACE = "means of L2-normalised embeddings; applied as (x/|x| - mean) / |x/|x| - mean|"


class CameraStatisticsError(UserError):
    """A statistics file is malformed, belongs to another model, or does not fit the features; the message names it."""


@dataclasses.dataclass(frozen=True)
class CameraStatistics:
    """Per-camera mean embeddings (and how many images each came from) of one model, and their global mean.

    `model_hash` names the model (acan_tf.model.identity; None: not tied to one, e.g. statistics computed on the
    fly in evaluation); `source` says in words which unlabelled images the means come from; `probe` holds the
    model's L2-normalised embeddings of fixed probe images (acan_tf.deploy.camera_stats), which a client that cannot
    read the model's hash (TF Serving's REST client) compares with the served model's.
    """

    means: Mapping[str, np.ndarray]
    counts: Mapping[str, int]
    model_hash: str | None = None
    source: str = ""
    probe: np.ndarray | None = None

    def __post_init__(self):
        if not self.means:
            raise CameraStatisticsError("camera statistics need at least one camera")
        if set(self.means) != set(self.counts):
            raise CameraStatisticsError("camera statistics: the cameras of the means and of the counts differ")
        sizes = {np.shape(mean) for mean in self.means.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise CameraStatisticsError(f"camera statistics: expected one mean vector [D] per camera, got shapes "
                                        f"{sorted(sizes)}")
        if any(count < 1 for count in self.counts.values()):
            raise CameraStatisticsError("camera statistics: every camera needs a count of at least one image")

    @classmethod
    def from_features(cls, features: np.ndarray, cameras: Sequence, model_hash: str | None = None,
                      source: str = "", probe: np.ndarray | None = None) -> CameraStatistics:
        """Statistics of `features` [N, D] (raw or L2-normalised) grouped by `cameras` [N] (any keys, kept as str)."""
        features = np.asarray(features, np.float64)
        keys = np.array([str(camera) for camera in cameras])
        if features.ndim != 2 or len(features) != len(keys) or not len(keys):
            raise CameraStatisticsError(f"camera statistics: expected features [N, D] and N camera keys, N > 0; got "
                                        f"features {features.shape} and {len(keys)} keys")
        unit = l2_normalize(features)
        names = sorted(set(keys.tolist()))
        means = {name: unit[keys == name].mean(axis=0) for name in names}
        counts = {name: int(np.sum(keys == name)) for name in names}
        return cls(means, counts, model_hash, source, probe)

    @property
    def feature_dim(self) -> int:
        """D, the embedding size."""
        return len(next(iter(self.means.values())))

    @property
    def cameras(self) -> tuple[str, ...]:
        """The cameras with statistics, sorted."""
        return tuple(sorted(self.means))

    @property
    def global_mean(self) -> np.ndarray:
        """The mean over every image of every camera: the fallback for a camera without statistics."""
        total = sum(self.counts.values())
        return sum(self.counts[name] * np.asarray(self.means[name], np.float64) for name in self.means) / total

    def unknown(self, cameras: Sequence) -> list[str]:
        """The distinct cameras among `cameras` that have no statistics (they fall back to the global mean)."""
        return sorted({str(camera) for camera in cameras} - set(self.means))

    def apply(self, features: np.ndarray, cameras: Sequence,
              warn: Callable[[str], None] | None = None) -> np.ndarray:
        """Features [N, D] normalised by their cameras' means ([N] keys), as float32; see the module docstring.

        Cameras without statistics use the global mean; `warn`, if given, gets one line naming them.
        """
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.feature_dim or len(features) != len(cameras):
            raise CameraStatisticsError(f"camera statistics of {self.feature_dim}-dimensional embeddings cannot "
                                        f"normalise features {features.shape} with {len(cameras)} camera keys")
        keys = np.array([str(camera) for camera in cameras])
        means = np.empty(features.shape, np.float64)
        fallback = self.global_mean
        unknown = self.unknown(keys)
        if unknown and warn is not None:
            warn(fallback_message(self, unknown))
        for name in set(keys.tolist()):
            means[keys == name] = self.means.get(name, fallback)
        return l2_normalize(l2_normalize(features.astype(np.float64)) - means).astype(np.float32)

    def with_camera(self, camera: str, features: np.ndarray) -> CameraStatistics:
        """These statistics with `camera`'s replaced (or added) by those of `features` [N, D] of that camera."""
        new = CameraStatistics.from_features(features, [camera] * len(features))
        if new.feature_dim != self.feature_dim:
            raise CameraStatisticsError(f"camera {camera}: its features are {new.feature_dim}-dimensional, the "
                                        f"statistics {self.feature_dim}-dimensional")
        return dataclasses.replace(self, means={**self.means, **new.means}, counts={**self.counts, **new.counts})

    def check_model(self, model_hash: str | None, where: str) -> None:
        """Refuses statistics computed with another model than the one of `model_hash` (`where` names the file)."""
        if model_hash is not None and self.model_hash is not None and model_hash != self.model_hash:
            raise CameraStatisticsError(f"{where}: statistics of the model with model_hash {self.model_hash}, not "
                                        f"of this model (model_hash {model_hash}); compute them with this model "
                                        "(python -m acan_tf.camera_stats)")

    def to_json(self) -> dict:
        """The statistics as a JSON document (STATISTICS_FILE)."""
        return {
            "kind": KIND,
            "format_version": FORMAT_VERSION,
            MODEL_HASH: self.model_hash,
            "feature_dim": self.feature_dim,
            "space": SPACE,
            "source": self.source,
            "cameras": {name: {"count": int(self.counts[name]), "mean": np.asarray(self.means[name]).tolist()}
                        for name in self.cameras},
            "global": {"count": int(sum(self.counts.values())), "mean": self.global_mean.tolist()},
            "probe": None if self.probe is None else np.asarray(self.probe).tolist(),
        }

    @classmethod
    def from_json(cls, document: Mapping, where: str = "camera statistics") -> CameraStatistics:
        """Statistics from their JSON document; anything malformed is a CameraStatisticsError naming `where`."""
        expected = (f"expected a camera statistics file written by acan_tf ({{\"kind\": \"{KIND}\", \"cameras\": "
                    "{NAME: {\"count\": N, \"mean\": [D numbers]}}, ...})")
        if not isinstance(document, Mapping) or document.get("kind") != KIND:
            raise CameraStatisticsError(f"{where}: {expected}")
        try:
            model_hash = read_model_hash(document, where)  # the old naming (format 1) is refused first, by name
        except ModelIdentityError as error:
            raise CameraStatisticsError(str(error)) from error
        if document.get("format_version") != FORMAT_VERSION:
            raise CameraStatisticsError(f"{where}: format_version {document.get('format_version')!r}, this version "
                                        f"reads {FORMAT_VERSION}")
        try:
            cameras = document["cameras"]
            means = {str(name): np.asarray(entry["mean"], np.float64) for name, entry in cameras.items()}
            counts = {str(name): int(entry["count"]) for name, entry in cameras.items()}
            probe = None if document.get("probe") is None else np.asarray(document["probe"], np.float64)
            statistics = cls(means, counts, model_hash, str(document.get("source", "")), probe)
        except (KeyError, TypeError, ValueError, AttributeError, CameraStatisticsError) as error:
            raise CameraStatisticsError(f"{where}: {expected}; {type(error).__name__}: {error}") from error
        if not all(np.all(np.isfinite(mean)) for mean in means.values()):
            raise CameraStatisticsError(f"{where}: a camera's mean holds a non-finite number")
        if probe is not None and (probe.ndim != 2 or probe.shape[1] != statistics.feature_dim):
            raise CameraStatisticsError(f"{where}: probe embeddings of shape {probe.shape}, expected [N, "
                                        f"{statistics.feature_dim}]")
        if document.get("feature_dim") not in (None, statistics.feature_dim):
            raise CameraStatisticsError(f"{where}: feature_dim {document['feature_dim']} but means of "
                                        f"{statistics.feature_dim} numbers")
        return statistics

    def save(self, path: str) -> None:
        """Writes the statistics to `path`, atomically (a failure leaves any earlier file as it was)."""
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str) -> CameraStatistics:
        """Statistics from a file written by `save`; a missing or malformed file is a CameraStatisticsError."""
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError as error:
            raise CameraStatisticsError(f"{path}: no such camera statistics file") from error
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CameraStatisticsError(f"{path}: not a readable JSON file ({error})") from error
        return cls.from_json(document, os.fspath(path))


def fallback_message(statistics: CameraStatistics, unknown: Sequence[str]) -> str:
    """The one line that says which cameras fall back to the global statistics."""
    return (f"no camera statistics for camera(s) {', '.join(unknown)} (there are statistics for "
            f"{', '.join(statistics.cameras)}): their features are centred on the global mean of all cameras instead")
