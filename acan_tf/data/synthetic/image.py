"""One image of a person taken by a camera: background, a passer-by, the person, occluders, the camera's response."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from acan_tf.data.synthetic.cameras import CameraStyle, apply_camera
from acan_tf.data.synthetic.canvas import Canvas
from acan_tf.data.synthetic.identities import GARMENT_PALETTE, Identity, jitter_colour, make_identity
from acan_tf.data.synthetic.pedestrian import draw_person, make_pose
from acan_tf.data.synthetic.spec import SyntheticSpec


def _occlude(canvas: Canvas, rng: np.random.Generator) -> None:
    """Sometimes hides part of the person behind a pole or a low object (bench, bin, car)."""
    kind = rng.uniform()
    height, width = canvas.image.shape[:2]
    if kind < 0.1:
        left = rng.uniform(-0.1, 0.9) * width
        pole = jitter_colour(rng, (0.45, 0.45, 0.45), 0.3)
        canvas.paint(canvas.box(-1.0, height + 1.0, left, left + rng.uniform(0.08, 0.16) * width), pole, False)
    elif kind < 0.2:
        top = rng.uniform(0.7, 0.85) * height
        left = rng.uniform(-0.5, 0.3) * width
        block = jitter_colour(rng, GARMENT_PALETTE[int(rng.integers(len(GARMENT_PALETTE)))][0], 0.2)
        canvas.paint(canvas.box(top, height + 1.0, left, left + rng.uniform(0.5, 1.0) * width), block, False)


def render(person: Identity, style: CameraStyle, scenes: Sequence[np.ndarray], spec: SyntheticSpec,
           rng: np.random.Generator) -> np.ndarray:
    """One uint8 image of `person` taken by the camera `style`."""
    # Without full camera shift, some images borrow another camera's background.
    scene = style.scene if rng.uniform() < spec.camera_shift else scenes[int(rng.integers(len(scenes)))]
    top = int(rng.integers(scene.shape[0] - spec.height + 1))
    left = int(rng.integers(scene.shape[1] - spec.width + 1))
    background = scene[top:top + spec.height, left:left + spec.width] * rng.uniform(0.94, 1.06)
    canvas = Canvas(background.astype(np.float32))
    # Detector boxes are rarely clean: sometimes another pedestrian is partly in the box, behind the person.
    if rng.uniform() < 0.1:
        stranger = make_identity(rng)
        pose = make_pose(rng, stranger, style, spec.height, spec.width)
        offset = rng.choice((-1, 1)) * rng.uniform(0.5, 0.8) * spec.width
        draw_person(canvas, stranger, dataclasses.replace(pose, centre_x=pose.centre_x + offset))
    draw_person(canvas, person, make_pose(rng, person, style, spec.height, spec.width))
    _occlude(canvas, rng)
    return apply_camera(canvas.image, style, rng)

