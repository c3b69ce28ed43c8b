"""The language-model reproductions, Elman's XOR and the command line, at the tiny budget.

(The long-range memory ones are in ``test_reproductions_memory.py``, so that the two files
run on different test workers.)
"""

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from experiments.reproductions.command import claim_workdir, module_name, reproduce
from experiments.reproductions.replot import replot
from seqjax.errors import ConfigError

REPO = Path(__file__).parents[1]
os.environ.setdefault("MPLBACKEND", "Agg")


def run_tiny(name, workdir):
    """Run reproduction ``name`` in-process at the tiny budget; check its files; its results."""
    module = importlib.import_module(f"experiments.reproductions.{name}")
    report = reproduce(module, workdir, "tiny")
    assert json.loads((workdir / f"{name}.json").read_text()) == json.loads(json.dumps(report))
    assert (workdir / f"{name}.png").stat().st_size > 10_000
    assert report["budget"] == "tiny" and report["environment"]["processor"]
    return report["results"]


def test_gated_vs_plain_matches_parameter_counts(tmp_path):
    results = run_tiny("gated_vs_plain", tmp_path)
    counts = [results[cell]["parameters"] for cell in ("elman", "gru", "lstm")]
    assert max(counts) / min(counts) < 1.05
    assert results["ngram_floor"]["val_loss"] > 0 and len(results["ngram_floor"]["table"]) == 6


def test_rnn_vs_transformer_and_replot(tmp_path):
    results = run_tiny("rnn_vs_transformer", tmp_path)
    assert len(results["runs"]) == 2
    assert [len(losses) for losses in results["per_position_loss"].values()] == [16, 16]
    redrawn = replot(tmp_path / "rnn_vs_transformer.json", tmp_path / "redrawn.png")
    assert Path(redrawn).stat().st_size > 10_000


def test_sliding_window_rules_agree_within_the_context(tmp_path):
    results = run_tiny("sliding_window", tmp_path)
    context = results["context_length"]
    for positional in ("learned", "rotary"):
        curves = {name: np.asarray(rule["losses"])
                  for name, rule in results["models"][positional]["rules"].items()}
        assert all(len(losses) == 3 * context for losses in curves.values())
        first = next(iter(curves.values()))
        for losses in curves.values():  # up to the context every rule is the model itself
            np.testing.assert_allclose(losses[:context], first[:context], rtol=1e-5)
    rotary = results["models"]["rotary"]["rules"]
    # The tiny model has one layer, where the ring buffer is the crop past the context too.
    np.testing.assert_allclose(rotary["ring buffer"]["losses"], rotary["crop (nanoGPT)"]["losses"],
                               rtol=1e-5)


def test_elman_xor(tmp_path):
    results = run_tiny("elman_xor", tmp_path)
    errors = np.asarray(results["by_hidden_size"]["2"]["rms_error_by_position"])
    assert errors.shape == (12,) and np.all((errors > 0) & (errors < 1))


def test_command_line_errors_are_one_line():
    bad = subprocess.run(
        [sys.executable, "-m", "experiments.reproductions.elman_xor", "--budget=huge",
         "--workdir=unused"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("elman_xor: error:")
    assert "--budget" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = subprocess.run(
        [sys.executable, "-m", "experiments.reproductions.replot", "nothing.json"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "is not a reproduction report" in missing.stderr


def test_module_name_of_a_reproduction_run_as_main():
    module = types.ModuleType("__main__")
    module.__spec__ = importlib.util.find_spec("experiments.reproductions.adding")
    assert module_name(module) == "adding"


def test_a_workdir_keeps_its_budget_and_must_be_a_folder(tmp_path):
    claim_workdir(tmp_path / "runs", "tiny")
    claim_workdir(tmp_path / "runs", "tiny")  # the same budget again: fine
    with pytest.raises(ConfigError, match="holds runs of --budget=tiny; use another --workdir"):
        claim_workdir(tmp_path / "runs", "gpu")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot use --workdir="):
        claim_workdir(tmp_path / "file", "cpu")
