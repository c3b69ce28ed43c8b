"""Gradient-flow diagnostics: the analytic linear recurrence, finite differences, the
lecture's hand BPTT sum against jax.grad term by term, and the LSTM's cell-state path."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import diagnostics
from seqjax.recurrent.cells import elman, get_cell, lstm


def linear_cell(a):
    """``h_t = a h_{t-1} + x_t``: its Jacobian ``dh_T/dh_k`` is exactly ``a^(T-k) I``."""
    return types.SimpleNamespace(
        step=lambda params, h, x: (a * h + x, a * h + x),
        output=lambda carry: carry,
        initial_carry=lambda params, batch_shape=(): jnp.zeros(tuple(batch_shape) + (3,)),
    )


@pytest.mark.parametrize("a", [0.5, 1.0, 1.1])
def test_linear_recurrence_gives_a_to_the_power_T_minus_k(a):
    T = 12
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(2, T, 3)), jnp.float32)
    norms = diagnostics.jacobian_norms(linear_cell(a), {}, xs)
    expected = a ** (T - np.arange(1, T + 1))
    np.testing.assert_allclose(norms, np.broadcast_to(expected, (2, T)), rtol=1e-5)
    jacobians = diagnostics.hidden_jacobians(linear_cell(a), {}, xs[0])
    np.testing.assert_allclose(jacobians[3], a ** (T - 4) * np.eye(3), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["elman", "lstm", "gru"])
def test_jacobians_agree_with_finite_differences(name):
    cell = get_cell(name)
    params = cell.init(jax.random.PRNGKey(1), input_size=2, hidden_size=4)
    xs = jax.random.normal(jax.random.PRNGKey(2), (7, 2))
    jacobians = diagnostics.hidden_jacobians(cell, params, xs)
    direction = jnp.array([0.3, -0.5, 0.2, 0.7])
    k, eps = 2, 1e-3  # perturb h after step index k (h_{k+1}, 1-based)

    def final_hidden(step_delta):
        deltas = jnp.zeros((7, 4)).at[k].set(step_delta)
        return diagnostics._final_hidden(cell, params, xs, cell.initial_carry(params), deltas)

    numeric = (final_hidden(eps * direction) - final_hidden(-eps * direction)) / (2 * eps)
    np.testing.assert_allclose(jacobians[k] @ direction, numeric, rtol=2e-2, atol=2e-4)
    np.testing.assert_allclose(jacobians[-1], np.eye(4), atol=1e-6)


def test_loss_gradient_norms_are_the_chain_rule_through_the_jacobians():
    params = elman.init(jax.random.PRNGKey(3), input_size=2, hidden_size=5)
    xs = jax.random.normal(jax.random.PRNGKey(4), (3, 9, 2))
    readout = jnp.arange(5.0) / 5.0
    loss = lambda h_T: jnp.sum((h_T @ readout - 1.0) ** 2)
    norms = diagnostics.loss_gradient_norms(elman, params, xs, loss)
    for b in range(3):
        jacobians = diagnostics.hidden_jacobians(elman, params, xs[b])
        h_T = diagnostics.elman_hidden_states(params, xs[b], jnp.zeros(5))[-1]
        dL_dhT = 2 * (h_T @ readout - 1.0) * readout
        expected = np.linalg.norm(np.einsum("kij,i->kj", jacobians, dL_dhT), axis=-1)
        np.testing.assert_allclose(norms[b], expected, rtol=1e-4, atol=1e-7)


def test_hand_bptt_terms_equal_jax_grad_term_by_term():
    T, H = 6, 4
    params = elman.init(jax.random.PRNGKey(5), input_size=3, hidden_size=H)
    xs = jax.random.normal(jax.random.PRNGKey(6), (T, 3))
    target = jax.random.normal(jax.random.PRNGKey(7), (H,))
    loss_of_h = lambda h: 0.5 * jnp.sum((h - target) ** 2)

    def loss_with_a_copy_of_W_h_per_step(W_hs):  # W_hs [T, H, H]: step k uses W_hs[k]
        h = jnp.zeros(H)
        for k in range(T):
            h, _ = elman.step({**params, "W_h": W_hs[k]}, h, xs[k])
        return loss_of_h(h)

    per_step = jax.grad(loss_with_a_copy_of_W_h_per_step)(jnp.stack([params["W_h"]] * T))
    h_T = diagnostics.elman_hidden_states(params, xs, jnp.zeros(H))[-1]
    terms = diagnostics.elman_bptt_terms(params, xs, h_T - target)
    np.testing.assert_allclose(terms, per_step, rtol=1e-4, atol=1e-6)
    total = jax.grad(lambda W: loss_with_a_copy_of_W_h_per_step(jnp.stack([W] * T)))(params["W_h"])
    np.testing.assert_allclose(terms.sum(0), total, rtol=1e-4, atol=1e-6)


def test_spectral_norm_rescaling():
    params = elman.init(jax.random.PRNGKey(8), input_size=2, hidden_size=6)
    for sigma in (0.5, 1.0, 1.5):
        scaled = diagnostics.with_recurrent_spectral_norm(params, sigma)
        np.testing.assert_allclose(diagnostics.largest_singular_value(scaled["W_h"]), sigma,
                                   rtol=1e-5)
        np.testing.assert_allclose(np.linalg.svd(scaled["W_h"], compute_uv=False)[0], sigma,
                                   rtol=1e-5)


def test_elman_below_one_decays_exponentially():
    params = diagnostics.with_recurrent_spectral_norm(
        elman.init(jax.random.PRNGKey(9), input_size=1, hidden_size=8), 0.8
    )
    xs = jax.random.normal(jax.random.PRNGKey(10), (4, 30, 1))
    norms = np.asarray(diagnostics.jacobian_norms(elman, params, xs)).mean(0)
    distance = 30 - np.arange(1, 31)
    assert np.all(norms <= 0.8 ** distance * (1 + 1e-5))  # ||prod J|| <= prod ||W_h|| |tanh'|



def lstm_final_carry_after_nudging_c(params, xs, nudges):
    """The final ``(h_T, c_T)`` of a batch ``xs [B, T, I]`` with ``nudges[:, k - 1]`` added to
    ``c_k`` after step ``k``: a Python loop over the steps, independent of the diagnostics' scan."""
    carry = lstm.initial_carry(params, (xs.shape[0],))
    for t in range(xs.shape[1]):
        carry, _ = jax.vmap(lstm.step, (None, 0, 0))(params, carry, xs[:, t])
        carry = (carry[0], carry[1] + nudges[:, t])
    return carry


def central_differences(function, shape, eps=1e-6):
    """``d function / d nudges`` at zero nudges ``[*shape]``, one coordinate at a time (float64)."""
    derivatives = None
    for index in np.ndindex(*shape):
        step = jnp.zeros(shape, jnp.float64).at[index].set(eps)
        derivative = np.asarray((function(step) - function(-step)) / (2 * eps))
        if derivatives is None:
            derivatives = np.zeros(shape + derivative.shape)
        derivatives[index] = derivative
    return derivatives


def test_cell_state_loss_gradients_agree_with_finite_differences():
    with jax.enable_x64(True):
        B, T, H = 2, 6, 3
        params = lstm.init(jax.random.PRNGKey(11), input_size=2, hidden_size=H, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.PRNGKey(12), (B, T, 2), jnp.float64)
        readout = jnp.array([0.5, -1.0, 2.0])
        loss = lambda h_T: jnp.mean((h_T @ readout - 1.0) ** 2)
        norms = diagnostics.cell_state_loss_gradient_norms(lstm, params, xs, loss)
        nudged_loss = jax.jit(lambda n: loss(lstm_final_carry_after_nudging_c(params, xs, n)[0]))
        numeric = central_differences(nudged_loss, (B, T, H))  # [B, T, H]
        assert norms.dtype == jnp.float64 and norms.shape == (B, T)
        np.testing.assert_allclose(norms, np.linalg.norm(numeric, axis=-1), rtol=1e-7, atol=1e-12)
        assert np.all(norms[:, -1] == 0)  # the loss reads h_T, held in the carry before c_T


def test_cell_state_jacobians_agree_with_finite_differences():
    with jax.enable_x64(True):
        T, H = 5, 3
        params = lstm.init(jax.random.PRNGKey(13), input_size=2, hidden_size=H, dtype=jnp.float64)
        xs = jax.random.normal(jax.random.PRNGKey(14), (1, T, 2), jnp.float64)
        jacobians = diagnostics.cell_state_jacobians(lstm, params, xs[0])  # [T, H_out, H_in]
        final_c = jax.jit(lambda n: lstm_final_carry_after_nudging_c(params, xs, n)[1][0])
        numeric = central_differences(final_c, (1, T, H))[0]  # [T, H_in, H_out]
        np.testing.assert_allclose(jacobians, np.transpose(numeric, (0, 2, 1)), rtol=1e-7,
                                   atol=1e-12)
        np.testing.assert_allclose(jacobians[-1], np.eye(H), atol=1e-15)
        norms = diagnostics.cell_state_jacobian_norms(lstm, params, xs)
        np.testing.assert_allclose(norms[0], np.linalg.norm(jacobians, ord=2, axis=(1, 2)))


def lstm_with_gate_biases(key, hidden_size, input_gate, forget_gate, output_gate):
    """LSTM parameters (input size 2) whose gates ``i, f, o`` have the given biases."""
    params = lstm.init(key, input_size=2, hidden_size=hidden_size)
    biases = jnp.zeros((4, hidden_size)).at[0].set(input_gate).at[1].set(forget_gate)
    return {**params, "b": biases.at[3].set(output_gate).reshape(-1)}


def test_constant_forget_gate_gives_f_to_the_power_T_minus_k():
    # W_h = W_x = 0: every gate is its bias, so dc_T/dc_k = f^(T - k) I exactly.
    T, H, f = 9, 4, jax.nn.sigmoid(0.5)
    params = lstm_with_gate_biases(jax.random.PRNGKey(15), H, 0.0, 0.5, 0.0)
    params = {**params, "W_h": jnp.zeros_like(params["W_h"]), "W_x": jnp.zeros_like(params["W_x"])}
    xs = jax.random.normal(jax.random.PRNGKey(16), (T, 2))
    jacobians = diagnostics.cell_state_jacobians(lstm, params, xs)
    expected = f ** (T - np.arange(1, T + 1))
    np.testing.assert_allclose(jacobians, expected[:, None, None] * np.eye(H), rtol=1e-5,
                               atol=1e-7)


def test_saturated_gates_carry_the_loss_gradient_unchanged_along_the_cell_state():
    # f = 1, i = 0: c_t = c_{t-1}, so dc_T/dc_k = I. o = 1 too, so h_t = tanh(c_t) drives only
    # saturated gates (and g, which i = 0 multiplies away): the loss reaches c_k through c_T
    # alone, dL/dc_k = dL/dh_T (1 - tanh^2 c_T) for every k < T, while dL/dh_k = 0 for k < T.
    B, T, H = 3, 12, 4
    params = lstm_with_gate_biases(jax.random.PRNGKey(17), H, -40.0, 40.0, 40.0)
    xs = jax.random.normal(jax.random.PRNGKey(18), (B, T, 2))
    jacobians = diagnostics.cell_state_jacobians(lstm, params, xs[0])
    np.testing.assert_allclose(jacobians, np.broadcast_to(np.eye(H), (T, H, H)), atol=1e-6)

    readout = jnp.array([1.0, -2.0, 0.5, 3.0])
    loss = lambda h_T: jnp.sum(h_T @ readout)  # dL/dh_T = readout for every sequence
    norms = diagnostics.cell_state_loss_gradient_norms(lstm, params, xs, loss)
    c_T = jnp.zeros((B, H))  # c stays at its zero start: i = 0 writes nothing
    expected = np.linalg.norm(readout * (1 - jnp.tanh(c_T) ** 2), axis=-1)  # [B]
    np.testing.assert_allclose(norms[:, :-1], np.broadcast_to(expected[:, None], (B, T - 1)),
                               rtol=1e-6)
    assert np.all(norms[:, -1] == 0)
    hidden_norms = diagnostics.loss_gradient_norms(lstm, params, xs, loss)
    assert np.all(hidden_norms[:, :-1] < 1e-6) and np.all(hidden_norms[:, -1] > 1)
