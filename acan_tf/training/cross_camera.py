"""The cross-camera stage of training: the pseudo-identities of the third batch, and the record of how they were made.

With --cross_camera=association, rounds run before --association_first_epoch and every --association_every
epochs after it: F embeds every training item, acan_tf.training.association links camera-local identities
across cameras from those features and the camera-local ids alone, and each item takes its component's
pseudo-identity. The true global ids of the records are read only to *measure* each round (pairwise precision
and recall of its links), never to make it. With --cross_camera=supervised, the pseudo-identities are the true
cross-camera identities from the start: the labelled ceiling, which uses the cross-camera labels.

The round's variants (each off by default): --association_distance=jaccard, a link budget growing over the rounds
(--association_budget), a teacher F whose features the rounds use (the trainer passes its embedder), and each
item's link confidence for the weighted cross-camera loss (--association_confidence).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
import tensorflow as tf
from absl import logging

from acan_tf.config import Config, ConfigError
from acan_tf.data.sampling import TrainingSet
from acan_tf.evaluation.features import extract_features, l2_normalize
from acan_tf.training.association import (
    BUDGET_MAX_PROXIES,
    JACCARD_MAX_PROXIES,
    associate,
    association_quality,
    component_statistics,
    link_margins,
    proxy_confidences,
    proxy_global_ids,
)

# Round figures logged to TensorBoard (association/<name>) and kept in report.json's "association" rounds; the
# MEASURED ones only when the training records carry true cross-camera ids (a benchmark, not your own cameras).
LOGGED = ("num_components", "mean_component_size", "coverage", "num_links", "cycle_consistent_share", "link_budget",
          "mean_link_confidence")
MEASURED = ("pair_precision", "pair_recall")


@dataclasses.dataclass(frozen=True)
class CrossCameraState:
    """What the stage has made so far: the pseudo-identity of every training item (-1: none), each round's record and,
    with --association_confidence, every item's link confidence."""

    pseudo_ids: np.ndarray | None
    rounds: tuple[dict[str, Any], ...] = ()
    confidences: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        """The state as progress.json keeps it."""
        ids = None if self.pseudo_ids is None else self.pseudo_ids.tolist()
        document = {"pseudo_ids": ids, "rounds": list(self.rounds)}
        if self.confidences is not None:
            document["confidences"] = self.confidences.tolist()
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any] | None) -> "CrossCameraState":
        """The state saved by `to_json` (an empty one for None)."""
        if not document:
            return cls(None)
        ids, confidences = document.get("pseudo_ids"), document.get("confidences")
        return cls(None if ids is None else np.asarray(ids, dtype=np.int32), tuple(document.get("rounds", ())),
                   None if confidences is None else np.asarray(confidences, dtype=np.float32))


def supervised_ids(train: TrainingSet) -> np.ndarray:
    """The TRUE cross-camera identity of every training item, numbered 0..: the supervised ceiling's labels."""
    _, ids = np.unique([record.pid for record in train.records], return_inverse=True)
    return ids.astype(np.int32)


def is_round_epoch(config: Config, epoch: int) -> bool:
    """Whether an association round runs before 0-based `epoch`."""
    first = config.association_first_epoch - 1
    return config.cross_camera == "association" and epoch >= first and (epoch - first) % config.association_every == 0


def round_number(config: Config, epoch: int) -> int:
    """The 1-based number of the round due before 0-based `epoch` (of a round epoch)."""
    return (epoch - (config.association_first_epoch - 1)) // config.association_every + 1


def link_budget(config: Config, epoch: int, num_proxies: int) -> int | None:
    """The most links the round before `epoch` may make: --association_budget x the proxies, reached at the last
    of the run's rounds and growing linearly to it (Precise-ICS); None without a budget."""
    if not config.association_budget:
        return None
    rounds = round_number(config, config.epochs - 1)
    return math.ceil(config.association_budget * num_proxies * round_number(config, epoch) / rounds)


@dataclasses.dataclass(frozen=True)
class Round:
    """What one round made: the pseudo-identity per item (None if no cross-camera component was found), its record,
    and with --association_confidence each item's link confidence."""

    pseudo_ids: np.ndarray | None
    record: dict[str, Any]
    confidences: np.ndarray | None = None


def make_round(
    config: Config,
    train: TrainingSet,
    embed_frames: Callable[[tf.Tensor], tf.Tensor],
    epoch: int,
    step: int,
    measured: bool = True,
) -> Round:
    """The association round due before 0-based `epoch` (at global `step`), from the features of `embed_frames`.

    `measured`: the records' pids are true cross-camera ids, against which the round's links are measured.
    """
    features = extract_features(embed_frames, train.records, config.image_height, config.image_width,
                                config.eval_batch_size)
    max_links = link_budget(config, epoch, num_proxies(train))
    association = associate(l2_normalize(features), train.classes, train.local_ids, config.association_threshold,
                            config.association_centering, distance=config.association_distance,
                            neighbours=(config.association_k1, config.association_k2), max_links=max_links)
    item_ids = association.item_pseudo_ids(train.classes, train.local_ids)
    record = {"epoch": epoch + 1, "step": step, **component_statistics(association)}
    if max_links is not None:
        record["link_budget"] = max_links
    confidences = None
    if config.association_confidence:
        margins = link_margins(association)
        record["mean_link_confidence"] = float(margins.mean()) if len(margins) else 0.0
        proxy = association.proxies.index_of(train.classes, train.local_ids)
        confidences = proxy_confidences(association, margins)[proxy]
    if measured:  # measured, never used: the true global ids enter the record of the round only
        true_ids = proxy_global_ids(association.proxies, train.classes, train.local_ids,
                                    np.array([record.pid for record in train.records]))
        record.update(association_quality(association.pseudo_ids, association.proxies.cameras, true_ids))
    if record["num_components"] < 2:  # a triplet over pseudo-identities needs two of them
        return Round(None, record)
    return Round(item_ids.astype(np.int32), record, confidences)


def num_proxies(train: TrainingSet) -> int:
    """The camera-local identities (the association's proxies) of the training set."""
    return len(np.unique(np.stack([train.classes, train.local_ids], axis=1), axis=0))


def check_round_size(config: Config, train: TrainingSet) -> None:
    """Raises a ConfigError if the rounds' Jaccard distance or link budget cannot take this training set."""
    if config.cross_camera != "association":
        return
    proxies = num_proxies(train)
    if config.association_distance == "jaccard" and proxies > JACCARD_MAX_PROXIES:
        raise ConfigError(f"--association_distance=jaccard: {proxies} camera-local identities need two {proxies}² "
                          f"float32 matrices ({proxies ** 2 * 8 / 1e9:.1f} GB) per round, above the "
                          f"{JACCARD_MAX_PROXIES} it takes; use --association_distance=cosine")
    if config.association_budget and proxies > BUDGET_MAX_PROXIES:
        raise ConfigError(f"--association_budget={config.association_budget:g}: {proxies} camera-local identities need "
                          f"a {proxies}² similarity matrix per round, above the {BUDGET_MAX_PROXIES} it takes; use "
                          "--association_budget=0")


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
        check_round_size(config, train)
        self.config, self.train, self.logdir, self.share, self.measured = config, train, logdir, share, measured

    def start(self, state: CrossCameraState) -> CrossCameraState:
        """The state training starts from: a resumed run's, or with --cross_camera=supervised the true identities."""
        if self.config.cross_camera == "supervised" and state.pseudo_ids is None:
            return CrossCameraState(supervised_ids(self.train))
        return state

    def associate(self, state: CrossCameraState, embed_frames: Callable[[tf.Tensor], tf.Tensor], epoch: int,
                  step: int) -> CrossCameraState:
        """`state` after the round due before 0-based `epoch` (at global `step`), its pseudo-identities in force."""
        made = make_round(self.config, self.train, embed_frames, epoch, step, self.measured)
        pseudo_ids, record, confidences = made.pseudo_ids, made.record, made.confidences
        no_ids = np.full(len(self.train.records), -1, dtype=np.int32)
        pseudo_ids = self.share(no_ids if pseudo_ids is None else pseudo_ids)
        if self.config.association_confidence:
            no_confidence = np.zeros(len(self.train.records), dtype=np.float32)
            confidences = self.share(no_confidence if confidences is None else confidences)
        log_round(record, self.logdir)
        linked = (pseudo_ids >= 0).any()
        return CrossCameraState(pseudo_ids if linked else None, (*state.rounds, record),
                                confidences if linked else None)


def describe_stages(config: Config) -> str:
    """Which training stages a run has, for its printed table and report."""
    stages = ["intra-camera triplets (L_Triplet)"]
    if config.scheme != "none":
        stages.append(f"camera alignment ({config.scheme.upper()}, λ={config.adv_weight:g})")
    if config.cross_camera == "association":
        variants = [name for name, on in (
            (f"{config.association_distance} similarity", config.association_distance != "cosine"),
            (f"link budget {config.association_budget:g}", config.association_budget > 0),
            (f"teacher F, momentum {config.association_teacher_momentum:g}", config.association_teacher_momentum > 0),
            ("confidence-weighted loss", config.association_confidence),
        ) if on]
        stages.append("cross-camera association (pseudo-identities from features and camera-local ids"
                      + "".join(f"; {variant}" for variant in variants) + ")")
    if config.cross_camera == "supervised":
        stages.append("SUPERVISED cross-camera identities (uses the true cross-camera labels: an upper bound, "
                      "not intra-camera supervision)")
    if config.camera_centering:
        stages.append("per-camera centring of the features D and the cross-camera losses see")
    return " + ".join(stages)
