"""What sets each camera apart: its scene and its systematic shift, and that shift applied to an image."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image
from scipy import ndimage

from acan_tf.data.synthetic.identities import GARMENT_PALETTE, jitter_colour
from acan_tf.data.synthetic.spec import SyntheticSpec
from acan_tf.data.synthetic.streams import CAMERA_STREAM, stream


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
    lighting: tuple[float, float]  # range of an image's exposure around the camera's
    framing: float  # standard deviation of the detector box's horizontal offset (fraction of the width)


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
    family = 0.35 * jitter_colour(rng, GARMENT_PALETTE[int(rng.integers(len(GARMENT_PALETTE)))][0], 0.2) + 0.32
    ground = jitter_colour(rng, (0.45, 0.43, 0.40), 0.12)
    horizon = rows * rng.uniform(0.55, 0.8)
    cell = height * rng.uniform(0.06, 0.14)
    upper = np.empty((rows, cols, 3), np.float32)
    left = 0
    while left < cols:
        right = min(cols, left + int(width * rng.uniform(0.5, 1.5)))
        upper[:, left:right] = _wall(rng, jitter_colour(rng, family, 0.2), ys, xs[:, left:right], cell)
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
    rng = stream(spec.seed, CAMERA_STREAM)
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
    look = spec.look
    if look.camera_views:  # the look's cameras watch people from set directions
        chosen = np.asarray([look.camera_views[c % len(look.camera_views)] for c in range(count)], np.float64)
        view = (1 - strength) / 3 + strength * chosen / chosen.sum(axis=1, keepdims=True)
    styles = []
    for c in range(count):
        camera_rng = stream(spec.seed, CAMERA_STREAM, c)
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
            lighting=look.lighting,
            framing=look.framing,
        ))
    return tuple(styles)


def apply_camera(image: np.ndarray, style: CameraStyle, rng: np.random.Generator) -> np.ndarray:
    """The camera's response to the scene: optics, colour, tone curve, resolution and noise; returns uint8 RGB."""
    height, width = image.shape[:2]
    if style.blur > 0.05:
        image = ndimage.gaussian_filter(image, (style.blur, style.blur, 0.0), mode="nearest", truncate=3.0)
    # Saturation, white balance and exposure are one linear map of RGB; lighting also varies a little
    # from one image to the next within a camera.
    desaturate = style.saturation * np.eye(3) + (1.0 - style.saturation) / 3.0
    colour_map = desaturate * (style.gains * style.exposure * rng.uniform(*style.lighting))[None, :]
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

