"""What every benchmark records beside its figures: the software and the machine's load while it ran."""

from __future__ import annotations

import os
import platform

import numpy as np


def machine(load_before: tuple[float, float, float]) -> dict:
    """NumPy and Python versions, the core count, and the load averages before (given) and after (now) the run."""
    return {
        "numpy": np.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
