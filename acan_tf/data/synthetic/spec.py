"""What a synthetic benchmark is made from: its spec and generator version, as recorded in the tree's spec.json."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Optional

from acan_tf.data.synthetic.presets import LOOKS, Look
from acan_tf.errors import UserError

SPEC_FILE = "spec.json"
# Bump when the images drawn for a given spec change, so ensure() refuses trees made by older code.
GENERATOR_VERSION = 2


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
    preset: str = "default"  # the look of people and cameras (presets.LOOKS)

    @property
    def look(self) -> Look:
        """The preset's look."""
        return LOOKS[self.preset]

    def __post_init__(self) -> None:
        if self.preset not in LOOKS:
            raise ValueError(f"SyntheticSpec.preset must be one of {', '.join(LOOKS)}, got {self.preset!r}")
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


# The benchmark of each preset; tests and the calibration ask for smaller ones with `preset_spec(name, **sizes)`.
PRESET_SPECS = {
    "default": SyntheticSpec(),
    # The real two-camera hold-out's protocol: 485 training identities with 2 images per camera, 486 test identities
    # with one query and one gallery image per camera.
    "realistic": SyntheticSpec(
        num_cameras=2, num_train_ids=485, num_test_ids=486, min_cameras_per_id=2, max_cameras_per_id=2,
        train_images_per_camera=(2, 2), gallery_images_per_camera=(1, 1), preset="realistic",
    ),
}


def preset_spec(preset: str, **changes) -> SyntheticSpec:
    """The benchmark of `preset` with some fields changed (sizes for tests, the camera shift)."""
    if preset not in PRESET_SPECS:
        raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {', '.join(PRESET_SPECS)}")
    return dataclasses.replace(PRESET_SPECS[preset], **changes)


def spec_preset(document: object) -> str:
    """The preset a spec.json was made with (trees made before presets existed are the default one)."""
    settings = document.get("spec") if isinstance(document, dict) else None
    return str(settings.get("preset", "default")) if isinstance(settings, dict) else "default"


def spec_document(spec: SyntheticSpec) -> dict:
    """What spec.json holds: the generator version, the spec and, for a preset other than the default, its look."""
    settings = dataclasses.asdict(spec)
    document = {"generator_version": GENERATOR_VERSION, "spec": settings}
    if spec.preset == "default":
        del settings["preset"]  # the default benchmark's spec.json stays the one written before presets existed
    else:
        document["look"] = dataclasses.asdict(spec.look)
    return json.loads(json.dumps(document))


class SpecMismatchError(UserError, ValueError):
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

