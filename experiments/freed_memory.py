"""Keep the memory XLA:CPU frees for its next use: one malloc setting for a whole process.

The command-line tools that train or time (train, task_table, the reproductions, the benchmarks)
call :func:`keep_freed_memory` first thing.
"""

import ctypes
import ctypes.util
import platform
import warnings

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def keep_freed_memory():
    """Make glibc's malloc reuse freed memory instead of returning it to the OS.

    XLA:CPU allocates its large temporaries afresh on every call; by default glibc serves
    big blocks (and any block from a worker thread's arena) with ``mmap`` and gives them back
    on free, so every training step page-faults its buffers in again (measured: ~24,000 faults,
    tens of ms per LSTM step). One malloc arena, a high mmap threshold and no trimming keep
    the pages mapped (the process's memory then stays at its peak). Affects every library in
    the process alike; call before JAX or PyTorch start their threads: XLA's threads keep the
    malloc arenas they started with, so a call after JAX's backend started changes nothing for
    them (measured on a GPT training step: ~200,000 page faults a step either way). Returns
    whether the settings were accepted in time (False off glibc, and after JAX started, with a
    warning).
    """
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    libc = ctypes.CDLL(name)
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1))
    accepted = all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    if accepted and _jax_started():
        warnings.warn("keep_freed_memory() ran after JAX started its backend, so XLA's threads "
                      "keep their own malloc arenas: call it before any JAX computation",
                      RuntimeWarning, stacklevel=2)
        return False
    return accepted


def _jax_started():
    """Whether JAX has started a backend (and with it XLA's threads) in this process."""
    try:
        from jax._src import xla_bridge
    except ImportError:  # no JAX (or a JAX without this module): nothing has started
        return False
    return bool(getattr(xla_bridge, "backends_are_initialized", lambda: False)())
