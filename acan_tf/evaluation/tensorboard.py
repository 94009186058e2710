"""TensorBoard outputs of an evaluation: the analysis PNGs as images, features for the projector."""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence, Union

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from acan_tf.evaluation.plots import subsample_indices
from acan_tf.io import write_text

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METADATA_FILENAME = "metadata.tsv"


def log_png_images(
    writer: Union[str, os.PathLike, tf.summary.SummaryWriter],
    images: Mapping[str, Union[str, os.PathLike, bytes]],
    step: int,
) -> None:
    """Write each PNG (a file path or encoded bytes) as a TensorBoard image under its name."""
    encoded = {name: _read_png(name, image) for name, image in images.items()}
    owns_writer = not isinstance(writer, tf.summary.SummaryWriter)
    if owns_writer:
        writer = tf.summary.create_file_writer(os.fspath(writer))
    try:
        with writer.as_default():
            for name, png in encoded.items():
                # Three channels: the figures are opaque, and RGB is smaller in the event file than RGBA.
                image = tf.io.decode_png(png, channels=3)
                tf.summary.image(name, image[tf.newaxis], step=step)
        writer.flush()
    finally:
        if owns_writer:
            writer.close()


def write_projector(
    logdir: Union[str, os.PathLike],
    features: np.ndarray,
    metadata: Mapping[str, Sequence],
    name: str = "embeddings",
    max_points: int = 10000,
    seed: int = 0,
) -> str:
    """Write features and their metadata (e.g. pid, camid) for TensorBoard's projector; returns the checkpoint.

    One projector per logdir: a second call replaces the first one's config.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"features must be a non-empty (N, dim) array, got shape {features.shape}")
    for column, values in metadata.items():
        if len(values) != len(features):
            raise ValueError(
                f"metadata column {column!r} has {len(values)} values for {len(features)} features"
            )
    # The name becomes a checkpoint key and a Python keyword argument.
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name must be an identifier (letters, digits, _), got {name!r}")
    logdir = os.fspath(logdir)
    os.makedirs(logdir, exist_ok=True)
    keep = subsample_indices(len(features), max_points, seed)

    embedding_config = projector.ProjectorConfig()
    embedding = embedding_config.embeddings.add()
    # tf.train.Checkpoint stores an attribute `name` under this key.
    embedding.tensor_name = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
    if metadata:
        _write_metadata(os.path.join(logdir, METADATA_FILENAME), metadata, keep)
        # Relative, so the logdir can be moved; the projector resolves it against the config.
        embedding.metadata_path = METADATA_FILENAME
    checkpoint = tf.train.Checkpoint(**{name: tf.Variable(features[keep], name=name)})
    # save() also writes the `checkpoint` index the projector uses to find the latest checkpoint.
    checkpoint_path = checkpoint.save(os.path.join(logdir, f"{name}.ckpt"))
    projector.visualize_embeddings(logdir, embedding_config)
    return checkpoint_path


def _read_png(name: str, image: Union[str, os.PathLike, bytes]) -> bytes:
    if isinstance(image, bytes):
        png = image
    else:
        if not os.path.isfile(image):
            raise FileNotFoundError(f"image {name!r}: no PNG file at {os.fspath(image)!r}")
        with open(image, "rb") as file:
            png = file.read()
    if not png.startswith(_PNG_SIGNATURE):
        raise ValueError(f"image {name!r} is not a PNG (missing the PNG signature)")
    return png


def _write_metadata(path: str, metadata: Mapping[str, Sequence], keep: np.ndarray) -> None:
    columns = {column: [str(values[index]) for index in keep] for column, values in metadata.items()}
    for column, cells in columns.items():
        if any(re.search(r"[\t\n\r]", cell) for cell in [column, *cells]):
            raise ValueError(f"metadata column {column!r} contains a tab or newline, which breaks the TSV")
    rows = list(zip(*columns.values()))
    # The projector reads a header only when there are several columns; one column has none.
    if len(columns) > 1:
        rows.insert(0, tuple(columns))
    write_text(path, "".join("\t".join(row) + "\n" for row in rows))
