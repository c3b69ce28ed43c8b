"""What every notebook builder shares: cell lists -> an ``.ipynb`` with stable ids.

A builder (``build_NN_*.py``) holds its notebook's cells as ``(kind, source)`` pairs, so a
change to a notebook is a readable diff of the builder. The builder writes the notebook without
outputs; ``execute_notebook.py`` then runs it at its documented budget and saves it with its
figures, samples and numbers, and a line saying how long that took. ``tests/test_notebooks.py``
checks that the committed cell sources are the builder's.
"""

import re
import textwrap

import nbformat


def build_notebook(cells):
    """The notebook of ``cells`` (``("markdown" | "code", source)``) as an ``nbformat`` node."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for index, (kind, source) in enumerate(cells):
        new_cell = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = new_cell(textwrap.dedent(source).strip("\n"))
        cell.id = f"cell-{index:02d}"
        notebook.cells.append(cell)
    nbformat.validate(notebook)
    return notebook


def notebook_text(cells):
    """The ``.ipynb`` file's exact contents."""
    return nbformat.writes(build_notebook(cells)) + "\n"


def write_notebook(path, cells):
    path.write_text(notebook_text(cells), encoding="utf-8")
    print("wrote", path)


# The first code cell of a notebook that imports from ``experiments/``: that folder (configs,
# reproductions) belongs to the checkout, and ``pip install`` installs ``seqjax`` alone.
CHECKOUT_CELL = ("code", r"""
    import sys
    from pathlib import Path

    # experiments/ (configs, reproductions) is part of the checkout, not of the installed seqjax
    CHECKOUT = Path.cwd().resolve().parent  # this notebook's folder is notebooks/
    if (CHECKOUT / "experiments").is_dir() and str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    """)


# The line ``execute_notebook.py`` appends to an executed notebook's first (markdown) cell; the
# other cell sources stay the builder's, which tests/test_notebooks.py checks.
RUN_STAMP_PREFIX = "*Executed top to bottom at the budget below in "
RUN_STAMP = re.compile(r"\n\n" + re.escape(RUN_STAMP_PREFIX) + r"[^\n]*\*\Z")


def with_run_stamp(notebook, text):
    """``notebook`` with ``text`` (run time, machine, versions) as its first cell's last line."""
    first = notebook.cells[0]
    first.source = RUN_STAMP.sub("", first.source) + f"\n\n{RUN_STAMP_PREFIX}{text}*"
    return notebook


def run_stamp(notebook):
    """The first cell's run-time line without its markers, or None for a notebook not run."""
    match = RUN_STAMP.search(notebook.cells[0].source)
    return match.group(0).strip()[len(RUN_STAMP_PREFIX):-1] if match else None


def cell_sources(notebook):
    """``[(kind, id, source)]`` of every cell, the run-time line removed."""
    return [(cell.cell_type, cell.get("id"), RUN_STAMP.sub("", cell.source) if index == 0
             else cell.source) for index, cell in enumerate(notebook.cells)]
