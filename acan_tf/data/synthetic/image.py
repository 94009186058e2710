"""One image of a person taken by a camera: background, a passer-by, the person, occluders, the camera's response."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from acan_tf.data.synthetic.cameras import CameraStyle, apply_camera
from acan_tf.data.synthetic.canvas import Canvas
from acan_tf.data.synthetic.identities import GARMENT_PALETTE, Identity, jitter_colour, make_identity
from acan_tf.data.synthetic.pedestrian import Pose, draw_person, make_pose
from acan_tf.data.synthetic.spec import SyntheticSpec


def _occlude(canvas: Canvas, rng: np.random.Generator, share: float) -> None:
    """Sometimes (`share` of the images) hides part of the person behind a pole or a low object (bench, bin, car)."""
    kind = rng.uniform()
    height, width = canvas.image.shape[:2]
    if kind < share / 2:
        left = rng.uniform(-0.1, 0.9) * width
        pole = jitter_colour(rng, (0.45, 0.45, 0.45), 0.3)
        canvas.paint(canvas.box(-1.0, height + 1.0, left, left + rng.uniform(0.08, 0.16) * width), pole, False)
    elif kind < share:
        top = rng.uniform(0.7, 0.85) * height
        left = rng.uniform(-0.5, 0.3) * width
        block = jitter_colour(rng, GARMENT_PALETTE[int(rng.integers(len(GARMENT_PALETTE)))][0], 0.2)
        canvas.paint(canvas.box(top, height + 1.0, left, left + rng.uniform(0.5, 1.0) * width), block, False)


def _clutter(canvas: Canvas, rng: np.random.Generator, mean_count: float) -> None:
    """Objects in the background (signs, bins, bikes, parts of other people) in the colours people wear."""
    height, width = canvas.image.shape[:2]
    for _ in range(int(rng.poisson(mean_count))):
        colour = jitter_colour(rng, GARMENT_PALETTE[int(rng.integers(len(GARMENT_PALETTE)))][0], 0.2)
        cy, cx = rng.uniform(0.0, 1.0) * height, rng.uniform(-0.1, 1.1) * width
        ry, rx = rng.uniform(0.05, 0.25) * height, rng.uniform(0.1, 0.4) * width
        box = rng.uniform() < 0.5
        canvas.paint(canvas.box(cy - ry, cy + ry, cx - rx, cx + rx) if box else canvas.ellipse(cy, cx, ry, rx), colour,
                     False)


def _next_frame(pose: Pose, frame: np.random.Generator, width: int) -> Pose:
    """The same pose a few frames later in one track: another walking phase, the detector's box a little shifted."""
    return dataclasses.replace(pose, centre_x=pose.centre_x + frame.normal(0.0, 0.02) * width,
                               stride=float(frame.uniform(0.0, 0.12)), arm_swing=float(frame.uniform(-0.1, 0.1)))


def render(person: Identity, style: CameraStyle, scenes: Sequence[np.ndarray], spec: SyntheticSpec,
           rng: np.random.Generator, details: np.random.Generator,
           frame: np.random.Generator | None = None) -> np.ndarray:
    """One uint8 image of `person` taken by the camera `style`; `details` draws what the preset's look adds.

    With `frame`, the image is one frame of a track (`rng` and `details` are then the track's, shared by its frames)
    and `frame` draws what changes from one frame to the next.
    """
    look = spec.look
    # Without full camera shift, some images borrow another camera's background.
    scene = style.scene if rng.uniform() < spec.camera_shift else scenes[int(rng.integers(len(scenes)))]
    if details.uniform() < look.shared_scenes:  # cameras that overlook the same street
        scene = scenes[int(details.integers(len(scenes)))]
    top = int(rng.integers(scene.shape[0] - spec.height + 1))
    left = int(rng.integers(scene.shape[1] - spec.width + 1))
    background = scene[top:top + spec.height, left:left + spec.width] * rng.uniform(0.94, 1.06)
    canvas = Canvas(background.astype(np.float32))
    _clutter(canvas, details, look.clutter)
    # Detector boxes are rarely clean: sometimes another pedestrian is partly in the box, behind the person or (with
    # the look's share) in front.
    passer_by = None
    if rng.uniform() < look.passers_by:
        stranger = make_identity(rng, look)
        pose = make_pose(rng, stranger, style, spec.height, spec.width)
        offset = rng.choice((-1, 1)) * rng.uniform(0.5, 0.8) * spec.width
        passer_by = stranger, dataclasses.replace(pose, centre_x=pose.centre_x + offset)
    in_front = passer_by is not None and details.uniform() < look.passers_in_front
    if passer_by is not None and not in_front:
        draw_person(canvas, *passer_by)
    pose = make_pose(rng, person, style, spec.height, spec.width)
    draw_person(canvas, person, pose if frame is None else _next_frame(pose, frame, spec.width))
    if in_front:
        draw_person(canvas, *passer_by)
    _occlude(canvas, rng, look.occlusion)
    # The look's resolution and focus vary from image to image around the camera's.
    style = dataclasses.replace(style, downsample=style.downsample * details.uniform(*look.resolution),
                                blur=style.blur + details.uniform(*look.blur))
    return apply_camera(canvas.image, style, rng)

