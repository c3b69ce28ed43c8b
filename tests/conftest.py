"""Shared test setup: small, deterministic, CPU-friendly."""

import os

import jax
import pytest

# Tests compile many tiny programs; optimizing them costs more than it saves.
jax.config.update("jax_disable_most_optimizations", True)


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


def tiny_shakespeare_path():
    """Path of the corpus under $SEQJAX_DATA_DIR, or None when it is not there."""
    data_dir = os.environ.get("SEQJAX_DATA_DIR")
    if not data_dir:
        return None
    path = os.path.join(data_dir, "tinyshakespeare.txt")
    return path if os.path.exists(path) else None
