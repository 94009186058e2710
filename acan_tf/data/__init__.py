"""Datasets as plain records, samplers and the tf.data pipeline."""

from acan_tf.data.datasets import DATASET_NAMES, DatasetError, load_dataset, load_existing_dataset, load_trained_dataset

__all__ = ["DATASET_NAMES", "DatasetError", "load_dataset", "load_existing_dataset", "load_trained_dataset"]
