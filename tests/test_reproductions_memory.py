"""The long-range memory reproductions (adding, copy memory, vanishing gradients), tiny budget;
the Transformers' parameter counts matched to the LSTM's at the real budgets."""

from pathlib import Path

import numpy as np
import pytest

from experiments.reproductions import adding, copy_memory
from experiments.reproductions import long_range_memory as memory
from experiments.reproductions.replot import replot
from tests.test_reproductions import run_tiny

ROOT = Path(__file__).resolve().parents[1]


def test_copy_memory(tmp_path):
    by_kind = run_tiny("copy_memory", tmp_path)["by_length"]["4"]
    assert by_kind["baseline"] == pytest.approx(10 * np.log(8) / (4 + 20))
    for kind in ("elman", "lstm", "gru", "causal_transformer", "transformer"):
        assert [step for step, _ in by_kind[kind]["curve"]] == [2, 4]
        assert by_kind[kind]["parameters"] > 0 and by_kind[kind]["width"] > 0
    assert by_kind["elman"]["width"] == by_kind["lstm"]["width"] == 8  # the budget's hidden size
    assert (tmp_path / "copy_memory_T4" / "lstm" / "metrics.jsonl").exists()
    assert (tmp_path / "copy_memory_T4" / "causal_transformer" / "metrics.jsonl").exists()


@pytest.fixture(scope="module")
def adding_runs(tmp_path_factory):
    """``(workdir, results)`` of the adding reproduction at the tiny budget, run once for the
    tests that read it (vanishing_gradients then resumes its runs in that workdir)."""
    workdir = tmp_path_factory.mktemp("adding")
    return workdir, run_tiny("adding", workdir)


def test_adding_columns_and_the_elman_setups(adding_runs):
    _, results = adding_runs
    assert list(results["by_length"]["8"]) == ["baseline", *memory.KINDS]
    setups = results["elman_setups"]["by_setup"]
    assert list(setups) == list(adding.ELMAN_SETUPS)
    assert setups["Arjovsky et al."]["batch_size"] == 20
    for setup in setups.values():  # 256 examples in batches of 128 or 20, evaluated twice
        (run,) = setup["by_seed"].values()
        batch = setup["batch_size"]
        assert [examples for examples, _ in run["curve"]] == [
            batch * (256 // batch // 2), batch * (256 // batch // 2) * 2]
        assert np.isfinite(run["final"])
    assert 0 < results["elman_setups"]["held_out_variance"] < 1


@pytest.mark.parametrize("task", ["adding", "copy_memory"])
@pytest.mark.parametrize("budget", ["cpu", "gpu"])
def test_transformers_have_the_lstm_parameter_count(task, budget):
    """Within 10% at every length of the real budgets (shapes only, nothing trained)."""
    settings = {"adding": adding, "copy_memory": copy_memory}[task].BUDGETS[budget]
    for length in settings["lengths"]:
        lstm = memory.parameter_count(memory.run_config(task, "lstm", length, settings))
        for kind in memory.TRANSFORMER_KINDS:
            count = memory.parameter_count(memory.run_config(task, kind, length, settings))
            assert abs(count / lstm - 1) < 0.10, (task, budget, length, kind, count, lstm)


def test_recurrent_configs_stay_those_vanishing_gradients_shares():
    for kind in memory.RECURRENT_KINDS:
        config = memory.run_config("adding", kind, 100, memory.CPU)
        shared = memory.memory_task_config("adding", kind, 100, memory.CPU)
        assert config.to_dict() == shared.to_dict()
        assert config.model.hidden_size == memory.CPU["hidden_size"]


@pytest.mark.parametrize("name", ["adding_h200", "copy_memory_h200"])
def test_reports_from_before_the_causal_column_still_redraw(tmp_path, name):
    redrawn = replot(ROOT / "docs" / "figures" / f"{name}.json", tmp_path / f"{name}.png")
    assert redrawn.stat().st_size > 10_000


def test_adding_then_vanishing_gradients_on_its_runs(adding_runs):
    workdir, adding_results = adding_runs
    by_kind = adding_results["by_length"]["8"]
    assert by_kind["baseline"] == pytest.approx(1 / 6)
    assert [step for step, _ in by_kind["transformer"]["curve"]] == [2, 4]
    # The same workdir: vanishing_gradients resumes adding's finished T = 8 runs (a run with
    # another config there would stop with CheckpointMismatchError).
    results = run_tiny("vanishing_gradients", workdir)
    curves = list(results["at_init"].values()) + [
        trained["jacobian_norms"] for trained in results["trained"].values()]
    for norms in curves:
        assert len(norms) == 8 and norms[-1] == pytest.approx(1.0, rel=1e-4)  # dh_T/dh_T = I
    at_init = results["at_init"]
    assert at_init["Elman, sigma_max(W_h) = 0.5"][0] < at_init["Elman, sigma_max(W_h) = 1.5"][0]
    # The LSTM's cell-state path, and the Elman RNN trained at the shorter T = 4 (also read on
    # the T = 8 inputs); every model carries its held-out MSE beside the baseline 1/6.
    lstm, short = results["trained"]["lstm"], results["short_elman"]
    assert len(lstm["cell_state_jacobian_norms"]) == 8
    assert lstm["cell_state_jacobian_norms"][-1] == pytest.approx(1.0, rel=1e-4)  # dc_T/dc_T = I
    cell_state_gradients = lstm["cell_state_loss_gradient_norms"]
    assert len(cell_state_gradients) == 8 and cell_state_gradients[-1] == 0  # L reads h_T only
    assert short["length"] == 4 and len(short["jacobian_norms"]) == 4
    assert len(short["on_long_inputs"]["jacobian_norms"]) == 8
    assert results["baseline"] == pytest.approx(1 / 6)
    positive = [lstm["cell_state_jacobian_norms"], cell_state_gradients[:-1]] + [
        model[key] for model in (*results["trained"].values(), short, short["on_long_inputs"])
        for key in ("jacobian_norms", "loss_gradient_norms")]
    for norms in positive:
        assert np.all(np.isfinite(norms)) and np.all(np.array(norms) > 0)
    for model in (*results["trained"].values(), short):
        assert model["best_val_loss"] <= model["final_val_loss"] and model["best_val_loss"] > 0
        assert model["best_step"] in (2, 4)
