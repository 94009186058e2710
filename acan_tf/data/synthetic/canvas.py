"""Anti-aliased shapes painted onto a float RGB image, each computed only inside its bounding window."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from acan_tf.data.synthetic.identities import Garment


def _unit(values: np.ndarray) -> np.ndarray:
    """Values limited to [0, 1] (np.clip's overhead dominates on the small arrays shapes use)."""
    return np.minimum(np.maximum(values, 0.0), 1.0)


class Patch(NamedTuple):
    """A shape's anti-aliased coverage inside its bounding window of the image."""

    rows: slice
    cols: slice
    coverage: np.ndarray


class Canvas:
    """A float RGB image with its pixel-centre grid; shapes are computed and painted in their window only."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.ys = np.arange(image.shape[0], dtype=np.float32)[:, None] + 0.5
        self.xs = np.arange(image.shape[1], dtype=np.float32)[None, :] + 0.5
        self.person = np.zeros(image.shape[:2], np.float32)  # where the current person is, for shading

    def _window(self, top: float, bottom: float, left: float, right: float) -> tuple[slice, slice]:
        """Rows and columns of the image that a shape within these bounds can touch."""
        height, width = self.image.shape[:2]
        rows = slice(min(max(math.floor(top) - 1, 0), height), min(max(math.ceil(bottom) + 1, 0), height))
        cols = slice(min(max(math.floor(left) - 1, 0), width), min(max(math.ceil(right) + 1, 0), width))
        return rows, cols

    def paint(self, patch: Patch, colour: np.ndarray, is_person: bool = True) -> None:
        """Blends `colour` (an RGB triple or a full-size texture) over the image inside the patch."""
        rows, cols, coverage = patch
        if colour.ndim == 3:
            colour = colour[rows, cols]
        target = self.image[rows, cols]
        target += coverage[..., None] * (colour - target)
        if is_person:
            np.maximum(self.person[rows, cols], coverage, out=self.person[rows, cols])

    def darken(self, patch: Patch, amount: float) -> None:
        """Darkens the image inside the patch: a shadow."""
        rows, cols, coverage = patch
        self.image[rows, cols] *= 1.0 - amount * coverage[..., None]

    def shade(self, centre_x: float, half_width: float) -> None:
        """Darkens the current person towards its sides, where the body turns away from the light."""
        edge = _unit(((self.xs - centre_x) / half_width) ** 2)
        self.image *= 1.0 - 0.3 * (self.person * edge)[..., None]
        self.person[:] = 0.0

    def box(self, top: float, bottom: float, left: float, right: float) -> Patch:
        """An axis-aligned rectangle."""
        rows, cols = self._window(top, bottom, left, right)
        ys, xs = self.ys[rows], self.xs[:, cols]
        inside_y = _unit(np.minimum(ys - top, bottom - ys) + 0.5)
        inside_x = _unit(np.minimum(xs - left, right - xs) + 0.5)
        return Patch(rows, cols, inside_y * inside_x)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> Patch:
        """An axis-aligned ellipse."""
        rows, cols = self._window(cy - ry, cy + ry, cx - rx, cx + rx)
        radius = np.sqrt(((self.ys[rows] - cy) / ry) ** 2 + ((self.xs[:, cols] - cx) / rx) ** 2)
        return Patch(rows, cols, _unit((1.0 - radius) * min(ry, rx) + 0.5))

    def capsule(self, start: tuple[float, float], end: tuple[float, float], radius: float) -> Patch:
        """A thick segment with round ends: a limb."""
        (y0, x0), (y1, x1) = start, end
        rows, cols = self._window(min(y0, y1) - radius, max(y0, y1) + radius,
                                  min(x0, x1) - radius, max(x0, x1) + radius)
        ys, xs = self.ys[rows], self.xs[:, cols]
        dy, dx = y1 - y0, x1 - x0
        t = _unit(((ys - y0) * dy + (xs - x0) * dx) / max(dy * dy + dx * dx, 1e-6))
        distance = np.hypot(ys - (y0 + t * dy), xs - (x0 + t * dx))
        return Patch(rows, cols, _unit(radius - distance + 0.5))

    def trapezoid(self, top: float, bottom: float, cx: float, half_top: float, half_bottom: float) -> Patch:
        """A vertical trapezoid centred on `cx`: a torso or a skirt."""
        widest = max(half_top, half_bottom)
        rows, cols = self._window(top, bottom, cx - widest, cx + widest)
        ys, xs = self.ys[rows], self.xs[:, cols]
        half = half_top + _unit((ys - top) / (bottom - top)) * (half_bottom - half_top)
        inside_y = _unit(np.minimum(ys - top, bottom - ys) + 0.5)
        return Patch(rows, cols, inside_y * _unit(half - np.abs(xs - cx) + 0.5))

    def texture(self, garment: Garment, origin: tuple[float, float], body_height: float) -> np.ndarray:
        """The garment's colour (a triple, or a full-size texture) with its pattern anchored on the body."""
        if garment.pattern == "plain":
            return garment.colour
        period = max(garment.period * body_height, 1.5)
        on = np.floor((self.ys - origin[0]) / period).astype(np.int32) % 2
        if garment.pattern == "checks":
            on = on ^ (np.floor((self.xs - origin[1]) / period).astype(np.int32) % 2)
        on = np.broadcast_to(on, self.image.shape[:2])
        return np.where(on[..., None] == 1, garment.accent, garment.colour)

