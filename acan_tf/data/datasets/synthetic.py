"""The procedural multi-camera benchmark, generated on first use and read with the Market-1501 parser."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from acan_tf.data.datasets.layout import DatasetError
from acan_tf.data.datasets.market1501 import NAME_DESCRIPTION, NAME_PATTERN
from acan_tf.data.datasets.market_layout import load_market_layout
from acan_tf.data.records import ReIDDataset

if TYPE_CHECKING:
    from acan_tf.data.synthetic.spec import SyntheticSpec

LAYOUT = """\
<root>/
|-- spec.json             {"spec": {"num_cameras": C, ...}, ...}
|-- bounding_box_train/   0002_c1s1_000451_03.jpg ...
|-- query/
`-- bounding_box_test/"""


def load(root: str, camera_shift: float | None = None, spec: SyntheticSpec | None = None,
         preset: str | None = None) -> ReIDDataset:
    """The synthetic benchmark in `root` itself: the tree found there, or one generated on first use.

    An existing tree is read as it was made (its spec.json says how), whatever `camera_shift`, but it must be of
    `preset` if one is given; an absent or empty folder gets the benchmark of `preset` (default: "default"), with
    `camera_shift` if given. `spec` asks for one exact benchmark instead: it is generated, or the tree found must have
    been made from it.
    """
    # Imported here so that parsing the real datasets never depends on the generator.
    from acan_tf.data import synthetic

    if spec is not None and (camera_shift, preset) != (None, None):
        raise DatasetError(f"synthetic: pass camera_shift ({camera_shift}) and preset ({preset}), or spec, not both")
    exact = spec is not None
    if spec is None:
        try:
            spec = synthetic.preset_spec(preset or "default",
                                         **({} if camera_shift is None else {"camera_shift": camera_shift}))
        except ValueError as error:
            raise DatasetError(f"synthetic: {error}") from error
    root = os.path.abspath(root)
    try:
        document = synthetic.read_spec_document(root) if os.path.isdir(root) else None
        if exact or document is None:
            synthetic.ensure(root, spec)
            document = synthetic.read_spec_document(root)
    except (OSError, ValueError) as error:
        message = f"{root} is not a synthetic benchmark folder: {error}\nexpected layout:\n{LAYOUT}"
        raise DatasetError(message) from error
    settings = document.get("spec") if isinstance(document, dict) else None
    found = synthetic.spec_preset(document)
    if preset is not None and found != preset:
        raise DatasetError(f"{root} holds the synthetic benchmark of preset {found!r}, not {preset!r}: give each "
                           "preset its own folder (--data_root), e.g. data/synthetic_realistic")
    # A preset's look is part of what it is (a tree drawn with an earlier look is another benchmark).
    expected_look = synthetic.spec_document(spec).get("look")
    if preset is not None and document.get("look") != expected_look:
        raise DatasetError(f"{root} holds the {preset} preset drawn with another look ({document.get('look')}), not "
                           f"today's ({expected_look}); delete the folder to generate it again, or choose another")
    num_cameras = settings.get("num_cameras") if isinstance(settings, dict) else None
    if not isinstance(num_cameras, int) or num_cameras < 1:
        raise DatasetError(f"{os.path.join(root, 'spec.json')}: expected spec.num_cameras, a positive integer")
    return load_market_layout("synthetic", root, NAME_PATTERN, NAME_DESCRIPTION, num_cameras, LAYOUT)
