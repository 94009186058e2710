"""Run files: written so that a crash never leaves a half-written one (a temporary sibling, then rename); digests."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path in `path`'s folder that replaces `path` only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, extension = os.path.splitext(os.path.basename(path))
    if base.endswith(".weights"):  # Keras insists on the ".weights.h5" suffix
        base, extension = base[: -len(".weights")], ".weights" + extension
    # A unique name that the writer creates itself, so the file gets the umask's usual permissions.
    temporary = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.tmp{extension}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def sha256(path: str) -> str:
    """The hex SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: str, value: Any) -> None:
    """Writes `value` as indented JSON, atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True, default=_to_builtin)
        handle.write("\n")


def write_text(path: str, text: str) -> None:
    """Writes `text`, atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)


def _to_builtin(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
