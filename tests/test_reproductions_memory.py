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
