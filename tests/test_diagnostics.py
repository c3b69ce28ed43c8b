"""Gradient-flow diagnostics: the analytic linear recurrence, finite differences, and the
lecture's hand BPTT sum against jax.grad term by term."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import diagnostics
from seqjax.cells import elman, get_cell


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
