"""tf.data input: decode, resize, Re-ID augmentation, and the per-step streams of ACAN.

Each training step is a pure function of (seed, step): `TrainingBatches.indices(step)` draws the
P×K triplet batch and the camera-balanced batch with a NumPy RNG seeded by (seed, step), and the
augmentation of every frame is seeded by (seed, its position in the stream). A resumed run therefore
sees exactly the batches an uninterrupted one would. With cross-camera pseudo-identities (the association
stage), a third batch of P pseudo-identities × K items is drawn from its own RNG seeded by (seed, step, 1),
so the first two batches are those of the same run without the stage.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Iterator, Sequence

import numpy as np
import tensorflow as tf

from acan_tf.data.records import Record, TrackletRecord, frame_paths
from acan_tf.data.sampling import CameraBatchSampler, PseudoIdentitySampler, TripletBatchSampler, choose_frames

# Random erasing (Zhong et al., AAAI 2020) with its usual ranges: erased area and aspect ratio.
_ERASE_AREA = (0.02, 0.4)
_ERASE_ASPECT = (0.3, 1 / 0.3)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Re-ID training augmentation: horizontal flip, zero-pad and random crop, random erasing."""

    flip: bool = True
    pad: int = 10
    random_erasing: float = 0.5


# What read_image raises for a file that is missing or not an image.
UNREADABLE = (tf.errors.InvalidArgumentError, tf.errors.NotFoundError)


def decode_image(path: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Reads an image file (JPEG, PNG, BMP or GIF; grey or colour) as float32 RGB [H, W, 3] in [0, 255]."""
    return resize_image(read_image(path), height, width)


def read_image(path: tf.Tensor) -> tf.Tensor:
    """An image file's pixels at its own size, uint8 RGB [h, w, 3] (the decoding step of `decode_image`)."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def resize_image(image: tf.Tensor, height: int, width: int) -> tf.Tensor:
    """Decoded pixels resized as training resizes them: float32 RGB [H, W, 3] in [0, 255]."""
    return tf.clip_by_value(tf.image.resize(tf.cast(image, tf.float32), (height, width)), 0.0, 255.0)


def augment(image: tf.Tensor, seed: tf.Tensor, augmentation: Augmentation) -> tf.Tensor:
    """Applies `augmentation` to one [H, W, 3] image with stateless randomness drawn from `seed` ([2] int)."""
    height, width = image.shape[0], image.shape[1]
    seeds = tf.random.experimental.stateless_split(seed, 8)
    if augmentation.flip:
        image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    if augmentation.pad:
        pad = augmentation.pad
        image = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])
        image = tf.image.stateless_random_crop(image, (height, width, 3), seeds[1])
    if augmentation.random_erasing:
        image = _random_erasing(image, seeds[2:], augmentation.random_erasing)
    return image


def _random_erasing(image: tf.Tensor, seeds: tf.Tensor, probability: float) -> tf.Tensor:
    height, width = image.shape[0], image.shape[1]
    area = tf.random.stateless_uniform([], seeds[0], *_ERASE_AREA) * height * width
    log_aspect = tf.random.stateless_uniform([], seeds[1], np.log(_ERASE_ASPECT[0]), np.log(_ERASE_ASPECT[1]))
    aspect = tf.exp(log_aspect)
    erase_h = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area * aspect)), tf.int32), 1, height)
    erase_w = tf.clip_by_value(tf.cast(tf.round(tf.sqrt(area / aspect)), tf.int32), 1, width)
    top = tf.random.stateless_uniform([], seeds[2], 0, height - erase_h + 1, dtype=tf.int32)
    left = tf.random.stateless_uniform([], seeds[3], 0, width - erase_w + 1, dtype=tf.int32)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= top) & (rows < top + erase_h) & (cols >= left) & (cols < left + erase_w)
    apply = tf.random.stateless_uniform([], seeds[4]) < probability
    mask = tf.logical_and(inside, apply)[:, :, None]
    noise = tf.random.stateless_uniform(tf.shape(image), seeds[5], 0.0, 255.0)
    return tf.where(mask, noise, image)


class TrainingBatches:
    """The per-step item indices of both streams, and their frames, as a pure function of the step."""

    def __init__(
        self,
        records: Sequence[Record],
        local_ids: Sequence[int],
        camids: Sequence[int],
        num_identities: int,
        num_instances: int,
        camera_batch_size: int,
        frames_per_tracklet: int,
        seed: int,
        camera_sampling: str = "quota",
        camera_names: Sequence[str] | None = None,
    ):
        # `camids` are D's classes and `camera_names` name them in class order (messages only).
        self.local_ids = np.asarray(local_ids, dtype=np.int32)
        self.camids = np.asarray(camids, dtype=np.int32)
        self.is_video = bool(records) and isinstance(records[0], TrackletRecord)
        self.frames_per_item = frames_per_tracklet if self.is_video else 1
        paths: list[str] = []
        self.first_frame = np.zeros(len(records), dtype=np.int64)
        self.num_frames = np.zeros(len(records), dtype=np.int64)
        for index, record in enumerate(records):
            frames = frame_paths(record)
            self.first_frame[index], self.num_frames[index] = len(paths), len(frames)
            paths.extend(frames)
        self.paths = np.asarray(paths)
        self.triplets = TripletBatchSampler(self.camids, self.local_ids, num_identities, num_instances, camera_names)
        self.cameras = CameraBatchSampler(self.camids, camera_batch_size, camera_sampling)
        self.seed = seed
        self.triplet_size = num_identities * num_instances
        self.pseudo: PseudoIdentitySampler | None = None
        self.pseudo_ids = np.full(len(records), -1, dtype=np.int32)
        self.pseudo_weights: np.ndarray | None = None

    def with_pseudo_ids(
        self, pseudo_ids: Sequence[int] | None, weights: Sequence[float] | None = None
    ) -> "TrainingBatches":
        """These batches plus the third batch over `pseudo_ids` (per item, -1: none), its items carrying `weights`
        (per item; None: no weights stream); None: without it."""
        batches = copy.copy(self)
        batches.pseudo_weights = None if pseudo_ids is None or weights is None else np.asarray(weights, np.float32)
        if pseudo_ids is None:
            batches.pseudo, batches.pseudo_ids = None, np.full(len(self.camids), -1, dtype=np.int32)
        else:
            batches.pseudo_ids = np.asarray(pseudo_ids, dtype=np.int32)
            batches.pseudo = PseudoIdentitySampler(batches.pseudo_ids, self.camids, self.triplets.num_identities,
                                                   self.triplets.num_instances)
        return batches

    @property
    def pseudo_size(self) -> int:
        """Items of the pseudo-identity batch in one step (0 without it)."""
        return self.pseudo.batch_size if self.pseudo else 0

    @property
    def items_per_step(self) -> int:
        """Triplet items plus camera-balanced items (plus pseudo-identity items) in one step."""
        return self.triplet_size + self.cameras.batch_size + self.pseudo_size

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(item indices [triplet, camera, pseudo-identity batch], frame indices [items × T]) of step `step`."""
        rng = np.random.default_rng((self.seed, step))
        parts = [self.triplets.next(rng), self.cameras.next(rng)]
        if self.pseudo:
            parts.append(self.pseudo.next(np.random.default_rng((self.seed, step, 1))))
        items = np.concatenate(parts)
        if not self.is_video:
            return items, self.first_frame[items]
        frames = [self.first_frame[i] + choose_frames(rng, self.num_frames[i], self.frames_per_item) for i in items]
        return items, np.concatenate(frames)

    def frame_stream(self, first_step: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
        """Per step: frame paths, and the id (camera-local; pseudo-identity in the third batch) and camid per frame;
        with pseudo weights, also each frame's weight (1 outside the third batch)."""
        step = first_step
        while True:
            items, frames = self.indices(step)
            ids = self.local_ids[items]
            if self.pseudo_size:
                ids[-self.pseudo_size:] = self.pseudo_ids[items[-self.pseudo_size:]]
            streams = (self.paths[frames], np.repeat(ids, self.frames_per_item),
                       np.repeat(self.camids[items], self.frames_per_item))
            if self.pseudo_weights is not None:
                weights = np.ones(len(items), dtype=np.float32)
                weights[-self.pseudo_size:] = self.pseudo_weights[items[-self.pseudo_size:]]
                streams += (np.repeat(weights, self.frames_per_item),)
            yield streams
            step += 1


def training_dataset(
    batches: TrainingBatches,
    image_height: int,
    image_width: int,
    augmentation: Augmentation,
    first_step: int = 0,
) -> tf.data.Dataset:
    """The infinite dataset of ACAN training batches (the dict `ACAN.train_step` takes)."""
    frames_per_step = batches.items_per_step * batches.frames_per_item
    signature = (tf.TensorSpec([frames_per_step], tf.string),) + (tf.TensorSpec([frames_per_step], tf.int32),) * 2
    if batches.pseudo_weights is not None:
        signature += (tf.TensorSpec([frames_per_step], tf.float32),)
    steps = tf.data.Dataset.from_generator(lambda: batches.frame_stream(first_step), output_signature=signature)
    frames = steps.unbatch().enumerate(start=first_step * frames_per_step)

    def load(position, frame):
        path, *labels = frame
        image = decode_image(path, image_height, image_width)
        seed = tf.stack([tf.cast(batches.seed, tf.int64), position])
        return augment(image, seed, augmentation), *labels

    frames = frames.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return frames.batch(frames_per_step, drop_remainder=True).map(
        lambda images, ids, camids, *weights: _split_streams(images, ids, camids, batches, *weights)
    ).prefetch(tf.data.AUTOTUNE)


def _split_streams(images: tf.Tensor, ids: tf.Tensor, camids: tf.Tensor, batches: TrainingBatches,
                   weights: tf.Tensor | None = None) -> dict:
    """Regroups a step's frames into items ([N, T, ...] for tracklets) and splits triplet from camera batch (and
    pseudo-identity batch, with its items' weights when there are any)."""
    t = batches.frames_per_item
    if batches.is_video:
        images = tf.reshape(images, [-1, t, *images.shape[1:]])
    ids, camids = ids[::t], camids[::t]
    n, m = batches.triplet_size, batches.triplet_size + batches.cameras.batch_size
    streams = {
        "triplet_images": images[:n],
        "triplet_ids": ids[:n],
        "triplet_camids": camids[:n],
        "camera_images": images[n:m],
        "camera_camids": camids[n:m],
    }
    if batches.pseudo_size:
        streams.update(pseudo_images=images[m:], pseudo_ids=ids[m:], pseudo_camids=camids[m:])
    if weights is not None:
        streams.update(pseudo_weights=weights[::t][m:])
    return streams


def inference_dataset(
    records: Sequence[Record], image_height: int, image_width: int, batch_size: int
) -> tf.data.Dataset:
    """Batches of un-augmented frames of `records` in order (every frame of every tracklet), [≤batch, H, W, 3]."""
    paths = [path for record in records for path in frame_paths(record)]
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(paths, dtype=tf.string))
    dataset = dataset.map(lambda p: decode_image(p, image_height, image_width), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def find_unreadable(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(path, reason) for every file that the training decoder cannot read."""
    bad = []
    for path in paths:
        try:
            read_image(path)
        except UNREADABLE as error:
            bad.append((path, unreadable_reason(error)))
    return bad


def unreadable_reason(error: tf.errors.OpError) -> str:
    """Why the decoder could not read a file, in one line."""
    return error.message.splitlines()[0] if error.message else type(error).__name__
