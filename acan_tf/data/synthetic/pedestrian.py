"""Drawing a pedestrian: a pose as the camera's detector frames it, and the body, clothes and bag in that pose."""

from __future__ import annotations

import dataclasses

import numpy as np

from acan_tf.data.synthetic.cameras import CameraStyle
from acan_tf.data.synthetic.canvas import Canvas
from acan_tf.data.synthetic.identities import Identity
from acan_tf.data.synthetic.streams import pick

ORIENTATIONS = ("front", "back", "side")


@dataclasses.dataclass(frozen=True)
class Pose:
    """Where and how a person stands in one image (pixels)."""

    centre_x: float
    top: float
    height: float
    width_scale: float
    orientation: str
    facing: int  # -1 or +1: the direction a side view walks towards
    stride: float  # foot offset as a fraction of height
    arm_swing: float  # hand offset as a fraction of height


class _Body:
    """Body landmarks of one pose: heights are fractions of body height, widths scale with the build."""

    def __init__(self, pose: Pose):
        self.pose = pose
        self.height = pose.height
        self.narrow = 0.65 if pose.orientation == "side" else 1.0  # a side view shows the body's depth

    def y(self, fraction: float) -> float:
        """Image row at a fraction of body height from the top of the head."""
        return self.pose.top + fraction * self.height

    def x(self, fraction: float) -> float:
        """Image column at a signed fraction of body height from the body axis."""
        return self.pose.centre_x + fraction * self.height * self.pose.width_scale


def _between(start: tuple[float, float], end: tuple[float, float], t: float) -> tuple[float, float]:
    """The point a fraction `t` of the way from `start` to `end`."""
    return start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1])


def _draw_legs(canvas: Canvas, person: Identity, body: _Body) -> None:
    """Legs, shoes and the lower garment."""
    stride, facing = body.pose.stride, body.pose.facing
    if body.pose.orientation == "side":
        hips = [(body.y(0.5), body.x(0.0))] * 2
        feet = [(body.y(0.93), body.x(stride * facing)), (body.y(0.93), body.x(-stride * facing))]
    else:  # walking towards or away: the legs stay apart, the stride shows as one foot higher
        hips = [(body.y(0.5), body.x(-0.05)), (body.y(0.5), body.x(0.05))]
        feet = [(body.y(0.93 - stride * 0.3), body.x(-0.06)), (body.y(0.93), body.x(0.06))]
    radius = 0.042 * body.height * body.pose.width_scale
    lower = canvas.texture(person.lower, (body.y(0.48), body.x(0.0)), body.height)
    covered_to = {"trousers": 1.0, "shorts": 0.45, "skirt": 0.0}[person.lower_kind]
    for hip, foot in zip(hips, feet):
        hem = _between(hip, foot, covered_to)
        if covered_to < 1:
            canvas.paint(canvas.capsule(hem, foot, radius * 0.8), person.skin)
        if covered_to > 0:
            canvas.paint(canvas.capsule(hip, hem, radius), lower)
        canvas.paint(canvas.ellipse(foot[0] + 0.02 * body.height, foot[1] + 0.015 * body.height * facing,
                                    0.022 * body.height, 0.045 * body.height * body.narrow), person.shoes)
    if person.lower_kind == "skirt":
        half = 0.11 * body.narrow * body.height * body.pose.width_scale
        canvas.paint(canvas.trapezoid(body.y(0.47), body.y(0.72), body.x(0.0), half * 0.9, half * 1.3), lower)
    else:  # the seat joins the two legs
        seat = canvas.box(body.y(0.47), body.y(0.56), body.x(-0.1 * body.narrow), body.x(0.1 * body.narrow))
        canvas.paint(seat, lower)


def _draw_arms(canvas: Canvas, person: Identity, body: _Body, upper: np.ndarray) -> list[tuple[float, float]]:
    """Arms with short or long sleeves; returns the hand positions."""
    swing = body.pose.arm_swing
    if body.pose.orientation == "side":
        shoulders = [(body.y(0.17), body.x(0.0))]
        hands = [(body.y(0.46), body.x(swing * body.pose.facing))]
    else:
        shoulders = [(body.y(0.17), body.x(-0.1)), (body.y(0.17), body.x(0.1))]
        hands = [(body.y(0.46), body.x(-0.14 - abs(swing) * 0.3)), (body.y(0.46), body.x(0.14 + abs(swing) * 0.3))]
    radius = 0.03 * body.height * body.pose.width_scale
    sleeve_to = 0.92 if person.long_sleeves else 0.35
    for shoulder, hand in zip(shoulders, hands):
        cuff = _between(shoulder, hand, sleeve_to)
        canvas.paint(canvas.capsule(cuff, hand, radius * 0.85), person.skin)
        canvas.paint(canvas.capsule(shoulder, cuff, radius), upper)
    return hands


def _draw_head(canvas: Canvas, person: Identity, body: _Body) -> None:
    """Neck, face and hair; the back view shows only hair."""
    h, orientation = body.height, body.pose.orientation
    turn = 0.012 * h * body.pose.facing if orientation == "side" else 0.0
    centre = body.pose.centre_x
    canvas.paint(canvas.box(body.y(0.11), body.y(0.16), centre - 0.022 * h, centre + 0.022 * h), person.skin)
    canvas.paint(canvas.ellipse(body.y(0.068), centre - turn, 0.066 * h, 0.052 * h), person.hair)
    if orientation != "back":
        canvas.paint(canvas.ellipse(body.y(0.082), centre + turn, 0.052 * h, 0.043 * h), person.skin)


def _draw_long_hair(canvas: Canvas, person: Identity, body: _Body) -> None:
    """Hair falling to the shoulders, behind the head (drawn under the torso in front view, over it in back view)."""
    back = -0.02 * body.height * body.pose.facing if body.pose.orientation == "side" else 0.0
    centre = body.pose.centre_x + back
    canvas.paint(canvas.box(body.y(0.06), body.y(0.26), centre - 0.055 * body.height, centre + 0.055 * body.height),
                 person.hair)


def _draw_backpack(canvas: Canvas, person: Identity, body: _Body, on_top: bool) -> None:
    """A backpack: a block on the back, a block behind a side view, or straps in front view."""
    orientation, colour = body.pose.orientation, person.bag_colour
    if orientation == "back" and on_top:
        canvas.paint(canvas.box(body.y(0.18), body.y(0.42), body.x(-0.09), body.x(0.09)), colour)
    elif orientation == "side" and not on_top:
        near, far = sorted((body.x(-0.04 * body.pose.facing), body.x(-0.14 * body.pose.facing)))
        canvas.paint(canvas.box(body.y(0.17), body.y(0.42), near, far), colour)
    elif orientation == "front" and on_top:
        for side in (-1, 1):
            strap = canvas.box(body.y(0.15), body.y(0.36), body.x(0.06 * side - 0.012), body.x(0.06 * side + 0.012))
            canvas.paint(strap, colour * 0.8)


def _draw_handbag(canvas: Canvas, person: Identity, body: _Body, hands: list[tuple[float, float]]) -> None:
    """A handbag hanging from the carrying hand, with its strap."""
    hand = hands[0] if len(hands) == 1 or person.bag_side < 0 else hands[1]
    size = 0.09 * body.height
    top = hand[0] - 0.02 * body.height
    strap = canvas.capsule((top - 0.05 * body.height, hand[1]), (top, hand[1] - size * 0.3), 0.6)
    canvas.paint(strap, person.bag_colour)
    canvas.paint(canvas.box(top, top + size, hand[1] - size * 0.5, hand[1] + size * 0.5), person.bag_colour)


def draw_person(canvas: Canvas, person: Identity, pose: Pose) -> None:
    """Paints a pedestrian onto the canvas, back to front."""
    body = _Body(pose)
    h = body.height
    # A soft ground shadow anchors the person in the scene.
    canvas.darken(canvas.ellipse(body.y(0.97), pose.centre_x, 0.025 * h, 0.17 * h * pose.width_scale), 0.35)
    if person.long_hair and pose.orientation != "back":
        _draw_long_hair(canvas, person, body)
    if person.bag == "backpack":
        _draw_backpack(canvas, person, body, on_top=False)
    _draw_legs(canvas, person, body)
    upper = canvas.texture(person.upper, (body.y(0.15), body.x(0.0)), h)
    half = 0.125 * body.narrow * h * pose.width_scale
    canvas.paint(canvas.trapezoid(body.y(0.14), body.y(0.52), pose.centre_x, half, half * 0.85), upper)
    if person.inner is not None and pose.orientation == "front":  # the open jacket shows the top beneath
        inner = 0.05 * h * pose.width_scale
        canvas.paint(canvas.trapezoid(body.y(0.16), body.y(0.5), pose.centre_x, inner, inner * 0.8), person.inner)
    if person.back_print is not None and pose.orientation == "back":
        canvas.paint(canvas.box(body.y(0.2), body.y(0.36), body.x(-0.07), body.x(0.07)), person.back_print)
    if person.long_hair and pose.orientation == "back":
        _draw_long_hair(canvas, person, body)
    if person.bag == "backpack":
        _draw_backpack(canvas, person, body, on_top=True)
    hands = _draw_arms(canvas, person, body, upper)
    _draw_head(canvas, person, body)
    if person.bag == "handbag":
        _draw_handbag(canvas, person, body, hands)
    canvas.shade(pose.centre_x, 0.17 * h * pose.width_scale)


def make_pose(rng: np.random.Generator, person: Identity, style: CameraStyle, height: int, width: int) -> Pose:
    """A random pose as framed by this camera's detector."""
    body_height = height * style.person_height * person.build_height * rng.uniform(0.96, 1.04)
    spare = height - body_height
    return Pose(
        centre_x=width / 2 + rng.normal(0.0, style.framing) * width,
        top=spare * rng.uniform(0.3, 0.7),
        height=body_height,
        width_scale=person.build_width * style.aspect,
        orientation=ORIENTATIONS[pick(rng, style.view)],
        facing=int(rng.choice((-1, 1))),
        stride=float(rng.uniform(0.0, 0.12)),
        arm_swing=float(rng.uniform(-0.1, 0.1)),
    )

