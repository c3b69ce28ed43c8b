"""What every notebook builder shares: cell lists -> an ``.ipynb`` with stable ids, no outputs.

A builder (``build_NN_*.py``) holds its notebook's cells as ``(kind, source)`` pairs, so a
change to a notebook is a readable diff of the builder; ``tests/test_notebooks.py`` checks the
committed ``.ipynb`` is the builder's output.
"""

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
