"""Gradient-flow diagnostics: how far back through time a recurrent cell's gradient reaches.

Back-propagation through time multiplies one Jacobian per step,

.. math::

    \\frac{\\partial h_T}{\\partial h_k} = \\prod_{t=k+1}^{T} \\frac{\\partial h_t}{\\partial h_{t-1}},
    \\qquad
    \\frac{\\partial L_T}{\\partial W_h} = \\sum_{k=1}^{T} \\frac{\\partial L_T}{\\partial h_T}
    \\frac{\\partial h_T}{\\partial h_k} \\frac{\\partial^+ h_k}{\\partial W_h},

so the norm of ``dh_T/dh_k`` as ``T - k`` grows says whether early steps can still teach the
model. For the Elman cell, ``||dh_t/dh_{t-1}|| <= ||W_h|| max|tanh'|``, so the product decays
exponentially once the largest singular value of ``W_h`` is below 1 (Pascanu et al. 2013).

Every function takes a cell module of :mod:`seqjax.cells` (anything with ``step``,
``output`` and ``initial_carry``) and computes the Jacobians by JAX's autodiff: a
perturbation ``delta_k`` is added to the hidden state after step ``k`` and ``h_T`` is
differentiated with respect to it. For the LSTM the perturbed state is ``h_k``; gradients
still flow through the cell state ``c_{k+1..T}`` after it.
"""

import jax
import jax.numpy as jnp

from seqjax.cells import elman


def _add_to_hidden(carry, delta):
    """The carry with ``delta`` added to its hidden state ``h`` (the first entry of a tuple)."""
    if isinstance(carry, tuple):
        return (carry[0] + delta,) + tuple(carry[1:])
    return carry + delta


def _final_hidden(cell, params, xs, carry, deltas):
    """``h_T`` of one sequence ``xs [T, I]`` with ``deltas [T, H]`` added after each step."""

    def body(carry, x_and_delta):
        x, delta = x_and_delta
        carry, _ = cell.step(params, carry, x)
        return _add_to_hidden(carry, delta), None

    final_carry, _ = jax.lax.scan(body, carry, (xs, deltas))
    return cell.output(final_carry)


def _zero_deltas(cell, carry, num_steps):
    """Zero perturbations ``[..., T, H]`` for a (possibly batched) ``carry``."""
    hidden = cell.output(carry)
    return jnp.zeros(hidden.shape[:-1] + (num_steps, hidden.shape[-1]), hidden.dtype)


def hidden_jacobians(cell, params, xs, carry=None):
    """``[T, H, H]``: entry ``k - 1`` is ``dh_T / dh_k`` for ``k = 1..T`` of one sequence
    ``xs [T, I]`` (the last is the identity). ``carry`` defaults to the zero state."""
    carry = cell.initial_carry(params) if carry is None else carry
    deltas = _zero_deltas(cell, carry, xs.shape[0])
    jacobian = jax.jacrev(lambda d: _final_hidden(cell, params, xs, carry, d))(deltas)
    return jnp.transpose(jacobian, (1, 0, 2))  # [H_out, T, H_in] -> [T, H_out, H_in]


def jacobian_norms(cell, params, xs):
    """``[B, T]`` spectral norms ``||dh_T / dh_k||_2``, ``k = 1..T``, for a batch ``xs [B, T, I]``
    started from zero states; column ``k - 1`` is ``T - k`` steps back from the end."""
    norms_of_one = lambda x: jnp.linalg.norm(hidden_jacobians(cell, params, x), ord=2, axis=(1, 2))
    return jax.vmap(norms_of_one)(xs)


def loss_gradient_norms(cell, params, xs, loss_of_final_hidden):
    """``[B, T]`` norms ``||dL_T / dh_k||`` for a batch ``xs [B, T, I]`` from zero states.

    ``loss_of_final_hidden(h_T [B, H]) -> scalar`` is the loss read out of the last state
    (e.g. the adding problem's squared error of a linear head).
    """
    carry = cell.initial_carry(params, (xs.shape[0],))
    deltas = _zero_deltas(cell, carry, xs.shape[1])

    def loss(deltas):
        final = jax.vmap(lambda x, c, d: _final_hidden(cell, params, x, c, d))(xs, carry, deltas)
        return loss_of_final_hidden(final)

    return jnp.linalg.norm(jax.grad(loss)(deltas), axis=-1)


def largest_singular_value(matrix):
    """``sigma_max(W)``, the spectral norm of a matrix (for a gated cell's stacked ``[kH, H]``
    ``W_h``, of the whole stack: see :func:`largest_gate_singular_value`)."""
    return jnp.linalg.norm(matrix, ord=2)


def largest_gate_singular_value(W_h):
    """The largest ``sigma_max`` of the ``[H, H]`` per-gate blocks of a stacked ``W_h [kH, H]``
    (for the Elman cell, ``k = 1``: its ``sigma_max``)."""
    blocks = W_h.reshape(W_h.shape[0] // W_h.shape[1], W_h.shape[1], W_h.shape[1])
    return jnp.max(jnp.linalg.norm(blocks, ord=2, axis=(1, 2)))


def with_recurrent_spectral_norm(params, sigma):
    """A copy of a cell's ``params`` with ``W_h`` rescaled so that ``sigma_max(W_h) = sigma``."""
    W_h = params["W_h"]
    return {**params, "W_h": W_h * (sigma / largest_singular_value(W_h))}


def elman_hidden_states(params, xs, h0):
    """``[T + 1, H]``: ``h_0`` and the Elman states ``h_1..h_T`` of one sequence ``xs [T, I]``."""
    _, hs = jax.lax.scan(lambda h, x: elman.step(params, h, x), h0, xs)
    return jnp.concatenate([h0[None], hs], axis=0)


def elman_bptt_terms(params, xs, dL_dhT, h0=None):
    """The lecture's BPTT sum for the Elman cell, one term per step: ``[T, H, H]``.

    Term ``k`` is ``dL/dh_T  dh_T/dh_k  d+h_k/dW_h``: the loss gradient carried back to
    ``h_k`` (through :func:`hidden_jacobians`), times the immediate dependence of
    ``h_k = tanh(a_k)``, ``a_k = W_h h_{k-1} + W_x x_k + b``, on ``W_h``:
    ``(dL/da_k) h_{k-1}^T`` with ``dL/da_k = (1 - h_k^2) * (dh_T/dh_k)^T dL/dh_T``.
    Their sum over ``k`` is ``dL/dW_h`` for a loss ``L(h_T)`` with gradient ``dL_dhT [H]``.
    """
    h0 = elman.initial_carry(params) if h0 is None else h0
    states = elman_hidden_states(params, xs, h0)
    jacobians = hidden_jacobians(elman, params, xs, h0)  # [T, H, H]: dh_T/dh_k
    dL_dh = jnp.einsum("kij,i->kj", jacobians, dL_dhT)  # dL/dh_k = (dh_T/dh_k)^T dL/dh_T
    dL_da = (1.0 - states[1:] ** 2) * dL_dh
    return jnp.einsum("ki,kj->kij", dL_da, states[:-1])
