"""How hard the benchmark's people and cameras are: the looks of the presets (`--synthetic_preset`).

`default` is the original benchmark, kept for the paper's tables; its look reproduces it pixel for pixel.
`realistic` is calibrated to predict real two-camera data and frozen (docs/results.md, "The realistic preset"): dark
and neutral clothing with many look-alikes, a front/back camera against a side camera, camera visits that are frames
of one track, occlusion, clutter, varying resolution. Its untrained, intra-only and first-association-round figures
fall within x1.5 of a real set's. Do not change its look: that makes another benchmark, which must be calibrated again
(`python -m acan_tf.experiments calibration`) under a new name; tests/test_synthetic.py pins its images.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Look:
    """What makes people hard to tell apart and cameras hard to match; the defaults are the original benchmark's."""

    bright_clothing: float = 1.0  # weight of the bright garment colours relative to the palette's (1: as listed)
    patterned_clothing: float = 1.0  # weight of striped and checked garments relative to the palette's
    colour_jitter: float = 0.1  # per-person variation of a palette colour (smaller: more people dressed alike)
    look_alikes: float = 0.0  # share of people wearing the clothes of another person of their split
    look_alike_bags: float = 0.0  # share of those also carrying that person's bag and wearing their shoes
    front_details: float = 0.0  # share of people in an open jacket whose front shows another top
    back_prints: float = 0.0  # share of people with a print on the back of their top
    camera_views: tuple[tuple[float, float, float], ...] = ()  # per camera: P(front, back, side); (): drawn
    passers_by: float = 0.1  # share of images with another pedestrian partly in the box
    passers_in_front: float = 0.0  # share of those passing in front of the person (occluding)
    occlusion: float = 0.2  # share of images with a pole or a low object in front of the person
    lighting: tuple[float, float] = (0.93, 1.07)  # range of an image's exposure around its camera's
    framing: float = 0.04  # standard deviation of the person's horizontal offset (fraction of the width)
    resolution: tuple[float, float] = (1.0, 1.0)  # range of an image's extra downsampling (1: the camera's)
    blur: tuple[float, float] = (0.0, 0.0)  # range of an image's extra blur (Gaussian sigma, output pixels)
    shared_scenes: float = 0.0  # share of images whose background is any camera's scene, not their own camera's
    clutter: float = 0.0  # mean number of objects (signs, bins, bikes, people's parts) in an image's background
    # Share of a person's visits to a camera whose images are frames of one track, as a tracker's labels give them:
    # the same direction, spot, lighting, passer-by and rendering, only the walking phase and the box moving a little.
    tracked_visits: float = 0.0

    def __post_init__(self) -> None:
        for name in ("look_alikes", "look_alike_bags", "front_details", "back_prints", "passers_by", "passers_in_front",
                     "occlusion", "shared_scenes", "tracked_visits"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Look.{name} must be a share in [0, 1], got {getattr(self, name)}")
        for name in ("lighting", "resolution", "blur"):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f"Look.{name} must be a range (low, high) with 0 <= low <= high, got {(low, high)}")
        for views in self.camera_views:
            if len(views) != 3 or min(views) < 0.0 or sum(views) <= 0.0:
                raise ValueError(f"Look.camera_views needs (front, back, side) weights >= 0 per camera, got {views}")


# One look per name in acan_tf.config.SYNTHETIC_PRESETS (the choices of --synthetic_preset).
LOOKS = {
    "default": Look(),
    "realistic": Look(
        bright_clothing=0.1,
        patterned_clothing=0.3,
        colour_jitter=0.04,
        look_alikes=0.9,
        look_alike_bags=0.7,
        front_details=0.8,
        back_prints=0.6,
        # A camera that sees people walk towards or away from it, and one that sees them pass by.
        camera_views=((0.5, 0.5, 0.0), (0.0, 0.0, 1.0)),
        passers_by=0.1,
        passers_in_front=0.4,
        occlusion=0.1,
        lighting=(0.75, 1.25),
        framing=0.07,
        resolution=(1.0, 1.2),
        blur=(0.0, 0.5),
        shared_scenes=0.5,
        clutter=0.1,
        tracked_visits=0.8,
    ),
}
