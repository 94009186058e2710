"""Linking new footage across cameras with an export: embed every camera-local identity's items, link them with
training's association rule (acan_tf.evaluation.linking.link) at the model card's calibrated threshold.

The footage is one folder in the layout of your own cameras, `<camera>/<local id>/<images>` (video:
`<local id>/<tracklet>/<frames>`), read by acan_tf.data.datasets.cameras.scan_cameras. Items are embedded in
batches of frames (a progress bar per batch; only the [N, D] embeddings are kept, never an N x N matrix), each
image decoded once, by training's decoder, for its embedding and its thumbnail; a tracklet's embedding is the
L2-normalised mean of its frames' features, as the kit computes it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Sequence

import keras
import numpy as np
import onnxruntime
import tensorflow as tf

from acan_tf.data.datasets.cameras import CameraScan, scan_cameras
from acan_tf.data.datasets.layout import DatasetError, subfolder_names
from acan_tf.data.pipeline import UNREADABLE, read_image, resize_image, unreadable_reason
from acan_tf.data.records import ImageRecord, Record, TrackletRecord, frame_paths
from acan_tf.deploy.calibration import unit_rows
from acan_tf.deploy.link_page import thumbnail
from acan_tf.deploy.model_card import MODEL_CARD, ONNX_FILE, ONNX_INT8_FILE
from acan_tf.deploy.quantize import as_uint8
from acan_tf.deploy.serving import EMBEDDINGS, FEATURES, IMAGE_SIGNATURE, IMAGES, TRACKLET_SIGNATURE, TRACKLETS
from acan_tf.errors import UserError
from acan_tf.model.identity import read_model_hash
from acan_tf.run_dir import RunDirectoryError, read_json
from acan_tf.training.association import Association, associate

RUNTIMES = ("onnx", "onnx_int8", "saved_model")
BAD_IMAGES = ("refuse", "skip")
FRAMES_PER_BATCH = 256  # frames decoded and embedded between two updates of the progress bar (bounds memory)
ONNX_BATCH = 64  # frames per ONNX Runtime call
THUMBNAILS_PER_LOCAL_ID = 4
KIND = "acan_tf.link"


class LinkError(UserError):
    """An input of linking is unusable; the message names the flag, file or folder."""


# An item's uint8 frames [T, H, W, 3] each → their L2-normalised embeddings [n, D] (a tracklet: its frames' mean).
EmbedItems = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclasses.dataclass(frozen=True)
class EmbeddedFootage:
    """The footage's items as embedded: each image decoded once, for its embedding and (the first few of each local
    id) its thumbnail; undecodable frames left out with --bad_images=skip."""

    scan: CameraScan
    records: tuple[Record, ...]  # the items embedded, without the frames left out (an item left with none: dropped)
    embeddings: np.ndarray  # [len(records), D], L2-normalised
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of every frame left out
    thumbnails: Mapping[int, tuple[tuple[str, str], ...]]  # local id (pid) → (frame path, data: URL), at most 4


def read_footage(folder: str) -> CameraScan:
    """The footage at `folder` (`<camera>/<local id>/...`), checked without decoding an image: cameras with local
    ids, at least two."""
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
    return scan


def embed_footage(scan: CameraScan, embed_items: EmbedItems, height: int, width: int, bad_images: str = "refuse",
                  show_progress: bool = True) -> EmbeddedFootage:
    """Embeds every item of the footage in batches of about FRAMES_PER_BATCH frames (a progress bar per batch; only
    the [N, D] embeddings are kept, never an N x N matrix), decoding each image once: an undecodable one refuses
    the footage (every one counted, the first three named; nothing embedded past the first) or, with `skip`, is
    left out and named."""
    if bad_images not in BAD_IMAGES:
        raise LinkError(f"--bad_images={bad_images}: expected one of {', '.join(BAD_IMAGES)}")
    progress = keras.utils.Progbar(len(scan.records), unit_name="item") if show_progress else None
    kept, parts, skipped, thumbnails = [], [], [], {}
    batch_records, items, frames_in_batch = [], [], 0

    def embed_batch() -> None:
        if items and not (skipped and bad_images == "refuse"):  # refused anyway: decode on only to name them all
            parts.append(unit_rows(embed_items(items)))
            kept.extend(batch_records)
        batch_records.clear()
        items.clear()

    for done, record in enumerate(scan.records, 1):
        frames, paths = [], []
        for path in frame_paths(record):
            try:
                image = read_image(path)
            except UNREADABLE as error:
                skipped.append((path, unreadable_reason(error)))
                continue
            shown = thumbnails.setdefault(record.pid, [])
            if not paths and len(shown) < THUMBNAILS_PER_LOCAL_ID:  # an item's first frame, as the page shows it
                shown.append((path, thumbnail(image.numpy())))
            frames.append(resize_image(image, height, width).numpy())
            paths.append(path)
        if frames:
            batch_records.append(_with_frames(record, paths))
            items.append(as_uint8(np.stack(frames)))
            frames_in_batch += len(frames)
        if frames_in_batch >= FRAMES_PER_BATCH or done == len(scan.records):
            embed_batch()
            frames_in_batch = 0
            if progress is not None:
                progress.update(done)
    if skipped and bad_images == "refuse":
        listing = "; ".join(f"{path}: {reason}" for path, reason in skipped[:3])
        raise LinkError(f"--footage: {len(skipped)} image(s) cannot be decoded ({listing}); remove them, or pass "
                        "--bad_images=skip to leave them out")
    if not kept:
        raise LinkError("--footage: no image could be decoded; nothing to link")
    return EmbeddedFootage(scan, tuple(kept), np.concatenate(parts), tuple(skipped),
                           {pid: tuple(shown) for pid, shown in thumbnails.items()})


def thumbnail_urls(footage: EmbeddedFootage) -> dict[str, str]:
    """Frame path → data: URL of every thumbnail made while embedding (identities_page shows them)."""
    return {path: url for shown in footage.thumbnails.values() for path, url in shown}


def _with_frames(record: Record, paths: Sequence[str]) -> Record:
    """`record` itself if `paths` are all its frames, else the record of those frames alone."""
    if len(paths) == len(frame_paths(record)):
        return record
    if isinstance(record, TrackletRecord):
        return TrackletRecord(tuple(paths), record.pid, record.camid)
    return ImageRecord(paths[0], record.pid, record.camid)


def read_export(export_dir: str, runtime: str) -> tuple[dict, EmbedItems]:
    """The model card of an export and a function embedding items' uint8 frames with `runtime`."""
    if runtime not in RUNTIMES:
        raise LinkError(f"--runtime={runtime}: expected one of {', '.join(RUNTIMES)}")
    try:
        card = read_json(os.path.join(export_dir, MODEL_CARD))
    except RunDirectoryError as error:
        raise LinkError(f"--export={export_dir}: {error}; expected an export folder OUT/NAME/VERSION") from error
    read_model_hash(card, os.path.join(export_dir, MODEL_CARD))  # identities.json names the model by it
    try:
        input_size(card)
    except (KeyError, TypeError, ValueError) as error:
        raise LinkError(f"--export={export_dir}: {MODEL_CARD} has no input.height and input.width") from error
    if runtime == "saved_model":
        if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
            raise LinkError(f"--export={export_dir}: no SavedModel there (exported with --formats without "
                            "saved_model); pass --runtime=onnx")
        model = tf.saved_model.load(export_dir)
        return card, lambda items: _saved_model_items(model, items)
    path = os.path.join(export_dir, ONNX_FILE if runtime == "onnx" else ONNX_INT8_FILE)
    if not os.path.isfile(path):
        raise LinkError(f"--export={export_dir}: no {os.path.basename(path)} there; pass the --runtime it was "
                        "exported with")
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return card, lambda items: _onnx_items(session, items)


def input_size(card: dict) -> tuple[int, int]:
    """(height, width) of the export's input, from its model card."""
    return int(card["input"]["height"]), int(card["input"]["width"])


def _onnx_items(session: onnxruntime.InferenceSession, items: Sequence[np.ndarray]) -> np.ndarray:
    """Items' embeddings by the ONNX model: the L2-normalised mean of each item's frames' features (as the kit)."""
    frames = np.concatenate(items)
    features = np.concatenate([session.run([FEATURES], {IMAGES: frames[start:start + ONNX_BATCH]})[0]
                               for start in range(0, len(frames), ONNX_BATCH)])
    ends = np.cumsum([len(item) for item in items])[:-1]
    return unit_rows(np.stack([part.mean(axis=0) for part in np.split(features, ends)]))


def _saved_model_items(model, items: Sequence[np.ndarray]) -> np.ndarray:
    """Items' embeddings by the SavedModel: images through serving_default in one call, tracklets (more than one
    frame) through embed_tracklets one by one (their lengths differ)."""
    embeddings = [None] * len(items)
    singles = [index for index, item in enumerate(items) if len(item) == 1]
    if singles:
        found = model.signatures[IMAGE_SIGNATURE](**{IMAGES: tf.constant(np.concatenate([items[i] for i in singles]))})
        for index, embedding in zip(singles, found[EMBEDDINGS].numpy()):
            embeddings[index] = embedding
    for index, item in enumerate(items):
        if len(item) > 1:
            found = model.signatures[TRACKLET_SIGNATURE](**{TRACKLETS: tf.constant(item[np.newaxis])})
            embeddings[index] = found[EMBEDDINGS].numpy()[0]
    return np.stack(embeddings)


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


def link_footage(footage: EmbeddedFootage, threshold: dict) -> dict:
    """identities.json: every cross-camera identity with its (camera, local id) members and link distances, and the
    local ids left alone."""
    records, scan = footage.records, footage.scan
    cameras = np.array([record.camid for record in records], dtype=np.int64)
    local_ids = np.array([record.pid for record in records], dtype=np.int64)  # one pid per (camera, local id)
    association = link(footage.embeddings, cameras, local_ids, threshold["similarity_threshold"],
                       threshold["centre_per_camera"])
    proxies = association.proxies
    items = np.bincount(proxies.index_of(cameras, local_ids), minlength=len(proxies.cameras))

    def member(proxy: int) -> dict:
        pid = int(proxies.local_ids[proxy])
        camera, identity = scan.identities[pid]
        return {"camera": camera, "local_id": identity, "items": int(items[proxy]),
                "thumbnails": [path for path, _ in footage.thumbnails.get(pid, ())]}

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

