"""Installs acan-tf: `pip install -e .` (CPU TensorFlow) or `ACAN_TF_GPU=1 pip install -e .` (CUDA build)."""

import os

from setuptools import find_packages, setup

TENSORFLOW = "tensorflow[and-cuda]~=2.21.0" if os.environ.get("ACAN_TF_GPU") == "1" else "tensorflow-cpu~=2.21.0"

VIDEO = ["opencv-python-headless>=4.8,<5"]

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "requirements.txt")) as handle:
    REQUIREMENTS = [line.strip() for line in handle if line.strip() and not line.startswith("#")]

setup(
    name="acan-tf",
    version="0.1.0",
    description="Adversarial Camera Alignment Network for person re-identification with intra-camera labels "
                "(TensorFlow/Keras)",
    packages=find_packages(include=["acan_tf", "acan_tf.*"]),
    python_requires=">=3.10",
    install_requires=[TENSORFLOW, *REQUIREMENTS],
    # Video input of `python -m acan_tf.data.ingest` (BUILD.md says why OpenCV); the tests read videos too.
    extras_require={"video": VIDEO, "test": ["pytest>=8", "ruff>=0.6", *VIDEO]},
)
