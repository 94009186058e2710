"""Test-wide settings: quiet TensorFlow, and keep tests on the CPU with few threads."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest  # noqa: E402  (after the environment: importing TensorFlow later must see it)

from tests import tiny_runs  # noqa: E402


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> str:
    """The tiny synthetic tree of tests.tiny_runs (3 cameras, 12 + 6 identities, 32x16), made once; never modified."""
    return tiny_runs.make_tree(str(tmp_path_factory.mktemp("synthetic") / "tree"))
