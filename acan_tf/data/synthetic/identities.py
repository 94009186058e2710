"""Who a pedestrian is: palettes of street clothing, hair, skin and shoes, and identities sampled from them."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from acan_tf.data.synthetic.presets import Look
from acan_tf.data.synthetic.streams import pick

# Garment colours in [0, 1], their frequency as upper and as lower garment, and whether the colour is bright (a
# preset's look may make those rarer): dark and denim dominate, as in street footage, so colour alone rarely
# identifies a person.
GARMENT_PALETTE = (
    ((0.07, 0.07, 0.08), 3.0, 3.0, False),  # black
    ((0.25, 0.25, 0.27), 2.0, 2.0, False),  # dark grey
    ((0.52, 0.52, 0.53), 1.5, 1.0, False),  # grey
    ((0.88, 0.88, 0.86), 2.0, 0.5, False),  # white
    ((0.10, 0.14, 0.33), 2.0, 2.5, False),  # navy
    ((0.22, 0.36, 0.68), 1.5, 2.0, False),  # blue / denim
    ((0.56, 0.70, 0.85), 1.0, 0.5, True),  # light blue
    ((0.72, 0.12, 0.12), 1.0, 0.3, True),  # red
    ((0.42, 0.08, 0.14), 0.7, 0.3, True),  # maroon
    ((0.20, 0.44, 0.22), 1.0, 0.4, True),  # green
    ((0.58, 0.54, 0.34), 0.8, 1.2, False),  # khaki
    ((0.40, 0.26, 0.15), 0.8, 0.8, False),  # brown
    ((0.80, 0.72, 0.57), 0.8, 0.8, False),  # beige
    ((0.90, 0.80, 0.20), 0.5, 0.1, True),  # yellow
    ((0.90, 0.56, 0.66), 0.6, 0.2, True),  # pink
    ((0.40, 0.20, 0.52), 0.5, 0.2, True),  # purple
    ((0.92, 0.48, 0.12), 0.4, 0.1, True),  # orange
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
    inner: np.ndarray | None = None  # the top an open jacket shows from the front only
    back_print: np.ndarray | None = None  # a print seen only from the back


def jitter_colour(rng: np.random.Generator, rgb: Sequence[float], amount: float = 0.1) -> np.ndarray:
    """A palette colour varied per person (dye, fading) so that two 'navy' jackets are not identical."""
    factor = np.exp(rng.normal(0.0, amount, 3) + rng.normal(0.0, amount))
    return np.clip(np.asarray(rgb, np.float32) * factor.astype(np.float32), 0.02, 0.97)


def garment_weights(column: int, look: Look) -> list[float]:
    """The palette's frequencies as upper (column 1) or lower (2) garment, bright colours scaled by the look."""
    return [entry[column] * (look.bright_clothing if entry[3] else 1.0) for entry in GARMENT_PALETTE]


def _garment(rng: np.random.Generator, weight_column: int, pattern_weights: Sequence[float], look: Look) -> Garment:
    """A garment with a palette colour and a plain, striped or checked pattern."""
    weights = garment_weights(weight_column, look)
    base = pick(rng, weights)
    accent = pick(rng, [w if i != base else 0.0 for i, w in enumerate(weights)])
    plain, *patterns = pattern_weights
    return Garment(
        colour=jitter_colour(rng, GARMENT_PALETTE[base][0], look.colour_jitter),
        accent=jitter_colour(rng, GARMENT_PALETTE[accent][0], look.colour_jitter),
        pattern=("plain", "stripes", "checks")[pick(rng, [plain, *(w * look.patterned_clothing for w in patterns)])],
        period=float(rng.uniform(0.025, 0.05)),
    )


def make_identity(rng: np.random.Generator, look: Look) -> Identity:
    """A random person, dressed from the palettes as the look weights them."""
    return Identity(
        skin=jitter_colour(rng, SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], 0.05),
        hair=jitter_colour(rng, HAIR_PALETTE[pick(rng, [w for _, w in HAIR_PALETTE])][0], 0.08),
        long_hair=bool(rng.uniform() < 0.35),
        upper=_garment(rng, 1, (0.6, 0.25, 0.15), look),
        long_sleeves=bool(rng.uniform() < 0.6),
        lower=_garment(rng, 2, (0.85, 0.05, 0.10), look),
        lower_kind=("trousers", "shorts", "skirt")[pick(rng, (0.7, 0.15, 0.15))],
        shoes=jitter_colour(rng, SHOE_PALETTE[pick(rng, [w for _, w in SHOE_PALETTE])][0], 0.05),
        bag=("none", "backpack", "handbag")[pick(rng, (0.45, 0.35, 0.2))],
        bag_colour=jitter_colour(rng, GARMENT_PALETTE[pick(rng, garment_weights(1, look))][0]),
        bag_side=int(rng.choice((-1, 1))),
        build_width=float(rng.uniform(0.85, 1.18)),
        build_height=float(rng.uniform(0.92, 1.05)),
    )



def with_look(person: Identity, rng: np.random.Generator, look: Look, model: Identity | None) -> Identity:
    """`person` as the look dresses them: in the clothes of `model` (a look-alike), with front and back details."""
    details = {}
    if model is not None:
        details.update(upper=model.upper, lower=model.lower, lower_kind=model.lower_kind,
                       long_sleeves=model.long_sleeves, inner=model.inner, back_print=model.back_print)
        if rng.uniform() < look.look_alike_bags:
            details.update(bag=model.bag, bag_colour=model.bag_colour, bag_side=model.bag_side, shoes=model.shoes)
    weights = garment_weights(1, look)
    if rng.uniform() < look.front_details:
        details["inner"] = jitter_colour(rng, GARMENT_PALETTE[pick(rng, weights)][0], look.colour_jitter)
    if rng.uniform() < look.back_prints:
        details["back_print"] = jitter_colour(rng, GARMENT_PALETTE[pick(rng, weights)][0], look.colour_jitter)
    return dataclasses.replace(person, **details)
