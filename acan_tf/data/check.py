"""Checks a dataset before training: python -m acan_tf.data.check --dataset=market1501 --data_root=/data

Loads the dataset, prints its summary, decodes every image and reports missing, empty or corrupt files,
the cameras training would drop and which evaluation training will make. Exits non-zero if anything would stop
training.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import os
import sys
from typing import Sequence

from absl import app, flags, logging
from PIL import Image

from acan_tf.data.datasets import DATASET_NAMES, load_dataset
from acan_tf.data.holdout import hold_out_frames
from acan_tf.data.records import ReIDDataset, frame_paths
from acan_tf.data.summary import dropped_cameras, summarize
from acan_tf.errors import UserError

# The formats tf.io.decode_image accepts (MPO is PIL's name for a JPEG with extra frames); PIL reads
# more, but training could not.
DECODABLE_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "GIF")
MAX_LISTED = 20
CHUNK = 1024


@dataclasses.dataclass(frozen=True)
class FileProblem:
    """A file training could not read: kind is 'missing', 'empty' or 'corrupt'."""

    path: str
    kind: str
    detail: str = ""


def inspect_image(path: str) -> FileProblem | None:
    """The problem with one image file, or None if it decodes to pixels."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return FileProblem(path, "missing")
    if size == 0:
        return FileProblem(path, "empty")
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.load()
    except Exception as error:  # PIL's decoders raise many types (OSError, SyntaxError, struct.error, ...)
        return FileProblem(path, "corrupt", str(error) or type(error).__name__)
    if image_format not in DECODABLE_FORMATS:
        return FileProblem(path, "corrupt", f"format {image_format} is not one of {DECODABLE_FORMATS}")
    return None


def dataset_paths(dataset: ReIDDataset) -> list[str]:
    """Every distinct image path of the three splits, in a stable order."""
    records = itertools.chain(dataset.train, dataset.query, dataset.gallery)
    return list(dict.fromkeys(path for record in records for path in frame_paths(record)))


def find_file_problems(paths: Sequence[str], num_workers: int = 8, log_every: int = 10000) -> list[FileProblem]:
    """The problems of all `paths`, decoded on a thread pool (PIL releases the GIL while decoding)."""
    problems = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
        # Submitting in chunks keeps the number of pending futures small on million-frame datasets.
        for start in range(0, len(paths), CHUNK):
            problems += [p for p in pool.map(inspect_image, paths[start : start + CHUNK]) if p is not None]
            done = min(start + CHUNK, len(paths))
            if done // log_every > start // log_every or done == len(paths):
                logging.info("decoded %d / %d files, %d problems so far", done, len(paths), len(problems))
    return problems


def report_problems(problems: Sequence[FileProblem]) -> list[str]:
    """Report lines per kind of problem: a count, then the first paths."""
    lines = []
    for kind in ("missing", "empty", "corrupt"):
        of_kind = [p for p in problems if p.kind == kind]
        if of_kind:
            lines.append(f"{len(of_kind)} {kind} file(s):")
            lines += [f"  {p.path}" + (f"  ({p.detail})" if p.detail else "") for p in of_kind[:MAX_LISTED]]
            if len(of_kind) > MAX_LISTED:
                lines.append(f"  ... and {len(of_kind) - MAX_LISTED} more")
    return lines


def evaluation_plan(dataset: ReIDDataset) -> str:
    """Which evaluation training will make of the dataset: retrieval with labels, or what needs none."""
    if dataset.has_evaluation:
        return (f"evaluation: retrieval across cameras (mAP, CMC) of {len(dataset.query)} queries against "
                f"{len(dataset.gallery)} gallery entries")
    local_ids = len({(record.camid, record.pid) for record in dataset.train})
    held = len(hold_out_frames(dataset.train).query)
    return ("evaluation: no query/ and gallery/, so no cross-camera labels: retrieval across cameras cannot be "
            f"measured; training holds out the first and last frames of {held} of the {local_ids} local ids for "
            "intra-camera retrieval and reports the association without labels")


def check(name: str, data_root: str, min_ids_per_camera: int, num_workers: int = 8) -> int:
    """Prints the check of one dataset; returns the exit status (0 = ready for training).

    A folder that is not the dataset at all raises DatasetError (the command prints it in one line).
    """
    dataset = load_dataset(name, data_root)
    print(summarize(dataset, min_ids_per_camera))
    paths = dataset_paths(dataset)
    problems = find_file_problems(paths, num_workers)
    dropped = dropped_cameras(dataset, min_ids_per_camera)
    usable = len(dataset.cameras) - len(dropped)
    lines = report_problems(problems)
    lines.append(f"{len(paths)} files checked, {len(problems)} with problems")
    lines.append(
        f"{usable} of {len(dataset.cameras)} cameras have >= {min_ids_per_camera} training identities"
        + (f"; dropped: {', '.join(dataset.camera_names[camid] for camid in dropped)}" if dropped else "")
    )
    if usable == 0:
        lines.append("no usable camera: lower --min_ids_per_camera or check the training split")
    lines.append(evaluation_plan(dataset))
    print("\n".join(lines))
    return 0 if not problems and usable > 0 else 1


def define_flags() -> None:
    """Defines the checker's flags (only when run as a program, so importing never clashes with the trainer's)."""
    flags.DEFINE_enum("dataset", None, DATASET_NAMES, "Dataset to check.")
    flags.DEFINE_string("data_root", None, "The dataset folder or its parent.")
    flags.DEFINE_integer(
        "min_ids_per_camera", 32, "Cameras with fewer training identities are dropped (P).", lower_bound=1
    )
    flags.DEFINE_integer("num_workers", 8, "Threads decoding images.", lower_bound=1)
    flags.mark_flags_as_required(["dataset", "data_root"])


def main(argv: Sequence[str]) -> int:
    """Runs the check with the command-line flags."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    try:
        return check(values.dataset, values.data_root, values.min_ids_per_camera, values.num_workers)
    except UserError as error:
        sys.exit(f"acan_tf.data.check: error: {error}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
