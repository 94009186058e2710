"""The cross-camera stage of training: the pseudo-identities of the third batch, and the record of how they were made.

With --cross_camera=association, rounds run before --association_first_epoch and every --association_every
epochs after it: F embeds every training item, acan_tf.training.association links camera-local identities
across cameras from those features and the camera-local ids alone, and each item takes its component's
pseudo-identity. The true global ids of the records are read only to *measure* each round (pairwise precision
and recall of its links), never to make it. With --cross_camera=supervised, the pseudo-identities are the true
cross-camera identities from the start: the labelled ceiling, which uses the cross-camera labels.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from absl import logging

from acan_tf.config import Config
from acan_tf.data.sampling import TrainingSet
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.training.association import associate, association_quality, component_statistics, proxy_global_ids

# Round figures logged to TensorBoard (association/<name>) and kept in report.json's "association" rounds; the
# MEASURED ones only when the training records carry true cross-camera ids (a benchmark, not your own cameras).
LOGGED = ("num_components", "mean_component_size", "coverage", "num_links", "cycle_consistent_share")
MEASURED = ("pair_precision", "pair_recall")


@dataclasses.dataclass(frozen=True)
class CrossCameraState:
    """What the stage has made so far: the pseudo-identity of every training item (-1: none) and each round's record."""

    pseudo_ids: np.ndarray | None
    rounds: tuple[dict[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The state as progress.json keeps it."""
        ids = None if self.pseudo_ids is None else self.pseudo_ids.tolist()
        return {"pseudo_ids": ids, "rounds": list(self.rounds)}

    @classmethod
    def from_json(cls, document: dict[str, Any] | None) -> "CrossCameraState":
        """The state saved by `to_json` (an empty one for None)."""
        if not document:
            return cls(None)
        ids = document.get("pseudo_ids")
        return cls(None if ids is None else np.asarray(ids, dtype=np.int32), tuple(document.get("rounds", ())))


def supervised_ids(train: TrainingSet) -> np.ndarray:
    """The TRUE cross-camera identity of every training item, numbered 0..: the supervised ceiling's labels."""
    _, ids = np.unique([record.pid for record in train.records], return_inverse=True)
    return ids.astype(np.int32)


def is_round_epoch(config: Config, epoch: int) -> bool:
    """Whether an association round runs before 0-based `epoch`."""
    first = config.association_first_epoch - 1
    return config.cross_camera == "association" and epoch >= first and (epoch - first) % config.association_every == 0


def association_round(
    config: Config,
    train: TrainingSet,
    embed_frames: Callable[[tf.Tensor], tf.Tensor],
    epoch: int,
    step: int,
    measured: bool = True,
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(pseudo-identity per item, or None if no cross-camera component was found; the round's record).

    `measured`: the records' pids are true cross-camera ids, against which the round's links are measured.
    """
    features = extract_features(embed_frames, train.records, config.image_height, config.image_width,
                                config.eval_batch_size)
    association = associate(l2_normalize(features), train.classes, train.local_ids, config.association_threshold,
                            config.association_centering)
    item_ids = association.item_pseudo_ids(train.classes, train.local_ids)
    record = {"epoch": epoch + 1, "step": step, **component_statistics(association)}
    if measured:  # measured, never used: the true global ids enter the record of the round only
        true_ids = proxy_global_ids(association.proxies, train.classes, train.local_ids,
                                    np.array([record.pid for record in train.records]))
        record.update(association_quality(association.pseudo_ids, association.proxies.cameras, true_ids))
    if record["num_components"] < 2:  # a triplet over pseudo-identities needs two of them
        return None, record
    return item_ids.astype(np.int32), record


def log_round(record: dict[str, Any], logdir: str | None) -> None:
    """One log line for the round, and its figures as TensorBoard scalars (at the round's step) in `logdir`."""
    if record["num_components"] < 2:
        logging.warning("association before epoch %d found %d cross-camera component(s) (%d links at the threshold), "
                        "fewer than the 2 a triplet needs: training continues without the pseudo-identity batch",
                        record["epoch"], record["num_components"], record["num_links"])
    else:
        measured = (f"; measured against the true ids: pair precision {100 * record['pair_precision']:.1f} %, "
                    f"recall {100 * record['pair_recall']:.1f} %" if "pair_precision" in record
                    else "; no cross-camera labels to measure them against")
        logging.info("association before epoch %d: %d links, %d cross-camera pseudo-identities (mean size %.2f, "
                     "%.1f %% of the camera-local identities, %.1f %% of their pairs cycle-consistent links)%s",
                     record["epoch"], record["num_links"], record["num_components"], record["mean_component_size"],
                     100 * record["coverage"], 100 * record["cycle_consistent_share"], measured)
    if logdir is None:
        return
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default(step=record["step"]):
        for name in LOGGED + MEASURED:
            if name in record:
                tf.summary.scalar(f"association/{name}", record[name])
    writer.close()


class CrossCameraStage:
    """Makes the pseudo-identities in force during training: the supervised ceiling's from the start, or each
    association round's. The run keeps the state (acan_tf.training.run_state.RunState.cross_camera)."""

    def __init__(self, config: Config, train: TrainingSet, logdir: str | None,
                 share: Callable[[np.ndarray], np.ndarray], measured: bool = True):
        # `share` makes every worker of a multi-worker run use the chief's pseudo-identities; `measured`: the
        # training pids are true cross-camera ids (a benchmark's), which measure each round.
        self.config, self.train, self.logdir, self.share, self.measured = config, train, logdir, share, measured

    def start(self, state: CrossCameraState) -> CrossCameraState:
        """The state training starts from: a resumed run's, or with --cross_camera=supervised the true identities."""
        if self.config.cross_camera == "supervised" and state.pseudo_ids is None:
            return CrossCameraState(supervised_ids(self.train))
        return state

    def associate(self, state: CrossCameraState, embed_frames: Callable[[tf.Tensor], tf.Tensor], epoch: int,
                  step: int) -> CrossCameraState:
        """`state` after the round due before 0-based `epoch` (at global `step`), its pseudo-identities in force."""
        pseudo_ids, record = association_round(self.config, self.train, embed_frames, epoch, step, self.measured)
        no_ids = np.full(len(self.train.records), -1, dtype=np.int32)
        pseudo_ids = self.share(no_ids if pseudo_ids is None else pseudo_ids)
        log_round(record, self.logdir)
        return CrossCameraState(pseudo_ids if (pseudo_ids >= 0).any() else None, (*state.rounds, record))


def describe_stages(config: Config) -> str:
    """Which training stages a run has, for its printed table and report."""
    stages = ["intra-camera triplets (L_Triplet)"]
    if config.scheme != "none":
        stages.append(f"camera alignment ({config.scheme.upper()}, λ={config.adv_weight:g})")
    if config.cross_camera == "association":
        stages.append("cross-camera association (pseudo-identities from features and camera-local ids)")
    if config.cross_camera == "supervised":
        stages.append("SUPERVISED cross-camera identities (uses the true cross-camera labels: an upper bound, "
                      "not intra-camera supervision)")
    if config.camera_centering:
        stages.append("per-camera centring of the features D and the cross-camera losses see")
    return " + ".join(stages)
