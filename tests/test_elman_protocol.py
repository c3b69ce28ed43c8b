"""Elman's (1990) protocol: one online update against NumPy, BPTT against it, and the scoring
of his Fig. 3 on a known stream (the reproduction itself runs in ``test_reproductions.py``)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.reproductions import elman_xor
from seqjax import simple_recurrent_network as srn

LEARNING_RATE = 0.1


def numpy_network(rng, hidden_size=2):
    """Float64 parameters of a 1-input, 1-output network, uniform in [-1, 1]."""
    shapes = {"W_x": (hidden_size, 1), "W_c": (hidden_size, hidden_size), "b": (hidden_size,),
              "W_y": (1, hidden_size), "b_y": (1,)}
    return {name: rng.uniform(-1, 1, shape) for name, shape in shapes.items()}


def numpy_sgd_update(p, context, x, target, activation, loss):
    """One update of Elman's network by hand: forward, back-propagation of this step's error
    down to the context (and no further), ``w -= rate * dE/dw``; returns it and ``h``."""
    net = p["W_x"] @ x + p["W_c"] @ context + p["b"]
    h = 1 / (1 + np.exp(-net)) if activation == "logistic" else np.tanh(net)
    y = 1 / (1 + np.exp(-(p["W_y"] @ h + p["b_y"])))
    delta_y = (y - target) * y * (1 - y) if loss == "squared" else y - target  # dE/d net_y
    slope = h * (1 - h) if activation == "logistic" else 1 - h ** 2
    delta_h = (p["W_y"].T @ delta_y) * slope  # dE/d net_h
    grads = {"W_y": np.outer(delta_y, h), "b_y": delta_y, "W_x": np.outer(delta_h, x),
             "W_c": np.outer(delta_h, context), "b": delta_h}
    return {name: p[name] - LEARNING_RATE * grads[name] for name in p}, h


@pytest.mark.parametrize("activation, loss", [("logistic", "squared"), ("tanh", "cross_entropy")])
def test_one_online_update_matches_numpy(activation, loss):
    rng = np.random.default_rng(1990)
    params, context = numpy_network(rng), rng.uniform(0, 1, 2)
    x, target = np.array([1.0]), np.array([0.0])
    expected, expected_h = numpy_sgd_update(params, context, x, target, activation, loss)
    protocol = {**elman_xor.ELMAN, "activation": activation, "loss": loss}
    rule = optax.sgd(LEARNING_RATE)
    with jax.enable_x64(True):
        as_jax = jax.tree.map(jnp.asarray, params)
        carry = (as_jax, rule.init(as_jax), jnp.asarray(context))
        (updated, _, h), _ = elman_xor.one_step_window(protocol, rule, carry, x[None], target[None])
        assert updated["W_c"].dtype == jnp.float64
    np.testing.assert_allclose(h, expected_h, rtol=1e-13)
    for name in params:
        np.testing.assert_allclose(updated[name], expected[name], rtol=1e-12, atol=1e-15)
        assert not np.allclose(updated[name], params[name])  # the step moved every weight


def test_bptt_shares_the_forward_pass_but_not_the_gradient():
    rng = np.random.default_rng(7)
    params = jax.tree.map(jnp.asarray, numpy_network(rng))
    context = srn.start_state(2)
    xs, targets = jnp.array([[1.0], [0.0], [1.0]]), jnp.array([[0.0], [1.0], [1.0]])

    def one_step_losses(params):
        total, c = 0.0, context
        for x, target in zip(xs, targets):
            loss, c = srn.step_loss(params, c, x, target)
            total = total + loss
        return total

    bptt_loss, _ = srn.window_loss(params, context, xs, targets)
    np.testing.assert_allclose(bptt_loss, one_step_losses(params), rtol=1e-6)
    bptt = jax.grad(lambda p: srn.window_loss(p, context, xs, targets)[0])(params)
    one_step = jax.grad(one_step_losses)(params)
    np.testing.assert_allclose(bptt["W_y"], one_step["W_y"], rtol=1e-5)  # no path through time
    assert not np.allclose(bptt["W_c"], one_step["W_c"], rtol=1e-3)  # BPTT reaches h_{t-2}


def test_windows_run_round_the_stream():
    stream = jnp.arange(48.0)
    inputs, targets = elman_xor.window_bits(stream, 1)  # bits 36..71, modulo 48
    np.testing.assert_array_equal(inputs[:, 0], np.r_[36:48, 0:24])
    np.testing.assert_array_equal(targets[:, 0], np.r_[37:48, 0:25])


def known_stream(cycles):
    """Every pair (a, b) in turn, each followed by a XOR b: 12-bit blocks, tiled, plus one bit."""
    block = [0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0]
    length = elman_xor.WINDOW + elman_xor.CYCLE * cycles + 1
    return np.resize(np.array(block, float), length)


def test_fig3_scoring_of_an_oracle_on_a_known_stream():
    cycles = 6
    bits = known_stream(cycles)
    t = np.arange(len(bits) - 1)  # prediction t is for bit t + 1
    oracle = np.where(t % 3 == 1, np.logical_xor(bits[t], bits[t - 1]), 0.5)
    np.testing.assert_array_equal(oracle, elman_xor.phase_aware_predictions(bits))
    errors = elman_xor.rms_error_by_position(oracle, bits, cycles)
    np.testing.assert_allclose(errors, [0.5, 0.5, 0.0] * 4, atol=1e-12)
    summary = elman_xor.error_summary(errors)
    assert summary["xor_bits"] == 0.0 and summary["other_bits"] == 0.5
    late = elman_xor.rms_error_by_position(np.r_[0.5, oracle[:-1]], bits, cycles)  # one bit late
    assert late[elman_xor.XOR_BITS].min() > 0.3


def test_the_phase_blind_ideal_errs_one_third_at_the_xor_bits():
    cycles = 300
    bits = elman_xor.fresh_stream(0, cycles)
    predictions = elman_xor.two_bit_predictions(bits)
    summary = elman_xor.error_summary(elman_xor.rms_error_by_position(predictions, bits, cycles))
    assert summary["xor_bits"] == pytest.approx(1 / 3)
    assert summary["other_bits"] == pytest.approx(np.sqrt(0.25 + 1 / 36), abs=0.01)
    hiddens = np.stack([bits[:-1], 1 - bits[:-1]], axis=1)  # a stand-in for the hidden units
    analysis = elman_xor.history_analysis(hiddens, predictions, bits, cycles)
    assert analysis["phase_blindness"] == pytest.approx(1.0)
    assert analysis["prediction_after_run"] == {"xor_bits": pytest.approx(1 / 3),
                                                "other_bits": pytest.approx(1 / 3)}
