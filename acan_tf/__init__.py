"""acan-tf: Adversarial Camera Alignment Network for person Re-ID with intra-camera labels, in TensorFlow/Keras."""

import os

# Set before TensorFlow is imported, and only where the user has not chosen: oneDNN kernels roughly
# double CPU throughput on the AMD machines we measured (TensorFlow leaves them off there), and
# TensorFlow's INFO chatter hides the progress bar.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
