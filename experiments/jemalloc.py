"""Start a training command again under jemalloc, where the system has it.

``experiments.train`` and the reproductions (``experiments/reproductions/command.py``) do.

A run without a compilation cache compiles its programs in the process. Under glibc's malloc
that leaves the heap in thousands of small free pieces, and every training step after it runs
9-18% slower than the same step in a process that read its programs from the cache (measured,
with the jemalloc runs, in docs/benchmarks.md: "Why a cold run's steps are slower"). Under
jemalloc keeping the memory it frees (:data:`KEEP_FREED`), both run equally fast.

A malloc is chosen before the interpreter starts, so :func:`restart_under_jemalloc` runs the
same command again in the same process (``os.execv``: the same process id and arguments, the
environment plus ``LD_PRELOAD`` and ``MALLOC_CONF``). Called before the heavy imports, as
``experiments.train`` does, the restart costs what starting Python costs, about 0.1 s (the
reproductions, whose runs take minutes, import JAX twice). ``SEQJAX_MALLOC`` chooses:

- ``jemalloc`` (the default): jemalloc where one of :data:`SEARCHED` has it, else the running
  malloc. Debian and Ubuntu ship it as ``libjemalloc2``, Fedora and conda-forge as ``jemalloc``;
- ``system``: never restart;
- a path: that jemalloc library.

A process started with an ``LD_PRELOAD`` (another malloc, a sanitizer, a profiler, valgrind's
tools, or this module's own restart) runs as it was started. A ``MALLOC_CONF`` of the user's
comes after :data:`KEEP_FREED`, so its settings win.
"""

import os
import re
import sys

LIBRARY = "libjemalloc.so.2"
SEARCHED = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
            "/usr/local/lib", os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib"))
KEEP_FREED = "dirty_decay_ms:-1,muzzy_decay_ms:-1"  # never give freed pages back to the OS


def library_to_preload(environ, platform=sys.platform, searched=SEARCHED):
    """The jemalloc library to restart under, or None to keep the running malloc.

    Raises ValueError, naming the fix, when ``SEQJAX_MALLOC`` names no usable library.
    """
    choice = environ.get("SEQJAX_MALLOC", "jemalloc")
    if choice not in ("jemalloc", "system"):
        path = os.path.abspath(choice)
        if not os.path.isfile(path) or any(c in path for c in " :"):  # LD_PRELOAD splits there
            raise ValueError(f"SEQJAX_MALLOC={choice!r} is not a file whose path has no space or "
                             f"colon: give such a path of {LIBRARY}, 'jemalloc' or 'system'")
        choice = path
    if choice == "system" or platform != "linux" or environ.get("LD_PRELOAD", "").strip():
        return None
    if choice != "jemalloc":
        return choice
    return next((path for path in (os.path.join(folder, LIBRARY) for folder in searched)
                 if os.path.isfile(path)), None)


def restart_environment(environ, library):
    """The variables that make a restarted process run under ``library``, keeping freed memory."""
    user_settings = environ.get("MALLOC_CONF")
    return {"LD_PRELOAD": library,
            "MALLOC_CONF": f"{KEEP_FREED},{user_settings}" if user_settings else KEEP_FREED}


def restart_under_jemalloc(program):
    """Run this command again with jemalloc preloaded (see the module's docstring); returns
    only where it keeps the running malloc. ``program`` names the command in errors."""
    try:
        library = library_to_preload(os.environ)
    except ValueError as error:
        raise SystemExit(f"{program}: error: {error}") from None
    if library is None or not sys.executable:
        return
    os.environ.update(restart_environment(os.environ, library))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, sys.orig_argv)


def running_malloc():
    """The malloc library mapped into this process (jemalloc, tcmalloc or mimalloc), else
    ``"system"``; ``"system"`` too where there is no ``/proc``."""
    try:
        with open("/proc/self/maps") as maps:
            mapped = maps.read()
    except OSError:
        return "system"
    return next((name for name in ("jemalloc", "tcmalloc", "mimalloc") if f"lib{name}" in mapped),
                "system")


def printed_malloc(output):
    """The malloc that a ``malloc: NAME`` line of the training command's output names, or None."""
    match = re.search(r"^malloc: (\S+)$", output, re.M)
    return match[1] if match else None
