"""The synthetic multi-camera Re-ID benchmark: seeded pedestrians seen through C shifted cameras.

An identity is a fixed set of attributes (garments and their patterns, bag, hair, skin, shoes, build),
rendered with pose jitter and occasional occlusion. Each camera applies its own systematic shift (scene,
colour cast, exposure, contrast, saturation, resolution, blur, noise, framing, typical viewing angle), so
an image's camera is easy to tell and matching a person across cameras is hard: the gap the paper's camera
alignment closes. The result is written as a Market-1501 tree that the ordinary Market parser reads.

Presets (`presets`) set how hard people and cameras are: `default`, the original benchmark, and `realistic`,
calibrated to predict real two-camera data (docs/results.md).

Modules, in the order an image is made: `presets` (looks), `spec` (what a benchmark is made from, spec.json),
`streams` (seeded random streams), `identities` (palettes and people), `cameras` (scenes and per-camera shifts),
`canvas` (anti-aliased shapes), `pedestrian` (pose and body drawing), `image` (one camera's picture of one person) and
`tree` (planning and writing the tree: `generate`, `ensure`).
"""

from acan_tf.data.synthetic.cameras import CameraStyle, make_camera_styles
from acan_tf.data.synthetic.identities import Identity, make_identity
from acan_tf.data.synthetic.image import render
from acan_tf.data.synthetic.spec import (
    GENERATOR_VERSION,
    SPEC_FILE,
    SpecMismatchError,
    SyntheticSpec,
    preset_spec,
    read_spec_document,
    spec_document,
    spec_preset,
)
from acan_tf.data.synthetic.tree import (
    GALLERY_DIR,
    QUERY_DIR,
    TRAIN_DIR,
    Shot,
    ensure,
    generate,
    make_person,
    plan_shots,
)

__all__ = [
    "GALLERY_DIR",
    "GENERATOR_VERSION",
    "QUERY_DIR",
    "SPEC_FILE",
    "TRAIN_DIR",
    "CameraStyle",
    "Identity",
    "Shot",
    "SpecMismatchError",
    "SyntheticSpec",
    "ensure",
    "generate",
    "make_camera_styles",
    "make_identity",
    "make_person",
    "plan_shots",
    "preset_spec",
    "read_spec_document",
    "render",
    "spec_document",
    "spec_preset",
]
