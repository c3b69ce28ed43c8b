"""The teaching notebooks run, top to bottom, on a tiny budget, and their models learn.

Each ``notebooks/*.ipynb`` is executed in a fresh ``python3`` kernel by ``nbclient`` with small
sizes set through ``SEQJAX_NOTEBOOK_*`` environment variables (the notebooks' first code
cell reads them). A notebook that trains prints ``loss: first X -> last Y``; the loss must fall.
The committed notebooks carry the outputs of a run at their documented budget
(``notebooks/execute_notebook.py``), and their cell sources are their builders' output.
"""

import importlib.util
import os
import re
import sysconfig
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
BUILDERS = sorted(NOTEBOOKS_DIR.glob("build_*.py"))
LOSS_LINE = re.compile(r"loss: first (\d+\.\d+) -> last (\d+\.\d+)")
TRAINING_NOTEBOOKS = {"01_char_language_model.ipynb", "03_long_range_memory.ipynb",
                      "04_attention_and_transformers.ipynb", "05_long_context.ipynb",
                      "06_parallel_recurrences.ipynb"}
TINY_BUDGET = {
    "SEQJAX_NOTEBOOK_STEPS": "30",
    "SEQJAX_NOTEBOOK_BATCH_SIZE": "8",
    "SEQJAX_NOTEBOOK_SEQ_LEN": "32",
    "SEQJAX_NOTEBOOK_EMBED_SIZE": "16",
    "SEQJAX_NOTEBOOK_HIDDEN_SIZE": "64",
    "SEQJAX_NOTEBOOK_SAMPLE_TOKENS": "20",
    "SEQJAX_NOTEBOOK_MODELS": "gru",  # 03: one model per task (each run compiles for seconds)
    # 05: five files of the standard library (json/), a small BPE, a Transformer and an LSTM
    "SEQJAX_NOTEBOOK_CORPUS": str(Path(sysconfig.get_paths()["stdlib"]) / "json"),
    "SEQJAX_NOTEBOOK_VOCAB_SIZE": "300",
    "SEQJAX_NOTEBOOK_RECURRENT_KINDS": "lstm",
    "SEQJAX_NOTEBOOK_EVAL_WINDOWS": "16",
    # 06: the equality table for minGRU alone (all four back-ends), short scans, small steps
    "SEQJAX_NOTEBOOK_SCAN_CELLS": "min_gru",
    "SEQJAX_NOTEBOOK_PRECISION_LENGTH": "64",
    "SEQJAX_NOTEBOOK_SCAN_LENGTHS": "32",
    "SEQJAX_NOTEBOOK_SCAN_TOKENS": "128",
    "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",  # tiny programs: compiling fast beats running fast
}
KERNEL_TIMEOUT_S = 300
MIN_LOSS_DROP = 0.2  # nats/char; 30 tiny steps drop ~1 nat, noise between batches is ~0.1
# 06's equality table: "<cell> <back-end>" and four differences from the step loop
SCAN_TABLE_ROW = re.compile(r"^(min_gru|min_lstm|lru|rg_lru) +(sequential|associative|chunked|log)"
                            r"((?: +\d\.\de[+-]\d+){4})$", re.MULTILINE)
SCAN_TOLERANCE = 1e-5  # float32 rounding is ~1e-7 on these O(1) outputs and gradients
LOG_SCAN_TOLERANCE = 1e-4  # the log-space form's error grows with T (6e-6 at T = 32)


def _printed_text(notebook):
    """Everything the code cells printed, in order."""
    return "".join(
        output.get("text", "")
        for cell in notebook.cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "stream"
    )


def _shows_a_png(notebook):
    """Whether a code cell displayed a PNG image."""
    return any("image/png" in output.get("data", {}) for cell in notebook.cells
               if cell.cell_type == "code" for output in cell.outputs)


def _execute(path, monkeypatch, output_dir):
    """Run the notebook at ``path`` in a fresh kernel, cwd notebooks/; returns it executed."""
    for name, value in TINY_BUDGET.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEQJAX_NOTEBOOK_OUTPUT_DIR", str(output_dir))
    python_path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), python_path])))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=KERNEL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    return notebook


@pytest.fixture(scope="module")
def run_notebook(tmp_path_factory):
    """``run(path) -> (executed notebook, its output folder)``, each notebook executed once."""
    executed = {}

    def run(path):
        if path not in executed:
            output_dir = tmp_path_factory.mktemp(path.stem)
            with pytest.MonkeyPatch.context() as monkeypatch:
                executed[path] = (_execute(path, monkeypatch, output_dir), output_dir)
        return executed[path]

    return run


def test_there_are_notebooks():
    assert "01_char_language_model.ipynb" in [path.name for path in NOTEBOOKS]


@pytest.fixture(scope="module")
def notebook_format():
    """``notebooks/notebook_format.py``: the builders' shared helpers."""
    spec = importlib.util.spec_from_file_location("notebook_format",
                                                  NOTEBOOKS_DIR / "notebook_format.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_notebook_shows_its_outputs(path, notebook_format):
    """Committed executed top to bottom in one kernel, with no error, stating its run time."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    redo = f"run `python notebooks/execute_notebook.py notebooks/{path.name}`"
    assert notebook_format.run_stamp(notebook), f"{path.name} states no run time: {redo}"
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code_cells] == list(
        range(1, len(code_cells) + 1)), f"{path.name} was not run top to bottom once: {redo}"
    outputs = [output for cell in code_cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"], redo
    assert any(output.output_type == "stream" for output in outputs), redo
    assert _shows_a_png(notebook), f"{path.name} shows no figure: {redo}"


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda path: path.name)
def test_committed_notebook_is_its_builders_output(builder, notebook_format, monkeypatch):
    monkeypatch.syspath_prepend(str(NOTEBOOKS_DIR))  # the builders import notebook_format.py
    spec = importlib.util.spec_from_file_location(builder.stem, builder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = nbformat.read(module.NOTEBOOK_PATH, as_version=4)
    built = notebook_format.build_notebook(module.CELLS)
    assert notebook_format.cell_sources(committed) == notebook_format.cell_sources(built), (
        f"{module.NOTEBOOK_PATH.name}'s cells differ from what {builder.name} writes: edit the "
        f"builder, run `python notebooks/{builder.name}`, then "
        f"`python notebooks/execute_notebook.py notebooks/{module.NOTEBOOK_PATH.name}`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_and_its_loss_falls(path, run_notebook):
    notebook, _ = run_notebook(path)
    printed = _printed_text(notebook)
    losses = [(float(first), float(last)) for first, last in LOSS_LINE.findall(printed)]
    if path.name in TRAINING_NOTEBOOKS:
        assert losses, f"{path.name} printed no 'loss: first X -> last Y' line"
    for first, last in losses:
        assert last < first - MIN_LOSS_DROP, f"{path.name}: loss fell too little: {first} -> {last}"


def test_char_language_model_notebook_plots_and_samples(run_notebook):
    notebook, output_dir = run_notebook(NOTEBOOKS_DIR / "01_char_language_model.ipynb")
    assert (output_dir / "01_char_language_model_loss.png").stat().st_size > 0
    assert _shows_a_png(notebook)
    printed = _printed_text(notebook)
    assert "--- temperature 0.5 ---" in printed and "--- temperature 1.0 ---" in printed


def test_notebook_02_vanishing_gradients_plots(run_notebook):
    notebook, output_dir = run_notebook(NOTEBOOKS_DIR / "02_vanishing_gradients.ipynb")
    for name in ("02_vanishing_gradients_at_init.png", "02_vanishing_gradients_trained.png"):
        assert (output_dir / name).stat().st_size > 0
    assert _shows_a_png(notebook)
    assert "max |hand - jax.grad| over every term" in _printed_text(notebook)


def test_notebook_03_long_range_memory_plots(run_notebook):
    notebook, output_dir = run_notebook(NOTEBOOKS_DIR / "03_long_range_memory.ipynb")
    for name in ("03_adding_example.png", "03_adding.png", "03_copy_memory.png"):
        assert (output_dir / name).stat().st_size > 0
    assert _shows_a_png(notebook)


def test_notebook_04_attention_plots_and_samples(run_notebook):
    notebook, output_dir = run_notebook(NOTEBOOKS_DIR / "04_attention_and_transformers.ipynb")
    for name in ("04_softmax_saturation.png", "04_attention_and_transformers_loss.png",
                 "04_attention_map.png"):
        assert (output_dir / name).stat().st_size > 0
    assert _shows_a_png(notebook)
    printed = _printed_text(notebook)
    assert "--- temperature 0.5 ---" in printed and "--- temperature 1.0 ---" in printed


def test_notebook_05_long_context_plots_and_intervals(run_notebook):
    notebook, output_dir = run_notebook(NOTEBOOKS_DIR / "05_long_context.ipynb")
    for name in ("05_count_models.png", "05_per_position_loss.png",
                 "05_transformer_minus_recurrent.png"):
        assert (output_dir / name).stat().st_size > 0
    assert _shows_a_png(notebook)
    printed = _printed_text(notebook)
    assert "n-gram + n-gram cache" in printed and "loss over the window" in printed
    assert "late gain" in printed  # at the tiny budget: says the window is too short for it


def test_notebook_06_parallel_recurrences_scan_equals_loop(run_notebook):
    notebook, output_dir = run_notebook(NOTEBOOKS_DIR / "06_parallel_recurrences.ipynb")
    for name in ("06_log_space_error.png", "06_speed_per_token.png"):
        assert (output_dir / name).stat().st_size > 0
    assert _shows_a_png(notebook)
    printed = _printed_text(notebook)
    rows = {(cell, backend): [float(value) for value in values.split()]
            for cell, backend, values in SCAN_TABLE_ROW.findall(printed)}
    cells = {cell for cell, _ in rows}
    assert "min_gru" in cells, printed
    every_backend = {"sequential", "associative", "chunked", "log"}
    for cell in cells:
        expected = every_backend if cell in ("min_gru", "min_lstm") else every_backend - {"log"}
        assert {backend for name, backend in rows if name == cell} == expected, (cell, rows)
    for (cell, backend), differences in rows.items():
        tolerance = LOG_SCAN_TOLERANCE if backend == "log" else SCAN_TOLERANCE
        assert max(differences) < tolerance, (cell, backend, differences)
    carried = re.search(r"max \|logits carried state - logits parallel scan\| = (\S+);", printed)
    assert carried and float(carried.group(1)) < 1e-4, printed
