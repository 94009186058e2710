"""The synthetic multi-camera Re-ID benchmark: seeded pedestrians seen through C shifted cameras.

An identity is a fixed set of attributes (garments and their patterns, bag, hair, skin, shoes, build),
rendered with pose jitter and occasional occlusion. Each camera applies its own systematic shift (scene,
colour cast, exposure, contrast, saturation, resolution, blur, noise, framing, typical viewing angle), so
an image's camera is easy to tell and matching a person across cameras is hard: the gap the paper's camera
alignment closes. The result is written as a Market-1501 tree that the ordinary Market parser reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from typing import NamedTuple, Optional, Sequence

import numpy as np
from absl import logging
from PIL import Image
from scipy import ndimage

TRAIN_DIR = "bounding_box_train"
QUERY_DIR = "query"
GALLERY_DIR = "bounding_box_test"
SPEC_FILE = "spec.json"
# Bump when the images drawn for a given spec change, so ensure() refuses trees made by older code.
GENERATOR_VERSION = 2
JPEG_QUALITY = 95
ORIENTATIONS = ("front", "back", "side")

# Garment colours in [0, 1] with their frequency as upper and as lower garment: dark and denim
# dominate, as in street footage, so colour alone rarely identifies a person.
GARMENT_PALETTE = (
    ((0.07, 0.07, 0.08), 3.0, 3.0),  # black
    ((0.25, 0.25, 0.27), 2.0, 2.0),  # dark grey
    ((0.52, 0.52, 0.53), 1.5, 1.0),  # grey
    ((0.88, 0.88, 0.86), 2.0, 0.5),  # white
    ((0.10, 0.14, 0.33), 2.0, 2.5),  # navy
    ((0.22, 0.36, 0.68), 1.5, 2.0),  # blue / denim
    ((0.56, 0.70, 0.85), 1.0, 0.5),  # light blue
    ((0.72, 0.12, 0.12), 1.0, 0.3),  # red
    ((0.42, 0.08, 0.14), 0.7, 0.3),  # maroon
    ((0.20, 0.44, 0.22), 1.0, 0.4),  # green
    ((0.58, 0.54, 0.34), 0.8, 1.2),  # khaki
    ((0.40, 0.26, 0.15), 0.8, 0.8),  # brown
    ((0.80, 0.72, 0.57), 0.8, 0.8),  # beige
    ((0.90, 0.80, 0.20), 0.5, 0.1),  # yellow
    ((0.90, 0.56, 0.66), 0.6, 0.2),  # pink
    ((0.40, 0.20, 0.52), 0.5, 0.2),  # purple
    ((0.92, 0.48, 0.12), 0.4, 0.1),  # orange
)
HAIR_PALETTE = (
    ((0.05, 0.04, 0.04), 4.0),  # black
    ((0.20, 0.12, 0.07), 3.0),  # dark brown
    ((0.42, 0.27, 0.14), 1.5),  # brown
    ((0.78, 0.64, 0.38), 0.8),  # blonde
    ((0.62, 0.61, 0.60), 0.6),  # grey
)
SKIN_TONES = (
    (0.93, 0.78, 0.66), (0.85, 0.66, 0.52), (0.72, 0.52, 0.38), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16)
)
SHOE_PALETTE = (
    ((0.06, 0.06, 0.06), 3.0),  # black
    ((0.90, 0.90, 0.90), 2.0),  # white
    ((0.35, 0.22, 0.12), 1.0),  # brown
    ((0.45, 0.45, 0.47), 1.0),  # grey
    ((0.70, 0.15, 0.15), 0.3),  # red
    ((0.20, 0.30, 0.65), 0.3),  # blue
)

# Independent random streams: every object draws from its own seeded generator, so what an image
# looks like does not depend on the order in which images are generated.
_IDENTITY_STREAM, _VISIT_STREAM, _CAMERA_STREAM, _IMAGE_STREAM = range(4)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic benchmark; together with the code version they fix every pixel."""

    num_cameras: int = 6  # C
    num_train_ids: int = 300  # ~150 per camera, well above the P = 32 a triplet batch draws from one camera
    num_test_ids: int = 300  # disjoint from the training identities
    min_cameras_per_id: int = 2  # every identity has a cross-camera match
    max_cameras_per_id: int = 4
    train_images_per_camera: tuple[int, int] = (2, 5)  # (low, high) images per (identity, camera)
    gallery_images_per_camera: tuple[int, int] = (2, 4)  # plus the one query per (identity, camera)
    num_distractors: int = 0  # gallery images of one-off people, pid 0000 as in Market-1501
    height: int = 128
    width: int = 64
    camera_shift: float = 1.0  # 0: cameras differ in nothing (an upper bound for alignment); 1: the benchmark
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("train_images_per_camera", "gallery_images_per_camera"):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) != 2 or not 1 <= value[0] <= value[1] <= 98:
                raise ValueError(f"SyntheticSpec.{name} must be (low, high) with 1 <= low <= high <= 98, got {value}")
        if not 2 <= self.num_cameras <= 9:
            raise ValueError(
                f"SyntheticSpec.num_cameras must be in 2..9 (one digit in file names), got {self.num_cameras}"
            )
        if not 2 <= self.min_cameras_per_id <= self.max_cameras_per_id <= self.num_cameras:
            raise ValueError(
                "SyntheticSpec needs 2 <= min_cameras_per_id <= max_cameras_per_id <= num_cameras, got "
                f"{self.min_cameras_per_id}, {self.max_cameras_per_id}, {self.num_cameras}"
            )
        if self.num_train_ids < 1 or self.num_test_ids < 1 or self.num_train_ids + self.num_test_ids > 9999:
            raise ValueError(
                "SyntheticSpec needs num_train_ids >= 1, num_test_ids >= 1 and at most 9999 ids in all (4-digit pids), "
                f"got {self.num_train_ids} + {self.num_test_ids}"
            )
        if self.num_distractors < 0:
            raise ValueError(f"SyntheticSpec.num_distractors must be >= 0, got {self.num_distractors}")
        if self.height < 16 or self.width < 8:
            raise ValueError(
                f"SyntheticSpec.height and .width must be at least 16 and 8, got {self.height}x{self.width}"
            )
        if not 0.0 <= self.camera_shift <= 1.0:
            raise ValueError(f"SyntheticSpec.camera_shift must be in [0, 1], got {self.camera_shift}")
        if self.seed < 0:
            raise ValueError(f"SyntheticSpec.seed must be >= 0, got {self.seed}")


@dataclasses.dataclass(frozen=True, eq=False)
class Garment:
    """A garment's colours and pattern; `period` is the pattern's cell size as a fraction of body height."""

    colour: np.ndarray
    accent: np.ndarray
    pattern: str  # plain | stripes | checks
    period: float


@dataclasses.dataclass(frozen=True, eq=False)
class Identity:
    """A person's appearance: everything that stays the same in every camera."""

    skin: np.ndarray
    hair: np.ndarray
    long_hair: bool
    upper: Garment
    long_sleeves: bool
    lower: Garment
    lower_kind: str  # trousers | shorts | skirt
    shoes: np.ndarray
    bag: str  # none | backpack | handbag
    bag_colour: np.ndarray
    bag_side: int  # -1 or +1: the hand that carries a handbag
    build_width: float
    build_height: float


@dataclasses.dataclass(frozen=True, eq=False)
class CameraStyle:
    """One camera's systematic shift, applied to every image it takes."""

    scene: np.ndarray  # the camera's field of view, cropped at a random offset per image
    gains: np.ndarray  # per-channel white balance: the colour cast
    exposure: float
    gamma: float  # contrast curve
    black_level: float  # lifted blacks: a washed-out, low-contrast picture
    saturation: float
    downsample: float  # > 1: a low-resolution sensor, upsampled to the output size
    blur: float  # Gaussian sigma in output pixels: focus and motion blur
    noise: np.ndarray  # sensor noise (8-bit units), twice the frame size, cropped at a random offset per image
    person_height: float  # fraction of the frame height the detector's box gives the person
    aspect: float  # horizontal stretch of the detector's box
    view: np.ndarray  # probabilities of front / back / side views: a camera watches a walkway


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


@dataclasses.dataclass(frozen=True)
class Shot:
    """One image to write: which person, camera and take, and its file."""

    split_dir: str
    pid: int
    camid: int
    person_index: int
    take: int
    file_name: str


def _rng(seed: int, *path: int) -> np.random.Generator:
    """A generator for one named random stream."""
    return np.random.default_rng([seed, *path])


def _pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """An index drawn with the given relative weights."""
    cumulative = np.cumsum(weights)
    return int(np.searchsorted(cumulative, rng.uniform() * cumulative[-1], side="right"))


def _jitter_colour(rng: np.random.Generator, rgb: Sequence[float], amount: float = 0.1) -> np.ndarray:
    """A palette colour varied per person (dye, fading) so that two 'navy' jackets are not identical."""
    factor = np.exp(rng.normal(0.0, amount, 3) + rng.normal(0.0, amount))
    return np.clip(np.asarray(rgb, np.float32) * factor.astype(np.float32), 0.02, 0.97)


def _garment(rng: np.random.Generator, weight_column: int, pattern_weights: Sequence[float]) -> Garment:
    """A garment with a palette colour and a plain, striped or checked pattern."""
    weights = [entry[weight_column] for entry in GARMENT_PALETTE]
    base = _pick(rng, weights)
    accent = _pick(rng, [w if i != base else 0.0 for i, w in enumerate(weights)])
    return Garment(
        colour=_jitter_colour(rng, GARMENT_PALETTE[base][0]),
        accent=_jitter_colour(rng, GARMENT_PALETTE[accent][0]),
        pattern=("plain", "stripes", "checks")[_pick(rng, pattern_weights)],
        period=float(rng.uniform(0.025, 0.05)),
    )


def make_identity(rng: np.random.Generator) -> Identity:
    """A random person."""
    return Identity(
        skin=_jitter_colour(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 0.05),
        hair=_jitter_colour(rng, HAIR_PALETTE[_pick(rng, [w for _, w in HAIR_PALETTE])][0], 0.08),
        long_hair=bool(rng.uniform() < 0.35),
        upper=_garment(rng, 1, (0.6, 0.25, 0.15)),
        long_sleeves=bool(rng.uniform() < 0.6),
        lower=_garment(rng, 2, (0.85, 0.05, 0.10)),
        lower_kind=("trousers", "shorts", "skirt")[_pick(rng, (0.7, 0.15, 0.15))],
        shoes=_jitter_colour(rng, SHOE_PALETTE[_pick(rng, [w for _, w in SHOE_PALETTE])][0], 0.05),
        bag=("none", "backpack", "handbag")[_pick(rng, (0.45, 0.35, 0.2))],
        bag_colour=_jitter_colour(rng, GARMENT_PALETTE[_pick(rng, [e[1] for e in GARMENT_PALETTE])][0]),
        bag_side=int(rng.choice((-1, 1))),
        build_width=float(rng.uniform(0.85, 1.18)),
        build_height=float(rng.uniform(0.92, 1.05)),
    )


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid smoothly upsampled."""
    coarse = rng.uniform(0.0, 255.0, cells).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32) / 255.0


def _wall(rng: np.random.Generator, colour: np.ndarray, ys: np.ndarray, xs: np.ndarray, cell: float) -> np.ndarray:
    """One stretch of wall: brick, a shop front, foliage or plain plaster."""
    kind = int(rng.integers(4))
    if kind == 0:  # brick or tiles: a mortar grid with alternate rows offset
        brick_x = (xs + (np.floor(ys / cell) % 2) * cell) % (2 * cell)
        mortar = (ys % cell < 1.2) | (brick_x < 1.2)
        return np.where(mortar[..., None], colour * 0.7, colour)
    if kind == 1:  # shop front: glass panels of varied brightness between dark frames
        panel = np.floor((xs - xs.min()) / (cell * 3)).astype(np.int32)
        shade = rng.uniform(0.75, 1.25, panel.max() + 1).astype(np.float32)
        frame = ((xs - xs.min()) % (cell * 3)) < 2.0
        return np.where(frame[..., None], colour * 0.35, colour * shade[panel][..., None])
    leaves = _smooth_noise(rng, ys.shape[0], xs.shape[1], (max(ys.shape[0] // 10, 2), max(xs.shape[1] // 10, 2)))
    if kind == 2:  # foliage: blotchy green texture
        return np.asarray((0.2, 0.32, 0.16), np.float32) * (0.6 + 0.8 * leaves[..., None]) + colour * 0.15
    return colour * (0.85 + 0.3 * leaves[..., None])  # plaster with soft stains


def make_scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A camera's field of view, 1.25x the frame height and 4x its width: walls over the camera's floor.

    The walls change along the view (each image crops it at a random offset), as a real camera's field
    of view is much wider than one person's box; the floor, horizon and colour family stay the camera's.
    """
    rows, cols = int(height * 1.25), width * 4
    ys = np.arange(rows, dtype=np.float32)[:, None]
    xs = np.arange(cols, dtype=np.float32)[None, :]
    # Muted colours: urban scenes are mostly greys and earth tones.
    family = 0.35 * _jitter_colour(rng, GARMENT_PALETTE[int(rng.integers(len(GARMENT_PALETTE)))][0], 0.2) + 0.32
    ground = _jitter_colour(rng, (0.45, 0.43, 0.40), 0.12)
    horizon = rows * rng.uniform(0.55, 0.8)
    cell = height * rng.uniform(0.06, 0.14)
    upper = np.empty((rows, cols, 3), np.float32)
    left = 0
    while left < cols:
        right = min(cols, left + int(width * rng.uniform(0.5, 1.5)))
        upper[:, left:right] = _wall(rng, _jitter_colour(rng, family, 0.2), ys, xs[:, left:right], cell)
        left = right
    tiles = ((ys % (cell * 1.5)) < 1.0) | ((xs % (cell * 2.5)) < 1.0)
    floor = np.where(tiles[..., None], ground * 0.8, ground) * (0.85 + 0.3 * (ys / rows))[..., None]
    scene = np.where((ys < horizon)[..., None], upper, floor)
    scene = scene * (0.9 + 0.2 * _smooth_noise(rng, rows, cols, (4, 8)))[..., None]
    return np.clip(scene, 0.0, 1.0).astype(np.float32)


def _spread(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    """`count` values covering [low, high] in random order, so that cameras differ from each other."""
    return low + (high - low) * (rng.permutation(count) + rng.uniform(size=count)) / count


def make_camera_styles(spec: SyntheticSpec) -> tuple[CameraStyle, ...]:
    """The C cameras' shifts; `spec.camera_shift` scales every shift from none (0) to full (1)."""
    rng = _rng(spec.seed, _CAMERA_STREAM)
    count, strength = spec.num_cameras, spec.camera_shift

    def shifted(neutral: float, low: float, high: float) -> np.ndarray:
        return neutral + strength * (_spread(rng, low, high, count) - neutral)

    # Colour casts point in hue directions spread around the circle so that no two cameras agree.
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(count) / count
    cast = strength * _spread(rng, 0.045, 0.12, count)
    channel = 2 * np.pi * np.arange(3) / 3
    gains = 1.0 + cast[:, None] * np.cos(angles[:, None] - channel[None, :])
    exposure = shifted(1.0, 0.85, 1.17)
    gamma = shifted(1.0, 0.89, 1.15)
    black_level = shifted(0.0, 0.0, 0.06)
    saturation = shifted(1.0, 0.78, 1.11)
    downsample = shifted(1.0, 1.0, 1.75)
    blur = shifted(0.0, 0.0, 0.6)
    noise = shifted(2.0, 1.25, 4.25)
    person_height = shifted(0.84, 0.78, 0.885)
    aspect = shifted(1.0, 0.925, 1.075)
    preferred = np.eye(3)[rng.integers(3, size=count)]
    view = (1 - strength) / 3 + strength * (0.2 + 0.4 * preferred)
    styles = []
    for c in range(count):
        camera_rng = _rng(spec.seed, _CAMERA_STREAM, c)
        scene = make_scene(camera_rng, spec.height, spec.width)
        noise_field = camera_rng.standard_normal((2 * spec.height, 2 * spec.width, 3), dtype=np.float32) * noise[c]
        styles.append(CameraStyle(
            scene=scene,
            gains=gains[c].astype(np.float32),
            exposure=float(exposure[c]),
            gamma=float(gamma[c]),
            black_level=float(black_level[c]),
            saturation=float(saturation[c]),
            downsample=float(downsample[c]),
            blur=float(blur[c]),
            noise=noise_field,
            person_height=float(person_height[c]),
            aspect=float(aspect[c]),
            view=view[c],
        ))
    return tuple(styles)


def _unit(values: np.ndarray) -> np.ndarray:
    """Values limited to [0, 1] (np.clip's overhead dominates on the small arrays shapes use)."""
    return np.minimum(np.maximum(values, 0.0), 1.0)


class _Patch(NamedTuple):
    """A shape's anti-aliased coverage inside its bounding window of the image."""

    rows: slice
    cols: slice
    coverage: np.ndarray


class _Canvas:
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

    def paint(self, patch: _Patch, colour: np.ndarray, is_person: bool = True) -> None:
        """Blends `colour` (an RGB triple or a full-size texture) over the image inside the patch."""
        rows, cols, coverage = patch
        if colour.ndim == 3:
            colour = colour[rows, cols]
        target = self.image[rows, cols]
        target += coverage[..., None] * (colour - target)
        if is_person:
            np.maximum(self.person[rows, cols], coverage, out=self.person[rows, cols])

    def darken(self, patch: _Patch, amount: float) -> None:
        """Darkens the image inside the patch: a shadow."""
        rows, cols, coverage = patch
        self.image[rows, cols] *= 1.0 - amount * coverage[..., None]

    def shade(self, centre_x: float, half_width: float) -> None:
        """Darkens the current person towards its sides, where the body turns away from the light."""
        edge = _unit(((self.xs - centre_x) / half_width) ** 2)
        self.image *= 1.0 - 0.3 * (self.person * edge)[..., None]
        self.person[:] = 0.0

    def box(self, top: float, bottom: float, left: float, right: float) -> _Patch:
        """An axis-aligned rectangle."""
        rows, cols = self._window(top, bottom, left, right)
        ys, xs = self.ys[rows], self.xs[:, cols]
        inside_y = _unit(np.minimum(ys - top, bottom - ys) + 0.5)
        inside_x = _unit(np.minimum(xs - left, right - xs) + 0.5)
        return _Patch(rows, cols, inside_y * inside_x)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> _Patch:
        """An axis-aligned ellipse."""
        rows, cols = self._window(cy - ry, cy + ry, cx - rx, cx + rx)
        radius = np.sqrt(((self.ys[rows] - cy) / ry) ** 2 + ((self.xs[:, cols] - cx) / rx) ** 2)
        return _Patch(rows, cols, _unit((1.0 - radius) * min(ry, rx) + 0.5))

    def capsule(self, start: tuple[float, float], end: tuple[float, float], radius: float) -> _Patch:
        """A thick segment with round ends: a limb."""
        (y0, x0), (y1, x1) = start, end
        rows, cols = self._window(min(y0, y1) - radius, max(y0, y1) + radius,
                                  min(x0, x1) - radius, max(x0, x1) + radius)
        ys, xs = self.ys[rows], self.xs[:, cols]
        dy, dx = y1 - y0, x1 - x0
        t = _unit(((ys - y0) * dy + (xs - x0) * dx) / max(dy * dy + dx * dx, 1e-6))
        distance = np.hypot(ys - (y0 + t * dy), xs - (x0 + t * dx))
        return _Patch(rows, cols, _unit(radius - distance + 0.5))

    def trapezoid(self, top: float, bottom: float, cx: float, half_top: float, half_bottom: float) -> _Patch:
        """A vertical trapezoid centred on `cx`: a torso or a skirt."""
        widest = max(half_top, half_bottom)
        rows, cols = self._window(top, bottom, cx - widest, cx + widest)
        ys, xs = self.ys[rows], self.xs[:, cols]
        half = half_top + _unit((ys - top) / (bottom - top)) * (half_bottom - half_top)
        inside_y = _unit(np.minimum(ys - top, bottom - ys) + 0.5)
        return _Patch(rows, cols, inside_y * _unit(half - np.abs(xs - cx) + 0.5))

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


def _draw_legs(canvas: _Canvas, person: Identity, body: _Body) -> None:
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


def _draw_arms(canvas: _Canvas, person: Identity, body: _Body, upper: np.ndarray) -> list[tuple[float, float]]:
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


def _draw_head(canvas: _Canvas, person: Identity, body: _Body) -> None:
    """Neck, face and hair; the back view shows only hair."""
    h, orientation = body.height, body.pose.orientation
    turn = 0.012 * h * body.pose.facing if orientation == "side" else 0.0
    centre = body.pose.centre_x
    canvas.paint(canvas.box(body.y(0.11), body.y(0.16), centre - 0.022 * h, centre + 0.022 * h), person.skin)
    canvas.paint(canvas.ellipse(body.y(0.068), centre - turn, 0.066 * h, 0.052 * h), person.hair)
    if orientation != "back":
        canvas.paint(canvas.ellipse(body.y(0.082), centre + turn, 0.052 * h, 0.043 * h), person.skin)


def _draw_long_hair(canvas: _Canvas, person: Identity, body: _Body) -> None:
    """Hair falling to the shoulders, behind the head (drawn under the torso in front view, over it in back view)."""
    back = -0.02 * body.height * body.pose.facing if body.pose.orientation == "side" else 0.0
    centre = body.pose.centre_x + back
    canvas.paint(canvas.box(body.y(0.06), body.y(0.26), centre - 0.055 * body.height, centre + 0.055 * body.height),
                 person.hair)


def _draw_backpack(canvas: _Canvas, person: Identity, body: _Body, on_top: bool) -> None:
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


def _draw_handbag(canvas: _Canvas, person: Identity, body: _Body, hands: list[tuple[float, float]]) -> None:
    """A handbag hanging from the carrying hand, with its strap."""
    hand = hands[0] if len(hands) == 1 or person.bag_side < 0 else hands[1]
    size = 0.09 * body.height
    top = hand[0] - 0.02 * body.height
    strap = canvas.capsule((top - 0.05 * body.height, hand[1]), (top, hand[1] - size * 0.3), 0.6)
    canvas.paint(strap, person.bag_colour)
    canvas.paint(canvas.box(top, top + size, hand[1] - size * 0.5, hand[1] + size * 0.5), person.bag_colour)


def draw_person(canvas: _Canvas, person: Identity, pose: Pose) -> None:
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
        centre_x=width / 2 + rng.normal(0.0, 0.04) * width,
        top=spare * rng.uniform(0.3, 0.7),
        height=body_height,
        width_scale=person.build_width * style.aspect,
        orientation=ORIENTATIONS[_pick(rng, style.view)],
        facing=int(rng.choice((-1, 1))),
        stride=float(rng.uniform(0.0, 0.12)),
        arm_swing=float(rng.uniform(-0.1, 0.1)),
    )


def _occlude(canvas: _Canvas, rng: np.random.Generator) -> None:
    """Sometimes hides part of the person behind a pole or a low object (bench, bin, car)."""
    kind = rng.uniform()
    height, width = canvas.image.shape[:2]
    if kind < 0.1:
        left = rng.uniform(-0.1, 0.9) * width
        pole = _jitter_colour(rng, (0.45, 0.45, 0.45), 0.3)
        canvas.paint(canvas.box(-1.0, height + 1.0, left, left + rng.uniform(0.08, 0.16) * width), pole, False)
    elif kind < 0.2:
        top = rng.uniform(0.7, 0.85) * height
        left = rng.uniform(-0.5, 0.3) * width
        block = _jitter_colour(rng, GARMENT_PALETTE[int(rng.integers(len(GARMENT_PALETTE)))][0], 0.2)
        canvas.paint(canvas.box(top, height + 1.0, left, left + rng.uniform(0.5, 1.0) * width), block, False)


def apply_camera(image: np.ndarray, style: CameraStyle, rng: np.random.Generator) -> np.ndarray:
    """The camera's response to the scene: optics, colour, tone curve, resolution and noise; returns uint8 RGB."""
    height, width = image.shape[:2]
    if style.blur > 0.05:
        image = ndimage.gaussian_filter(image, (style.blur, style.blur, 0.0), mode="nearest", truncate=3.0)
    # Saturation, white balance and exposure are one linear map of RGB; lighting also varies a little
    # from one image to the next within a camera.
    desaturate = style.saturation * np.eye(3) + (1.0 - style.saturation) / 3.0
    colour_map = desaturate * (style.gains * style.exposure * rng.uniform(0.93, 1.07))[None, :]
    image = (image.reshape(-1, 3) @ colour_map.astype(np.float32)).reshape(height, width, 3)
    # Contrast (gamma and lifted blacks) as a lookup table, the way a camera applies its tone curve.
    levels = np.linspace(0.0, 1.0, 1024) ** style.gamma
    tone_curve = np.round(255.0 * (style.black_level + (1.0 - style.black_level) * levels)).astype(np.uint8)
    pixels = tone_curve[np.clip(image * 1023.0 + 0.5, 0, 1023).astype(np.int32)]
    if style.downsample > 1.05:
        small = (max(round(width / style.downsample), 1), max(round(height / style.downsample), 1))
        pixels = np.asarray(Image.fromarray(pixels).resize(small, Image.BOX).resize((width, height), Image.BILINEAR))
    # Cropping the camera's noise field at a random offset varies the noise between images at a
    # fraction of the cost of drawing it afresh.
    top, left = int(rng.integers(height)), int(rng.integers(width))
    noise = style.noise[top:top + height, left:left + width]
    return np.clip(pixels + noise + 0.5, 0, 255).astype(np.uint8)


def render(person: Identity, style: CameraStyle, scenes: Sequence[np.ndarray], spec: SyntheticSpec,
           rng: np.random.Generator) -> np.ndarray:
    """One uint8 image of `person` taken by the camera `style`."""
    # Without full camera shift, some images borrow another camera's background.
    scene = style.scene if rng.uniform() < spec.camera_shift else scenes[int(rng.integers(len(scenes)))]
    top = int(rng.integers(scene.shape[0] - spec.height + 1))
    left = int(rng.integers(scene.shape[1] - spec.width + 1))
    background = scene[top:top + spec.height, left:left + spec.width] * rng.uniform(0.94, 1.06)
    canvas = _Canvas(background.astype(np.float32))
    # Detector boxes are rarely clean: sometimes another pedestrian is partly in the box, behind the person.
    if rng.uniform() < 0.1:
        stranger = make_identity(rng)
        pose = make_pose(rng, stranger, style, spec.height, spec.width)
        offset = rng.choice((-1, 1)) * rng.uniform(0.5, 0.8) * spec.width
        draw_person(canvas, stranger, dataclasses.replace(pose, centre_x=pose.centre_x + offset))
    draw_person(canvas, person, make_pose(rng, person, style, spec.height, spec.width))
    _occlude(canvas, rng)
    return apply_camera(canvas.image, style, rng)


def _camera_visits(spec: SyntheticSpec, person_index: int) -> list[tuple[int, int]]:
    """(camid, number of images) for each camera that sees this test or train person."""
    rng = _rng(spec.seed, _VISIT_STREAM, person_index)
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
        camid = int(_rng(spec.seed, _VISIT_STREAM, person_index).integers(spec.num_cameras))
        add(GALLERY_DIR, 0, camid, person_index, 0, 1)
    return shots


def _spec_document(spec: SyntheticSpec) -> dict:
    """What spec.json holds: the generator version and the spec, as plain JSON values."""
    return json.loads(json.dumps({"generator_version": GENERATOR_VERSION, "spec": dataclasses.asdict(spec)}))


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
            people[shot.person_index] = make_identity(_rng(spec.seed, _IDENTITY_STREAM, shot.person_index))
        rng = _rng(spec.seed, _IMAGE_STREAM, shot.person_index, shot.camid, shot.take)
        pixels = render(people[shot.person_index], styles[shot.camid], scenes, spec, rng)
        Image.fromarray(pixels).save(os.path.join(root, shot.split_dir, shot.file_name), format="JPEG",
                                     quality=JPEG_QUALITY, subsampling="4:2:0")
    with open(os.path.join(root, SPEC_FILE), "w") as f:
        json.dump(_spec_document(spec), f, indent=2, sort_keys=True)
        f.write("\n")
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


class SpecMismatchError(ValueError):
    """A folder already holds a synthetic tree made from a different spec."""


def read_spec_document(directory: str) -> Optional[dict]:
    """The contents of `directory`/spec.json, or None if the file is absent."""
    path = os.path.join(directory, SPEC_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it does not describe a synthetic tree") from error


def ensure(directory: str, spec: SyntheticSpec = SyntheticSpec()) -> str:
    """Generates the tree if `directory` is absent or empty, reuses it if made from `spec`; returns it."""
    if not os.path.exists(directory) or (os.path.isdir(directory) and not os.listdir(directory)):
        logging.info("Generating the synthetic Re-ID benchmark in %s", directory)
        return generate(directory, spec)
    found = read_spec_document(directory)
    if found is None:
        raise FileExistsError(f"{directory!r} exists but has no {SPEC_FILE}: it is not a synthetic tree; "
                              "choose another folder")
    expected = _spec_document(spec)
    if found != expected:
        raise SpecMismatchError(f"{directory!r} holds a synthetic tree made from {json.dumps(found, sort_keys=True)}, "
                                f"not the requested {json.dumps(expected, sort_keys=True)}; choose another folder or "
                                "delete it yourself")
    logging.info("Reusing the synthetic Re-ID benchmark in %s", directory)
    return directory
