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
from seqjax.errors import ConfigError, TrainingDivergedError
from seqjax.evaluation import binned_losses

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


def test_gated_vs_plain_sweeps_learning_rates_and_seeds(tmp_path):
    from experiments.reproductions.gated_vs_plain import BUDGETS, CELLS, compare

    settings, results = BUDGETS["tiny"], run_tiny("gated_vs_plain", tmp_path)
    cells = results["cells"]
    counts = [cells[cell]["parameters"] for cell in CELLS]
    assert max(counts) / min(counts) < 1.05
    assert results["ngram_floor"]["val_loss"] > 0 and len(results["ngram_floor"]["table"]) == 6
    grid = [f"{rate:g}" for rate in settings["learning_rates"]]
    seeds = [str(seed) for seed in settings["seeds"]]
    assert len(grid) >= 2 and len(seeds) >= 2
    for budget in ("cpu", "gpu"):  # the protocol: >= 3 rates, >= 3 seeds, eval <= 250
        assert len(BUDGETS[budget]["learning_rates"]) >= 3 and len(BUDGETS[budget]["seeds"]) >= 3
        assert BUDGETS[budget]["eval_every"] <= 250
    for cell in CELLS:
        sweep = cells[cell]["by_learning_rate"]
        assert list(sweep) == grid
        for row in sweep.values():
            assert list(row["by_seed"]) == seeds
            bests, finals = [], []
            for run in row["by_seed"].values():  # every eval_every steps, and at the end
                steps, losses = zip(*run["curve"])
                assert list(steps) == list(range(settings["eval_every"], settings["num_steps"] + 1,
                                                 settings["eval_every"]))
                assert run["best_val_loss"] == min(losses) and run["final_val_loss"] == losses[-1]
                assert run["best_step"] == steps[losses.index(min(losses))]
                bests.append(min(losses))
                finals.append(losses[-1])
            for metric, values in (("best_val_loss", bests), ("final_val_loss", finals)):
                stats = row[metric]
                assert stats["n"] == len(seeds) and stats["min"] == min(values)
                assert stats["mean"] == pytest.approx(np.mean(values))
                assert stats["std"] == pytest.approx(np.std(values, ddof=1))
        means = {rate: row["best_val_loss"]["mean"] for rate, row in sweep.items()}
        assert cells[cell]["chosen_learning_rate"] == min(means, key=means.get)
    for metric in ("best_val_loss", "final_val_loss"):
        chosen = {cell: cells[cell]["by_learning_rate"][cells[cell]["chosen_learning_rate"]][metric]
                  for cell in CELLS}
        verdict = results[f"by_{metric}"]
        assert verdict["ranking"] == sorted(CELLS, key=lambda cell: chosen[cell]["mean"])
        assert verdict["gated_beats_tanh_rnn_beyond_spread"] == {
            cell: chosen[cell]["max"] < chosen["elman"]["min"] for cell in ("gru", "lstm")}
        assert verdict == compare(results, metric)
    redrawn = replot(tmp_path / "gated_vs_plain.json", tmp_path / "redrawn.png")
    assert Path(redrawn).stat().st_size > 10_000
    older = replot(REPO / "docs" / "figures" / "gated_vs_plain_h200.json", tmp_path / "h200.png")
    assert Path(older).stat().st_size > 10_000  # the report from before the sweep still draws


def test_gated_vs_plain_verdict_needs_separated_seed_ranges():
    from experiments.reproductions.gated_vs_plain import compare

    def results(ranges):
        cells = {cell: {"chosen_learning_rate": "0.01", "by_learning_rate": {"0.01": {
            "best_val_loss": {"mean": sum(r) / 2, "min": r[0], "max": r[1], "n": 3}}}}
            for cell, r in ranges.items()}
        return {"cells": cells}

    separated = compare(results({"elman": (1.60, 1.62), "gru": (1.50, 1.52),
                                 "lstm": (1.51, 1.53)}), "best_val_loss")
    assert separated["holds"] and separated["ranking"] == ["gru", "lstm", "elman"]
    overlapping = compare(results({"elman": (1.60, 1.62), "gru": (1.50, 1.61),
                                   "lstm": (1.51, 1.53)}), "best_val_loss")
    assert overlapping["gated_beats_tanh_rnn_beyond_spread"] == {"gru": False, "lstm": True}
    assert not overlapping["holds"]
    apart = compare(results({"elman": (1.60, 1.62), "gru": (1.40, 1.41),
                             "lstm": (1.51, 1.53)}), "best_val_loss")
    assert not apart["gru_and_lstm_ranges_overlap"] and not apart["holds"]


def test_gated_vs_plain_keeps_a_diverged_runs_evaluations(tmp_path, monkeypatch):
    from experiments.reproductions import gated_vs_plain

    records = [{"step": 2, "train_loss": 3.0, "val_loss": 2.5}, {"step": 4, "val_loss": 2.4},
               {"step": 6, "train_loss": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))

    def diverges(config, run_dir):
        raise TrainingDivergedError("training diverged at step 6")

    monkeypatch.setattr(gated_vs_plain.lm, "train_lm", diverges)
    run = gated_vs_plain.train_run(None, tmp_path)
    assert run == {"curve": [(2, 2.5), (4, 2.4)], "best_val_loss": 2.4, "best_step": 4,
                   "final_val_loss": None, "diverged": True}
    assert gated_vs_plain.spread([run["final_val_loss"], 2.0, 3.0]) == {
        "mean": 2.5, "std": pytest.approx(0.5 ** 0.5), "min": 2.0, "max": 3.0, "n": 2}


def test_long_context_study_and_replot(tmp_path):
    results = run_tiny("long_context", tmp_path)
    labels = list(results["runs"])
    assert [r["family"] for r in results["runs"].values()] == ["transformer", "lstm", "gru", "rg_lru"]
    counts = [r["non_embedding_parameters"] for r in results["runs"].values()]
    assert max(counts) / min(counts) < 1.1  # matched within 10%
    curves = dict(np.load(tmp_path / "window_losses.npz"))
    assert set(curves) == set(results["per_position"])
    bins = [tuple(b) for b in results["bins"]]
    for name, losses in curves.items():
        assert losses.shape == (results["data"]["eval_windows"], results["data"]["window_tokens"])
        summary = results["per_position"][name]
        np.testing.assert_allclose(summary["mean"], binned_losses(losses, bins).mean(0), atol=1e-5)
        assert np.all(np.array(summary["low"]) <= np.array(summary["mean"]) + 1e-9)
    paired = results["difference"][f"{labels[0]} - {labels[1]}"]["mean"]
    np.testing.assert_allclose(
        paired, (binned_losses(curves[labels[0]], bins) - binned_losses(curves[labels[1]], bins)).mean(0),
        atol=1e-5)
    assert results["data"]["train_files"] + results["data"]["val_files"] == 5
    redrawn = replot(tmp_path / "long_context.json", tmp_path / "redrawn.png")
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


def test_elman_xor_and_replot(tmp_path):
    from experiments.reproductions.elman_xor import COMBINATIONS, PROTOCOLS

    results = run_tiny("elman_xor", tmp_path)
    assert list(results["protocols"]) == list(PROTOCOLS)
    for name, result in results["protocols"].items():
        errors = np.asarray(result["summary"]["rms_error_by_position"])
        assert errors.shape == (12,) and np.all((errors > 0) & (errors < 1)), name
        assert len(result["by_seed"]) == 1 and len(result["training_error_per_bit"]) == 20
    assert "scored_with_resets_every_36_bits" in results["protocols"]["reset every 36 bits"]
    assert results["protocols"]["Adam"]["xor_bits_minus_elman"]["seeds"] == 1
    assert list(results["combinations"]["3"]) == list(COMBINATIONS)
    assert list(results["learning_rates"]) == ["0.3"]
    assert results["references"]["knows the phase"]["xor_bits"] == 0.0
    redrawn = replot(tmp_path / "elman_xor.json", tmp_path / "redrawn.png")
    assert Path(redrawn).stat().st_size > 10_000


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
