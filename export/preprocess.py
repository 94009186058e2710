"""Reading images as the exported model expects them: RGB, resized to H×W as training resizes, uint8.

Needs only numpy and Pillow. Training resizes with tf.image.resize (bilinear, half-pixel centres, no
antialiasing); `resize_bilinear` computes the same in float32, so edge and server clients feed the model
what it was trained on (up to the rounding to uint8 that the model's uint8 input implies).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _sample_positions(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, weight of upper) per output pixel, in TensorFlow's half-pixel arithmetic."""
    scale = np.float32(in_size) / np.float32(out_size)
    position = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(position)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(position), in_size - 1).astype(np.int64)
    return lower, upper, (position - floor).astype(np.float32)


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """[h, w, 3] pixels → float32 [height, width, 3], as tf.image.resize(method="bilinear", antialias=False)."""
    pixels = image.astype(np.float32)
    top, bottom, y_weight = _sample_positions(pixels.shape[0], height)
    left, right, x_weight = _sample_positions(pixels.shape[1], width)
    x_weight, y_weight = x_weight[None, :, None], y_weight[:, None, None]
    upper_row = pixels[top][:, left] + (pixels[top][:, right] - pixels[top][:, left]) * x_weight
    lower_row = pixels[bottom][:, left] + (pixels[bottom][:, right] - pixels[bottom][:, left]) * x_weight
    return upper_row + (lower_row - upper_row) * y_weight


def load_image(path: str, height: int, width: int) -> np.ndarray:
    """An image file as uint8 RGB [height, width, 3]: grey and palette images are expanded, alpha dropped."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: cannot read the image ({error})") from error
    return np.clip(np.rint(resize_bilinear(pixels, height, width)), 0, 255).astype(np.uint8)


def list_images(folder: str) -> list[str]:
    """The image files directly inside `folder`, sorted by name."""
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_SUFFIXES))
    return [os.path.join(folder, name) for name in names]


def collect_items(paths: list[str], tracklets: bool = False) -> list[tuple[str, list[str]]]:
    """(name, frame paths) per item: a file is one; a folder gives one per image, or with `tracklets` is one."""
    items = []
    for path in paths:
        if os.path.isfile(path):
            items.append((path, [path]))
        elif os.path.isdir(path):
            frames = list_images(path)
            if not frames:
                raise ValueError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            items.extend([(path, frames)] if tracklets else [(frame, [frame]) for frame in frames])
        else:
            raise ValueError(f"{path}: no such image file or folder")
    return items


def gallery_items(folder: str, tracklets: bool = False) -> list[tuple[str, list[str]]]:
    """The items of a gallery folder: its images, or with `tracklets` its sub-folders (one tracklet each)."""
    if not os.path.isdir(folder):
        raise ValueError(f"--gallery={folder}: not a folder")
    if not tracklets:
        return collect_items([folder])
    folders = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                     if os.path.isdir(os.path.join(folder, name)))
    if not folders:
        raise ValueError(f"--gallery={folder}: no tracklet sub-folders "
                         "(with --tracklets each sub-folder is one tracklet)")
    return collect_items(folders, tracklets=True)
