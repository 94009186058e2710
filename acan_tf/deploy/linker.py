"""Linking new footage across cameras with an export: embed every camera-local identity's items, link them with
training's association rule (acan_tf.evaluation.linking.link) at the model card's calibrated threshold.

The footage is one folder in the layout of your own cameras, `<camera>/<local id>/<images>` (video:
`<local id>/<tracklet>/<frames>`), read by acan_tf.data.datasets.cameras.scan_cameras. Items are embedded in
batches of records (a progress bar per batch; only the [N, D] embeddings are kept, never an N x N matrix); a
tracklet's embedding is the L2-normalised mean of its frames' features, as the kit computes it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from acan_tf.data.datasets.cameras import CameraScan, scan_cameras
from acan_tf.data.datasets.layout import DatasetError, subfolder_names
from acan_tf.data.pipeline import find_unreadable
from acan_tf.data.records import ImageRecord, Record, TrackletRecord, frame_paths
from acan_tf.deploy import quantize
from acan_tf.deploy.calibration import unit_rows
from acan_tf.deploy.model_card import MODEL_CARD, ONNX_FILE, ONNX_INT8_FILE
from acan_tf.deploy.saved_model_features import saved_model_features
from acan_tf.errors import UserError
from acan_tf.model.identity import read_model_hash
from acan_tf.run_dir import RunDirectoryError, read_json
from acan_tf.training.association import Association, associate

RUNTIMES = ("onnx", "onnx_int8", "saved_model")
BAD_IMAGES = ("refuse", "skip")
RECORDS_PER_BATCH = 256  # records embedded between two updates of the progress bar
KIND = "acan_tf.link"


class LinkError(UserError):
    """An input of linking is unusable; the message names the flag, file or folder."""


@dataclasses.dataclass(frozen=True)
class Footage:
    """The scanned footage and the items that will be embedded (undecodable frames dropped with --bad_images=skip)."""

    scan: CameraScan
    records: tuple[Record, ...]
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of every frame left out


def read_footage(folder: str, bad_images: str = "refuse") -> Footage:
    """The footage at `folder` (`<camera>/<local id>/...`), checked: cameras with local ids, at least two, every
    image decodable (else refused, or with `skip` left out and named)."""
    if bad_images not in BAD_IMAGES:
        raise LinkError(f"--bad_images={bad_images}: expected one of {', '.join(BAD_IMAGES)}")
    if not os.path.isdir(folder):
        raise LinkError(f"--footage={folder}: not a folder; expected <camera>/<local id>/<images>")
    try:
        scan = scan_cameras(folder)
    except DatasetError as error:
        raise LinkError(f"--footage={folder}: {error}") from error
    empty = sorted(set(subfolder_names(folder)) - set(scan.camera_names))
    if empty:
        raise LinkError(f"--footage={folder}: the camera folder {os.path.join(folder, empty[0])} holds no local id "
                        "with images; expected <camera>/<local id>/<images> (remove the folder or fill it)")
    if len(scan.camera_names) < 2:
        raise LinkError(f"--footage={folder}: one camera ({', '.join(scan.camera_names) or 'none'}): there is nothing "
                        "to link across cameras; linking needs footage of at least two cameras")
    bad = find_unreadable([path for record in scan.records for path in frame_paths(record)])
    if bad and bad_images == "refuse":
        listing = "; ".join(f"{path}: {reason}" for path, reason in bad[:3])
        raise LinkError(f"--footage={folder}: {len(bad)} image(s) cannot be decoded ({listing}); remove them, or "
                        "pass --bad_images=skip to leave them out")
    return Footage(scan, _without(scan.records, {path for path, _ in bad}), tuple(bad))


def _without(records: Sequence[Record], bad: set[str]) -> tuple[Record, ...]:
    """Records without the frames in `bad`; a record left with no frame is dropped."""
    kept = []
    for record in records:
        frames = tuple(path for path in frame_paths(record) if path not in bad)
        if frames:
            kept.append(record if len(frames) == len(frame_paths(record)) else
                        TrackletRecord(frames, record.pid, record.camid) if isinstance(record, TrackletRecord) else
                        ImageRecord(frames[0], record.pid, record.camid))
    return tuple(kept)


def read_export(export_dir: str, runtime: str) -> tuple[dict, Callable[[Sequence[Record]], np.ndarray]]:
    """The model card of an export and a function embedding records with `runtime` (unnormalised features)."""
    if runtime not in RUNTIMES:
        raise LinkError(f"--runtime={runtime}: expected one of {', '.join(RUNTIMES)}")
    try:
        card = read_json(os.path.join(export_dir, MODEL_CARD))
    except RunDirectoryError as error:
        raise LinkError(f"--export={export_dir}: {error}; expected an export folder OUT/NAME/VERSION") from error
    read_model_hash(card, os.path.join(export_dir, MODEL_CARD))  # identities.json names the model by it
    try:
        height, width = int(card["input"]["height"]), int(card["input"]["width"])
    except (KeyError, TypeError, ValueError) as error:
        raise LinkError(f"--export={export_dir}: {MODEL_CARD} has no input.height and input.width") from error
    if runtime == "saved_model":
        if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
            raise LinkError(f"--export={export_dir}: no SavedModel there (exported with --formats without "
                            "saved_model); pass --runtime=onnx")
        model = tf.saved_model.load(export_dir)
        return card, lambda records: saved_model_features(model, records, height, width)
    path = os.path.join(export_dir, ONNX_FILE if runtime == "onnx" else ONNX_INT8_FILE)
    if not os.path.isfile(path):
        raise LinkError(f"--export={export_dir}: no {os.path.basename(path)} there; pass the --runtime it was "
                        "exported with")
    return card, lambda records: quantize.onnx_features(path, records, height, width, 64)


def link_threshold(card: dict, runtime: str, requested: float | None) -> dict:
    """The rule's similarity threshold: `requested`, else the card's calibrated one for `runtime`; an error if
    there is neither."""
    calibration = card.get("calibration", {})
    centre = True  # training's default (--association_centering); a calibrated card records the run's own
    if requested is not None:
        if not -1.0 <= requested <= 1.0:
            raise LinkError(f"--link_threshold={requested}: a cosine similarity (of per-camera centred proxies, as "
                            "training's --association_threshold) lies in [-1, 1]")
        return {"similarity_threshold": requested, "distance": float(np.sqrt(2 - 2 * requested)),
                "source": "--link_threshold", "centre_per_camera": centre}
    links = calibration.get("formats", {}).get(runtime, {}).get("links")
    if calibration.get("status") not in ("calibrated", "user") or links is None:
        reason = calibration.get("reason", "an export made before calibration")
        raise LinkError(f"the model card has no calibrated linking threshold for {runtime} ({reason}): pass "
                        "--link_threshold=S (a cosine similarity in [-1, 1] of per-camera centred proxies, as "
                        "training's --association_threshold), or export the run with its labelled test split present")
    return {"similarity_threshold": links["similarity_threshold"], "distance": links["threshold"],
            "source": f"model card: {runtime}, FPR {links['fpr']:.2g} on {calibration['split']['dataset']}'s test "
                      "split", "centre_per_camera": links["centre_per_camera"]}


def link(features: np.ndarray, cameras: np.ndarray, local_ids: np.ndarray, similarity_threshold: float,
         centre_per_camera: bool = True) -> Association:
    """Training's association rule on the L2-normalised features of items with their camera-local ids."""
    return associate(unit_rows(features), cameras, local_ids, similarity_threshold, centre_per_camera)


def embed_records(embed: Callable[[Sequence[Record]], np.ndarray], records: Sequence[Record],
                  show_progress: bool = True) -> np.ndarray:
    """L2-normalised embeddings [N, D] of records, RECORDS_PER_BATCH at a time, with a progress bar."""
    progress = keras.utils.Progbar(len(records), unit_name="item") if show_progress else None
    parts = []
    for start in range(0, len(records), RECORDS_PER_BATCH):
        parts.append(unit_rows(embed(records[start:start + RECORDS_PER_BATCH])))
        if progress is not None:
            progress.update(min(start + RECORDS_PER_BATCH, len(records)))
    return np.concatenate(parts)


def link_footage(footage: Footage, embeddings: np.ndarray, threshold: dict) -> dict:
    """identities.json: every cross-camera identity with its (camera, local id) members and link distances, and the
    local ids left alone."""
    records, scan = footage.records, footage.scan
    cameras = np.array([record.camid for record in records], dtype=np.int64)
    local_ids = np.array([record.pid for record in records], dtype=np.int64)  # one pid per (camera, local id)
    association = link(embeddings, cameras, local_ids, threshold["similarity_threshold"],
                       threshold["centre_per_camera"])
    proxies = association.proxies
    item_proxies = proxies.index_of(cameras, local_ids)
    items = np.bincount(item_proxies, minlength=len(proxies.cameras))
    paths = {}
    for record, proxy in zip(records, item_proxies.tolist()):
        paths.setdefault(proxy, []).append(frame_paths(record)[0])

    def member(proxy: int) -> dict:
        camera, identity = scan.identities[int(proxies.local_ids[proxy])]
        return {"camera": camera, "local_id": identity, "items": int(items[proxy]), "thumbnails": paths[proxy][:4]}

    identities = []
    for pseudo_id in range(int(association.pseudo_ids.max(initial=-1)) + 1):
        members = np.flatnonzero(association.pseudo_ids == pseudo_id)
        inside = np.isin(association.links, members).all(axis=1)
        links = [{"between": [member(a)["camera"] + "/" + member(a)["local_id"],
                              member(b)["camera"] + "/" + member(b)["local_id"]],
                  "similarity": float(similarity), "distance": float(np.sqrt(max(2 - 2 * similarity, 0.0)))}
                 for (a, b), similarity in zip(association.links[inside].tolist(),
                                               association.link_similarities[inside].tolist())]
        identities.append({"identity": pseudo_id, "members": [member(proxy) for proxy in members.tolist()],
                           "links": links})
    alone = [member(proxy) for proxy in np.flatnonzero(association.pseudo_ids < 0).tolist()]
    return {
        "kind": KIND,
        "threshold": threshold,
        "rule": "acan_tf.training.association.associate: mutual nearest neighbours across cameras above the "
                "threshold, merged strongest first into components with at most one local id per camera",
        "cameras": list(scan.camera_names),
        "local_ids": len(proxies.cameras),
        "cross_camera_identities": len(identities),
        "local_ids_linked": int((association.pseudo_ids >= 0).sum()),
        "skipped_images": [{"path": path, "reason": reason} for path, reason in footage.skipped],
        "identities": identities,
        "alone": alone,
    }


def check_output(folder: str, document_name: str, page_name: str) -> None:
    """Refuses to replace files in `folder` unless its document was written by an earlier `acan_tf.link`."""
    document, page = os.path.join(folder, document_name), os.path.join(folder, page_name)
    ours = False
    if os.path.exists(document):
        try:
            ours = read_json(document).get("kind") == KIND
        except RunDirectoryError:
            ours = False
    if (os.path.exists(document) or os.path.exists(page)) and not ours:
        raise LinkError(f"--output_dir={folder}: {document_name} or {page_name} exists there and was not written by "
                        "acan_tf.link; choose another folder")

