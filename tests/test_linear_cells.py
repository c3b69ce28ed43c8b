"""The cells linear in the state (minGRU, minLSTM, LRU, RG-LRU) against NumPy float64 references
of their papers' equations, and the properties their initializations promise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.recurrent.cells import LINEAR_CELLS, lru, min_gru, min_lstm, rg_lru
from seqjax.recurrent.unroll import unroll

INPUT, HIDDEN, STEPS = 3, 5, 6


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def softplus(v):
    return np.log1p(np.exp(v))


def g(v):
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def numpy_min_gru(p, h, x):
    k = p["W"] @ x + p["b"]
    z, h_tilde = sigmoid(k[:HIDDEN]), g(k[HIDDEN:])
    h = (1 - z) * h + z * h_tilde
    return h, h


def numpy_min_lstm(p, h, x):
    k = p["W"] @ x + p["b"]
    f, i, h_tilde = sigmoid(k[:HIDDEN]), sigmoid(k[HIDDEN:2 * HIDDEN]), g(k[2 * HIDDEN:])
    h = f / (f + i) * h + i / (f + i) * h_tilde
    return h, h


def numpy_lru(p, carry, x):
    h, _ = carry
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    B, C = p["B_re"] + 1j * p["B_im"], p["C_re"] + 1j * p["C_im"]
    h = lam * h + np.exp(p["gamma_log"]) * (B @ x)
    skip = p["D"] * x if p["D"].ndim == 1 else p["D"] @ x
    y = (C @ h).real + skip
    return (h, y), y


def numpy_rg_lru(p, h, x):
    u = p["W_in"] @ x if "W_in" in p else x
    r, i = sigmoid(p["W_a"] @ u + p["b_a"]), sigmoid(p["W_x"] @ u + p["b_x"])
    a_t = sigmoid(p["Lambda"]) ** (8.0 * r)
    h = a_t * h + np.sqrt(1 - a_t**2) * (i * u)
    return h, h


REFERENCES = {"min_gru": numpy_min_gru, "min_lstm": numpy_min_lstm, "lru": numpy_lru,
              "rg_lru": numpy_rg_lru}


def random_params(cell, input_size, key):
    """The cell's own initialization, with biases moved off zero so that they are tested."""
    params = cell.init(jax.random.PRNGKey(key), input_size, HIDDEN)
    keys = iter(jax.random.split(jax.random.PRNGKey(key + 100), len(params)))
    return {name: value + 0.3 * jax.random.normal(next(keys), value.shape)
            if name.startswith("b") else value for name, value in params.items()}


@pytest.mark.parametrize("input_size", [INPUT, HIDDEN])
@pytest.mark.parametrize("name", sorted(LINEAR_CELLS))
def test_step_matches_the_papers_equations(name, input_size):
    cell = LINEAR_CELLS[name]
    params = random_params(cell, input_size, key=1)
    xs = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (STEPS, input_size)))
    carry, ys = unroll(cell.step, params, jnp.asarray(xs), cell.initial_carry(params))
    numpy_params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    ref_carry = (np.zeros(HIDDEN, complex), np.zeros(HIDDEN)) if name == "lru" else np.zeros(HIDDEN)
    ref_ys = []
    for x in xs:
        ref_carry, y = REFERENCES[name](numpy_params, ref_carry, x.astype(np.float64))
        ref_ys.append(y)
    np.testing.assert_allclose(ys, np.stack(ref_ys), rtol=2e-5, atol=2e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                 carry, ref_carry)


@pytest.mark.parametrize("cell", [min_gru, min_lstm])
def test_log_space_coefficients_are_the_logarithms_of_the_coefficients(cell):
    params = random_params(cell, INPUT, key=3)
    x = 3.0 * jax.random.normal(jax.random.PRNGKey(4), (INPUT,))
    a, b = cell.coefficients(params, x)
    log_a, log_b = cell.log_coefficients(params, x)
    np.testing.assert_allclose(np.exp(log_a), a, rtol=1e-5)
    np.testing.assert_allclose(np.exp(log_b), b, rtol=1e-5)


def test_min_lstm_gates_sum_to_one_so_a_constant_input_is_a_fixed_point():
    params = random_params(min_lstm, INPUT, key=5)
    x = jax.random.normal(jax.random.PRNGKey(6), (INPUT,))
    a, b = min_lstm.coefficients(params, x)
    h_tilde = min_gru.g(jnp.split(params["W"] @ x + params["b"], 3)[2])
    np.testing.assert_allclose(a + b / h_tilde, 1.0, rtol=1e-6)


def test_lru_initialization_lies_on_its_ring_and_normalizes_the_input():
    params = lru.init(jax.random.PRNGKey(7), INPUT, 4096, r_min=0.4, r_max=0.9, max_phase=1.0)
    modulus = np.abs(np.asarray(lru.eigenvalues(params)))
    assert modulus.min() >= 0.4 - 1e-6 and modulus.max() <= 0.9 + 1e-6
    # |lambda|^2 uniform on [r_min^2, r_max^2]: its mean is the midpoint
    assert abs(np.mean(modulus**2) - (0.4**2 + 0.9**2) / 2) < 0.01
    phase = np.angle(np.asarray(lru.eigenvalues(params)))
    assert phase.min() >= 0 and phase.max() <= 1.0 + 1e-6
    np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1 - modulus**2), rtol=1e-4)


def test_lru_state_variance_stays_that_of_its_input_over_long_sequences():
    """The gamma normalization: a unit-variance input keeps E|h|^2 near E|B x|^2 at step 2,000."""
    params = lru.init(jax.random.PRNGKey(8), 16, 256, r_min=0.9, r_max=0.999)
    xs = jax.random.normal(jax.random.PRNGKey(9), (2000, 16))
    _, hs = jax.lax.scan(lambda h, x: (lru.step(params, (h, 0.0), x)[0][0],) * 2,
                         jnp.zeros(256, jnp.complex64), xs)
    input_power = np.mean(np.abs(np.asarray(xs @ (params["B_re"] + 1j * params["B_im"]).T)) ** 2)
    assert 0.5 < np.mean(np.abs(np.asarray(hs[-500:])) ** 2) / input_power < 2.0


def test_rg_lru_decay_starts_on_recurrentgemmas_ring_and_gates_reach_it():
    params = rg_lru.init(jax.random.PRNGKey(10), 4096, 4096)
    a = np.asarray(jax.nn.sigmoid(params["Lambda"]))
    assert a.min() >= 0.9 - 1e-6 and a.max() <= 0.999 + 1e-6
    assert "W_in" not in params and "W_in" in rg_lru.init(jax.random.PRNGKey(10), 3, 8)
    # the recurrence gate r_t -> 0 opens the state fully (a_t -> 1, no input), r_t -> 1 gives a^8
    x = jnp.zeros(4096)
    shut = dict(params, b_a=jnp.full(4096, -30.0))
    a_t, b_t = rg_lru.coefficients(shut, x)
    np.testing.assert_allclose(a_t, 1.0, atol=1e-6)
    full = dict(params, b_a=jnp.full(4096, 30.0))
    np.testing.assert_allclose(rg_lru.coefficients(full, x)[0], a**8, rtol=1e-5)
