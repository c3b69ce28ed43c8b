"""Shared test setup: small, deterministic, CPU-friendly."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import jax
import pytest

# Tests compile many tiny programs, often the same ones: optimizing them costs more than it
# saves, and one on-disk compilation cache serves each test process (each xdist worker), the
# command-line and notebook subprocesses it starts included (they inherit these variables).
# XLA:CPU's older fused-kernel emitter compiles the same programs in about 40% less time
# (measured on this suite's training steps). One LLVM module per program, instead of several
# compiled side by side, takes about 30% less CPU time (nanogpt_cpu.py's step and forward pass:
# 1.0-1.1 s instead of 1.5 s); the two xdist workers already keep both cores busy, so the split
# bought no wall time (test_transformer_lm.py and test_generation.py on 2 workers: 69-75 s with
# one module, 76-77 s without). The library and benchmarks keep XLA's defaults.
FAST_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false",
                      "--xla_cpu_parallel_codegen_split_count=1")


def _fast_compile_flags():
    """Those of :data:`FAST_COMPILE_FLAGS` this jaxlib's XLA knows (XLA aborts on an unknown
    flag). Probed once per test session, in subprocesses; the xdist workers and the tests' own
    subprocesses inherit the answer."""
    if "SEQJAX_TESTS_FAST_COMPILE_FLAGS" not in os.environ:
        known = [flag for flag in FAST_COMPILE_FLAGS if subprocess.run(
            [sys.executable, "-c", "import jax; jax.devices()"], capture_output=True,
            env={**os.environ, "XLA_FLAGS": flag, "JAX_PLATFORMS": "cpu"},
        ).returncode == 0]
        os.environ["SEQJAX_TESTS_FAST_COMPILE_FLAGS"] = " ".join(known)
    return os.environ["SEQJAX_TESTS_FAST_COMPILE_FLAGS"]


_COMPILATION_CACHE = tempfile.mkdtemp(prefix="seqjax-tests-compilation-cache-")
atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
# Token files and tokenizers of file corpora (seqjax.data.token_cache) go to a folder of this
# test session, not to the user's ~/.cache/seqjax.
_TOKEN_CACHE = tempfile.mkdtemp(prefix="seqjax-tests-token-cache-")
atexit.register(shutil.rmtree, _TOKEN_CACHE, ignore_errors=True)
os.environ["SEQJAX_CACHE_DIR"] = _TOKEN_CACHE
_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")
os.environ.update({
    "XLA_FLAGS": _XLA_FLAGS if FAST_COMPILE_FLAGS[0] in _XLA_FLAGS
    else f"{_XLA_FLAGS} {_fast_compile_flags()}".strip(),
    "JAX_DISABLE_MOST_OPTIMIZATIONS": "true",
    "JAX_COMPILATION_CACHE_DIR": _COMPILATION_CACHE,
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
})
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_compilation_cache_dir", _COMPILATION_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


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
