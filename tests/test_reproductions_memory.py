"""The long-range memory reproductions (adding, copy memory, vanishing gradients), tiny budget."""

import numpy as np
import pytest

from tests.test_reproductions import run_tiny


def test_copy_memory(tmp_path):
    by_kind = run_tiny("copy_memory", tmp_path)["by_length"]["4"]
    assert by_kind["baseline"] == pytest.approx(10 * np.log(8) / (4 + 20))
    for kind in ("elman", "lstm", "gru", "transformer"):
        assert [step for step, _ in by_kind[kind]["curve"]] == [2, 4]
    assert (tmp_path / "copy_memory_T4" / "lstm" / "metrics.jsonl").exists()


def test_adding_then_vanishing_gradients_on_its_runs(tmp_path):
    by_kind = run_tiny("adding", tmp_path)["by_length"]["8"]
    assert by_kind["baseline"] == pytest.approx(1 / 6)
    assert [step for step, _ in by_kind["transformer"]["curve"]] == [2, 4]
    # The same workdir: vanishing_gradients resumes adding's finished T = 8 runs (a run with
    # another config there would stop with CheckpointMismatchError).
    results = run_tiny("vanishing_gradients", tmp_path)
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
