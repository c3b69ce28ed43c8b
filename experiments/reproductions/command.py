"""The shell every reproduction shares: flags, the report (JSON), and the figure (PNG).

A reproduction module defines ``BUDGETS`` (name -> settings dict), ``CLAIM``,
``run(workdir, settings) -> results`` (JSON-ready) and ``plot(results) -> figure``;
``main(module)`` parses ``--workdir`` and ``--budget``, times the run, and writes
``WORKDIR/NAME.json`` and ``WORKDIR/NAME.png``. The figure is drawn from the JSON alone, so
``python -m experiments.reproductions.replot REPORT.json`` redraws a committed figure.
"""

import json
import os
import sys
import time
from pathlib import Path

from absl import app, flags, logging

from experiments.benchmarks.environment import describe_environment
from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from experiments.freed_memory import keep_freed_memory
from experiments.jemalloc import restart_under_jemalloc
from seqjax.errors import ConfigError


def define_flags():
    """``--workdir`` and ``--budget``, defined by the command line alone (another tool that a
    test imports in the same process may define its own ``--workdir``)."""
    flags.DEFINE_string("workdir", None, "Folder of the runs, the JSON report and the figure.")
    flags.DEFINE_enum("budget", "cpu", ["tiny", "cpu", "gpu"],
                      "tiny: seconds (tests); cpu: minutes on 2 CPU cores; gpu: the full runs.")
    flags.mark_flag_as_required("workdir")


def write_report(path, content):
    """Write ``content`` as indented JSON (through a temporary file, so a reader never sees half)."""
    temporary = Path(f"{path}.tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)


def save_figure(figure, path):
    """Write a matplotlib ``figure`` as a PNG and free it."""
    figure.savefig(path, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)


def module_name(module):
    """``experiments.reproductions.adding`` -> ``adding`` (also when run as ``__main__``)."""
    spec = getattr(module, "__spec__", None)
    return (spec.name if spec else module.__name__).rpartition(".")[2]


def claim_workdir(workdir, budget):
    """Create ``workdir`` and mark it with ``budget``; a workdir holding another budget's runs
    (which would be resumed under the wrong settings) or a file is a :class:`ConfigError`."""
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot use --workdir={workdir}: {error.strerror or error}; "
                          "give a folder path") from None
    marker = workdir / "budget.txt"
    if marker.exists() and marker.read_text().strip() != budget:
        raise ConfigError(
            f"{workdir} holds runs of --budget={marker.read_text().strip()}; use another "
            f"--workdir for --budget={budget}"
        )
    marker.write_text(budget + "\n")


def reproduce(module, workdir, budget):
    """Run one reproduction in ``workdir``; returns the report written to ``WORKDIR/NAME.json``."""
    name, workdir = module_name(module), Path(workdir)
    claim_workdir(workdir, budget)
    start = time.time()
    results = module.run(workdir, module.BUDGETS[budget])
    report = {"reproduction": name, "claim": module.CLAIM, "budget": budget,
              "settings": module.BUDGETS[budget], "environment": describe_environment(),
              "wall_time_s": round(time.time() - start, 1), "results": results}
    write_report(workdir / f"{name}.json", report)
    save_figure(module.plot(results), workdir / f"{name}.png")
    print(f"wrote {workdir / name}.json and {name}.png ({report['wall_time_s']:.0f} s)",
          file=sys.stderr)
    return report


def main(module):
    """The command line of a reproduction: ``python -m experiments.reproductions.NAME``."""
    name = module_name(module)
    restart_under_jemalloc(name)  # its training steps then skip glibc's heap after compiling
    os.environ.setdefault("MPLBACKEND", "Agg")
    define_flags()

    def command(argv):
        del argv
        keep_freed_memory()  # XLA:CPU's buffers stay mapped from step to step (Linux, glibc)
        logging.set_verbosity(logging.WARNING)
        enable_compilation_cache(flags.FLAGS.compilation_cache)
        with user_errors_as_messages(name):
            reproduce(module, flags.FLAGS.workdir, flags.FLAGS.budget)

    app.run(command, flags_parser=flags_parser(name))
