"""Seeded random streams, one per generated object, and the weighted draw every sampler uses."""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Independent random streams: every object draws from its own seeded generator, so what an image
# looks like does not depend on the order in which images are generated.
IDENTITY_STREAM, VISIT_STREAM, CAMERA_STREAM, IMAGE_STREAM = range(4)
# What a preset's look adds draws from streams of its own, so the default benchmark's images stay as they were.
PERSON_DETAIL_STREAM, IMAGE_DETAIL_STREAM, TRACK_STREAM, FRAME_STREAM = range(4, 8)


def stream(seed: int, *path: int) -> np.random.Generator:
    """A generator for one named random stream."""
    return np.random.default_rng([seed, *path])


def pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    """An index drawn with the given relative weights."""
    cumulative = np.cumsum(weights)
    return int(np.searchsorted(cumulative, rng.uniform() * cumulative[-1], side="right"))

