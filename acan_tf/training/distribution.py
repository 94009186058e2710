"""tf.distribute for training: the strategy of --strategy, which process writes the run, and each replica's share
of a step.

Each of the N replicas trains on a contiguous slice of the global batch and mines its triplets locally (losses
are not reduced globally): the P×K triplet batch is grouped identity by identity, so a slice is P/N whole
identities of the step's camera, and batch-hard mining inside it needs nothing from other replicas. The
camera-balanced batch is interleaved camera by camera, so a slice holds every camera once each camera has at
least N images in it. Slices are equal in size, so the mean of the replicas' per-item means (the camera
losses) is the global batch's mean; only the triplet mining and batch-norm statistics are per replica.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from acan_tf.errors import UserError


class DistributionError(UserError, ValueError):
    """The strategy cannot be built or cannot split the batches; the message names the flag or variable."""


def build_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy of --strategy; call it before any other TensorFlow op (MultiWorkerMirroredStrategy requires it)."""
    if name == "multi_worker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        # Logical CPUs stand in for GPUs on a machine without any (tests split one CPU in two).
        return tf.distribute.MirroredStrategy([device.name for device in gpus or tf.config.list_logical_devices("CPU")])
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    return tf.distribute.get_strategy()


def check_tf_config(value: str | None) -> None:
    """Raises a DistributionError unless `value` is a TF_CONFIG naming the cluster and this process's task in it."""
    help_text = ('e.g. {"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}} '
                 "(see BUILD.md)")
    if not value:
        raise DistributionError(f"--strategy=multi_worker needs the TF_CONFIG environment variable, {help_text}")
    try:
        config = json.loads(value)
        task, cluster = config["task"], config["cluster"]
        hosts = cluster[task["type"]]
        ok = isinstance(hosts, list) and 0 <= int(task["index"]) < len(hosts)
    except (ValueError, KeyError, TypeError) as error:
        raise DistributionError(f"TF_CONFIG={value!r} cannot be read ({error!r}); expected {help_text}") from error
    if not ok:
        raise DistributionError(f"TF_CONFIG={value!r}: task index is not a position in cluster[{task['type']!r}]; "
                                f"expected {help_text}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, except on the non-chief workers of a multi-worker run)."""
    return strategy.extended.should_checkpoint


def broadcast_from_chief(strategy: tf.distribute.Strategy, values: np.ndarray) -> np.ndarray:
    """The chief's `values` on every worker of a multi-worker run (one all-reduce); `values` itself otherwise."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return values  # every replica lives in this process
    chief = is_chief(strategy)

    def contribution(context: tf.distribute.ValueContext) -> tf.Tensor:
        first = chief and context.replica_id_in_sync_group == 0
        return tf.constant(values if first else np.zeros_like(values), dtype=tf.float64)

    total = strategy.reduce(tf.distribute.ReduceOp.SUM,
                            strategy.experimental_distribute_values_from_function(contribution), axis=None)
    total = total.numpy()
    # Integer ids went through float64 exactly; rounding only undoes the all-reduce's representation.
    return (np.rint(total) if np.issubdtype(values.dtype, np.integer) else total).astype(values.dtype)


def check_replica_split(num_identities: int, images_per_camera: int, num_cameras: int, num_replicas: int) -> None:
    """Raises a DistributionError unless every replica can take whole identity groups and every camera."""
    if num_identities % num_replicas:
        raise DistributionError(
            f"--num_identities={num_identities} is not a multiple of the {num_replicas} replicas: each replica "
            f"trains on whole identity groups of the triplet batch"
        )
    camera_batch = images_per_camera * num_cameras
    if camera_batch % num_replicas or images_per_camera < num_replicas:
        raise DistributionError(
            f"--camera_batch_size gives {images_per_camera} images of each of the {num_cameras} cameras; over "
            f"{num_replicas} replicas it needs a multiple of {num_replicas} images in all and at least {num_replicas} "
            f"per camera, so that every replica gets an equal share holding every camera"
        )


def replica_slices(batches: tf.data.Dataset, num_replicas: int, first: int, count: int) -> tf.data.Dataset:
    """Replicas `first`..`first + count - 1`'s slices of each global batch, one element per replica, in order."""

    def split(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {key: tf.stack(tf.split(value, num_replicas)[first : first + count]) for key, value in batch.items()}

    return batches.map(split).unbatch()


def distribute_batches(
    strategy: tf.distribute.Strategy, make_batches: Callable[[], tf.data.Dataset]
) -> tf.distribute.DistributedDataset:
    """The global batches of `make_batches()` (one per step) split across the strategy's replicas.

    Every worker builds the same global stream (a step is a function of the seed and the step) and keeps its
    replicas' slices, so no worker needs another's data; each worker's replicas take consecutive elements.
    """

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        return replica_slices(make_batches(), context.num_replicas_in_sync, context.input_pipeline_id * local, local)

    return strategy.distribute_datasets_from_function(per_worker)
