"""Keep the memory XLA:CPU frees for its next use: one malloc setting for a whole process.

The training command and the benchmarks call :func:`keep_freed_memory` first thing.
"""

import ctypes
import ctypes.util
import platform

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8


def keep_freed_memory():
    """Make glibc's malloc reuse freed memory instead of returning it to the OS.

    XLA:CPU allocates its large temporaries afresh on every call; by default glibc serves
    big blocks (and any block from a worker thread's arena) with ``mmap`` and gives them back
    on free, so every training step page-faults its buffers in again (measured: ~24,000 faults,
    tens of ms per LSTM step). One malloc arena, a high mmap threshold and no trimming keep
    the pages mapped (the process's memory then stays at its peak). Affects every library in
    the process alike; call before JAX or PyTorch start their threads. Returns whether the
    settings were accepted (False off glibc).
    """
    name = ctypes.util.find_library("c")
    if platform.system() != "Linux" or not name:
        return False
    libc = ctypes.CDLL(name)
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 1 << 30), (_M_TRIM_THRESHOLD, 2**31 - 1))
    return all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
