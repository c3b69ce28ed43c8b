"""JAX's on-disk compilation cache for the command-line tools: a rerun skips compilation.

Rerunning a command (resuming a run, sampling from it, training the same config again) would
otherwise compile the same XLA programs again. Measured with 20-step runs on a 2-core AMD EPYC,
without the cache -> a rerun with it: ``quickstart.py`` 15.1 s -> 10.7-11.0 s, ``nanogpt_cpu.py``
24.8-25.7 s -> 15.6-15.7 s; on an NVIDIA H200 one training step alone compiles in 23-55 s. JAX keys
every entry by the program, the JAX version, the backend and the compiler flags, so a changed
model, library or machine compiles afresh; programs that took at least 0.2 s to compile are
stored (:data:`MIN_COMPILE_SECONDS`). JAX never evicts entries from the folder (1.2 MB after
the runs above); delete it to clear it. On a GPU, JAX also keeps XLA's autotuning results
there, fusion by fusion (its default ``jax_persistent_cache_enable_xla_caches``), so a changed
model whose matrix products keep their shapes should skip most of the autotuning that dominates
a GPU compile (not yet measured: ``experiments/benchmarks/gpu_session.sh``).

Every tool that imports this module gets the flag ``--compilation_cache`` (default
``~/.cache/seqjax/compilation``; empty turns the cache off). ``JAX_COMPILATION_CACHE_DIR``, when
set, wins, as JAX's own setting.
"""

import os

import jax
from absl import flags, logging

DEFAULT_DIR = "~/.cache/seqjax/compilation"
# Programs that compiled for at least this long are stored (JAX's default is 1 s). JAX looks
# every program up in the cache anyway, so storing a short one costs one small file, and a
# rerun then skips, for instance, the evaluation program (0.5 s for nanogpt_cpu.py).
MIN_COMPILE_SECONDS = 0.2

flags.DEFINE_string(
    "compilation_cache", DEFAULT_DIR,
    "Folder of JAX's on-disk compilation cache, so that a rerun skips compiling; empty turns it "
    "off. JAX_COMPILATION_CACHE_DIR, when set, is used instead.",
)


def enable_compilation_cache(directory):
    """Store compiled programs in ``directory`` unless JAX already has a cache folder.

    Returns the folder in use, or None when there is none (``directory`` empty, or not
    creatable: then a warning, and the run goes on without a cache). Also sets JAX's shortest
    compile time worth storing to :data:`MIN_COMPILE_SECONDS`, unless
    ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` is set.
    """
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    configured = jax.config.jax_compilation_cache_dir
    if configured:  # JAX_COMPILATION_CACHE_DIR, or set by the caller
        return configured
    if not directory:
        return None
    directory = os.path.expanduser(directory)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        logging.warning("running without a compilation cache: cannot create %s (%s)", directory,
                        error.strerror or error)
        return None
    jax.config.update("jax_compilation_cache_dir", directory)
    return directory
