"""The long-range memory reproductions (adding, copy memory, vanishing gradients), tiny budget."""

import numpy as np
import pytest

from tests.test_reproductions import run_tiny


@pytest.mark.parametrize("name, length", [("adding", 8), ("copy_memory", 4)])
def test_memory_problems(tmp_path, name, length):
    results = run_tiny(name, tmp_path)
    by_kind = results["by_length"][str(length)]
    expected = 1 / 6 if name == "adding" else 10 * np.log(8) / (length + 20)
    assert by_kind["baseline"] == pytest.approx(expected)
    for kind in ("elman", "lstm", "gru", "transformer"):
        assert [step for step, _ in by_kind[kind]["curve"]] == [2, 4]
    assert (tmp_path / f"{name}_T{length}" / "lstm" / "metrics.jsonl").exists()


def test_vanishing_gradients(tmp_path):
    results = run_tiny("vanishing_gradients", tmp_path)
    curves = list(results["at_init"].values()) + [
        trained["jacobian_norms"] for trained in results["trained"].values()]
    for norms in curves:
        assert len(norms) == 8 and norms[-1] == pytest.approx(1.0, rel=1e-4)  # dh_T/dh_T = I
    at_init = results["at_init"]
    assert at_init["Elman, sigma_max(W_h) = 0.5"][0] < at_init["Elman, sigma_max(W_h) = 1.5"][0]
