"""TF Serving's model folders (OUT/NAME/VERSION): picking a version, refusing to overwrite, staging then renaming."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from typing import Iterator

from acan_tf.errors import UserError


class VersionError(UserError, ValueError):
    """A model name or version is unusable, or the version folder already exists; the message names it."""


def check_model_name(name: str) -> None:
    """Accepts a model name that is a plain folder name TF Serving can serve."""
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name:
        raise VersionError(f"--model_name={name!r}: expected a plain folder name, not starting with '.', without '/'")


def existing_versions(model_dir: str) -> dict[int, str]:
    """Version number → folder name of the versions in `model_dir` (TF Serving reads any all-digit name as one)."""
    if not os.path.isdir(model_dir):
        return {}
    return {int(name): name for name in os.listdir(model_dir) if name.isascii() and name.isdigit()}


def resolve_version(model_dir: str, version: int | None) -> int:
    """`version`, or one more than the highest present (1 for a new model); an existing version is an error."""
    present = existing_versions(model_dir)
    if version is None:
        return max(present, default=0) + 1
    if version < 1:
        raise VersionError(f"--version={version}: expected a positive integer")
    if version in present:
        raise VersionError(
            f"{os.path.join(model_dir, present[version])} already exists: exported models are never overwritten; "
            f"choose another --version or leave it out to use {max(present) + 1}"
        )
    return version


@contextlib.contextmanager
def staged_version(model_dir: str, version: int) -> Iterator[str]:
    """Yields an empty hidden folder inside `model_dir`, renamed to `model_dir/version` only if the block succeeds."""
    # TF Serving loads only integer-named folders, so it never sees a model being written; on failure the
    # staging folder, and the folders this call created, are removed.
    created = [path for path in (os.path.dirname(os.path.abspath(model_dir)), os.path.abspath(model_dir))
               if not os.path.isdir(path)]
    os.makedirs(model_dir, exist_ok=True)
    # os.mkdir, not tempfile.mkdtemp: the folder becomes the version folder and must get the usual permissions
    # (mkdtemp's 0700 would hide the model from a TF Serving running as another user).
    staging = os.path.join(model_dir, f".staging-{version}-{uuid.uuid4().hex[:8]}")
    os.mkdir(staging)
    try:
        yield staging
        resolve_version(model_dir, version)  # another export may have taken the version meanwhile
        os.rename(staging, os.path.join(model_dir, str(version)))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only if still empty
        raise
