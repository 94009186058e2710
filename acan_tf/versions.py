"""Versions of the packages a result depends on, recorded in report.json and in model cards."""

from __future__ import annotations

import platform
from types import ModuleType

import acan_tf

import keras
import numpy as np
import tensorflow as tf


def package_versions(*modules: ModuleType) -> dict[str, str]:
    """The versions of acan_tf, Python, TensorFlow, Keras and NumPy, and of `modules`."""
    versions = {
        "acan_tf": acan_tf.__version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
    }
    versions.update({module.__name__: module.__version__ for module in modules})
    return versions
