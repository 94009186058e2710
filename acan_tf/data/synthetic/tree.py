"""The benchmark on disk: planning every image of the Market-1501-style tree and writing it atomically."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

from absl import logging
from PIL import Image

from acan_tf.data.synthetic.cameras import make_camera_styles
from acan_tf.data.synthetic.identities import Identity, make_identity, with_look
from acan_tf.data.synthetic.image import render
from acan_tf.data.synthetic.spec import SPEC_FILE, SpecMismatchError, SyntheticSpec, read_spec_document, spec_document
from acan_tf.data.synthetic.streams import (
    FRAME_STREAM,
    IDENTITY_STREAM,
    IMAGE_DETAIL_STREAM,
    IMAGE_STREAM,
    PERSON_DETAIL_STREAM,
    TRACK_STREAM,
    VISIT_STREAM,
    stream,
)
from acan_tf.io import write_json

TRAIN_DIR = "bounding_box_train"
QUERY_DIR = "query"
GALLERY_DIR = "bounding_box_test"
JPEG_QUALITY = 95


@dataclasses.dataclass(frozen=True)
class Shot:
    """One image to write: which person, camera and take, and its file."""

    split_dir: str
    pid: int
    camid: int
    person_index: int
    take: int
    file_name: str


def _camera_visits(spec: SyntheticSpec, person_index: int) -> list[tuple[int, int]]:
    """(camid, number of images) for each camera that sees this test or train person."""
    rng = stream(spec.seed, VISIT_STREAM, person_index)
    count = int(rng.integers(spec.min_cameras_per_id, spec.max_cameras_per_id + 1))
    cameras = sorted(int(c) for c in rng.choice(spec.num_cameras, size=count, replace=False))
    low, high = spec.train_images_per_camera if person_index < spec.num_train_ids else spec.gallery_images_per_camera
    return [(camid, int(rng.integers(low, high + 1))) for camid in cameras]


def plan_shots(spec: SyntheticSpec) -> list[Shot]:
    """Every image of the tree, named like Market-1501: PPPP_cCs1_FFFFFF_NN.jpg (camera 1-based)."""
    frames = [0] * spec.num_cameras  # a running frame number per camera keeps names unique
    shots = []

    def add(split_dir: str, pid: int, camid: int, person_index: int, take: int, number: int) -> None:
        frames[camid] += 1
        name = f"{pid:04d}_c{camid + 1}s1_{frames[camid]:06d}_{number:02d}.jpg"
        shots.append(Shot(split_dir, pid, camid, person_index, take, name))

    for person_index in range(spec.num_train_ids + spec.num_test_ids):
        pid = person_index + 1
        for camid, count in _camera_visits(spec, person_index):
            if person_index < spec.num_train_ids:
                for take in range(count):
                    add(TRAIN_DIR, pid, camid, person_index, take, take + 1)
            else:  # one query per camera; the gallery keeps the other takes
                add(QUERY_DIR, pid, camid, person_index, 0, 1)
                for take in range(1, count + 1):
                    add(GALLERY_DIR, pid, camid, person_index, take, take)
    for index in range(spec.num_distractors):
        person_index = spec.num_train_ids + spec.num_test_ids + index
        camid = int(stream(spec.seed, VISIT_STREAM, person_index).integers(spec.num_cameras))
        add(GALLERY_DIR, 0, camid, person_index, 0, 1)
    return shots


def make_person(spec: SyntheticSpec, person_index: int) -> Identity:
    """Person `person_index` of the benchmark, dressed by the preset's look (a look-alike copies an earlier person of
    the same split)."""
    person = make_identity(stream(spec.seed, IDENTITY_STREAM, person_index), spec.look)
    rng = stream(spec.seed, PERSON_DETAIL_STREAM, person_index)
    first = 0 if person_index < spec.num_train_ids else spec.num_train_ids
    model = None
    if rng.uniform() < spec.look.look_alikes and person_index > first:
        model_index = int(rng.integers(first, person_index))
        model = make_identity(stream(spec.seed, IDENTITY_STREAM, model_index), spec.look)
    return with_look(person, rng, spec.look, model)


def _write_tree(root: str, spec: SyntheticSpec) -> int:
    """Writes every image and spec.json under `root`; returns the number of images."""
    styles = make_camera_styles(spec)
    scenes = [style.scene for style in styles]
    people: dict[int, Identity] = {}
    for split_dir in (TRAIN_DIR, QUERY_DIR, GALLERY_DIR):
        os.makedirs(os.path.join(root, split_dir))
    shots = plan_shots(spec)
    for shot in shots:
        if shot.person_index not in people:
            people[shot.person_index] = make_person(spec, shot.person_index)
        visit = (shot.person_index, shot.camid)
        tracked = stream(spec.seed, TRACK_STREAM, *visit).uniform() < spec.look.tracked_visits
        # A tracked visit's frames share the draws of its first take; only the frame's own stream differs.
        take = 0 if tracked else shot.take
        rng = stream(spec.seed, IMAGE_STREAM, *visit, take)
        details = stream(spec.seed, IMAGE_DETAIL_STREAM, *visit, take)
        frame = stream(spec.seed, FRAME_STREAM, *visit, shot.take) if tracked else None
        pixels = render(people[shot.person_index], styles[shot.camid], scenes, spec, rng, details, frame)
        Image.fromarray(pixels).save(os.path.join(root, shot.split_dir, shot.file_name), format="JPEG",
                                     quality=JPEG_QUALITY, subsampling="4:2:0")
    write_json(os.path.join(root, SPEC_FILE), spec_document(spec))
    return len(shots)


def generate(directory: str, spec: SyntheticSpec = SyntheticSpec()) -> str:
    """Writes the benchmark tree into `directory`, which must not exist or be empty; returns it."""
    if os.path.exists(directory) and (not os.path.isdir(directory) or os.listdir(directory)):
        raise FileExistsError(f"Refusing to generate the synthetic benchmark into {directory!r}: it exists and is not "
                              "an empty directory")
    parent, name = os.path.split(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    # Build in a hidden sibling and rename it into place, so an interrupted run never leaves a tree that
    # looks complete; the rename replaces an empty `directory`.
    partial = tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent)
    try:
        os.chmod(partial, 0o755)
        count = _write_tree(partial, spec)
        os.replace(partial, directory)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    logging.info("Wrote %d synthetic images to %s", count, directory)
    return directory


def ensure(directory: str, spec: SyntheticSpec = SyntheticSpec()) -> str:
    """Generates the tree if `directory` is absent or empty, reuses it if made from `spec`; returns it."""
    if not os.path.exists(directory) or (os.path.isdir(directory) and not os.listdir(directory)):
        logging.info("Generating the synthetic Re-ID benchmark in %s", directory)
        return generate(directory, spec)
    found = read_spec_document(directory)
    if found is None:
        raise FileExistsError(f"{directory!r} exists but has no {SPEC_FILE}: it is not a synthetic tree; "
                              "choose another folder")
    expected = spec_document(spec)
    if found != expected:
        raise SpecMismatchError(f"{directory!r} holds a synthetic tree made from {json.dumps(found, sort_keys=True)}, "
                                f"not the requested {json.dumps(expected, sort_keys=True)}; choose another folder or "
                                "delete it yourself")
    logging.info("Reusing the synthetic Re-ID benchmark in %s", directory)
    return directory
