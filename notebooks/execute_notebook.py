"""Runs notebooks top to bottom at their documented budget and saves them with their outputs.

    python notebooks/execute_notebook.py notebooks/01_char_language_model.ipynb [...]

Rebuild a notebook first (``python notebooks/build_NN_*.py``) when its builder changed. Each
notebook runs in a fresh ``python3`` kernel with ``notebooks/`` as its working folder and no
``SEQJAX_NOTEBOOK_*`` sizes set, so every size is the notebook's default. Its first cell gains one
line with the run time, the machine and the JAX version; the other cell sources are untouched.
Figures the notebooks write go to a temporary folder; the ones they display are in the outputs.
"""

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import jax
import nbclient
import nbformat

import notebook_format  # notebooks/notebook_format.py, beside this file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from experiments.benchmarks.environment import cpu_model  # noqa: E402  (from the checkout)

CELL_TIMEOUT_S = 3600


def _minutes_and_seconds(seconds):
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def execute(path):
    """Runs the notebook at ``path`` and rewrites it with its outputs; returns the seconds taken."""
    notebook = nbformat.read(path, as_version=4)
    for name in [name for name in os.environ if name.startswith("SEQJAX_NOTEBOOK_")]:
        del os.environ[name]  # the documented budget is the notebook's own defaults
    os.environ["SEQJAX_NOTEBOOK_OUTPUT_DIR"] = tempfile.mkdtemp(prefix=f"{path.stem}_")
    # the kernel imports this checkout's seqjax and experiments/, whatever else is installed
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO),
                                                            os.environ.get("PYTHONPATH")]))
    client = nbclient.NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    seconds = time.perf_counter() - start
    machine = f"{cpu_model()} ({os.cpu_count()} cores)"
    notebook_format.with_run_stamp(notebook, (
        f"{_minutes_and_seconds(seconds)} on {machine}, Python {sys.version.split()[0]}, "
        f"JAX {jax.__version__}, {datetime.date.today().isoformat()}"))
    nbformat.validate(notebook)
    nbformat.write(notebook, path)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    for path in parser.parse_args().notebooks:
        seconds = execute(path.resolve())
        print(f"{path}: executed in {_minutes_and_seconds(seconds)}", flush=True)


if __name__ == "__main__":
    main()
