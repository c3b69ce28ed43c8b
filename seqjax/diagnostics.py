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

Every function takes a cell module of :mod:`seqjax.recurrent.cells` (anything with ``step``,
``output`` and ``initial_carry``) and computes the Jacobians by JAX's autodiff: a
perturbation ``delta_k`` is added to one entry of the carry after step ``k`` and ``h_T``
(or ``c_T``) is differentiated with respect to it. For the LSTM, whose carry is ``(h, c)``,
the ``h`` functions perturb ``h_k`` (gradients still flow through ``c_{k+1..T}`` after it)
and the ``cell_state`` functions perturb ``c_k``, the path of the constant error carousel
(Hochreiter & Schmidhuber 1997), along which one step back multiplies by ``diag(f_t)``.
"""

import jax
import jax.numpy as jnp

from seqjax.recurrent.cells import elman


HIDDEN, CELL_STATE = 0, 1  # entries of a carry: ``h`` (every cell's), the LSTM's ``c``


def _add_to_carry(carry, delta, entry=HIDDEN):
    """The carry with ``delta`` added to its entry ``entry`` (a bare array carry is ``h``)."""
    if not isinstance(carry, tuple):
        if entry != HIDDEN:
            raise ValueError("this cell's carry is its hidden state alone: it has no cell state")
        return carry + delta
    return carry[:entry] + (carry[entry] + delta,) + carry[entry + 1:]


def _carry_entry(cell, carry, entry):
    """``h`` (as the cell reads it out) or the LSTM's ``c`` of a carry."""
    return cell.output(carry) if entry == HIDDEN else carry[entry]


def _final_carry(cell, params, xs, carry, deltas, entry=HIDDEN):
    """The carry after the last step of one sequence ``xs [T, I]``, ``deltas [T, H]`` added to
    its entry ``entry`` after each step (``deltas[k - 1]`` to ``h_k`` or ``c_k``)."""

    def body(carry, x_and_delta):
        x, delta = x_and_delta
        carry, _ = cell.step(params, carry, x)
        return _add_to_carry(carry, delta, entry), None

    final_carry, _ = jax.lax.scan(body, carry, (xs, deltas))
    return final_carry


def _final_hidden(cell, params, xs, carry, deltas, entry=HIDDEN):
    """``h_T`` of one sequence ``xs [T, I]`` with ``deltas [T, H]`` added after each step."""
    return cell.output(_final_carry(cell, params, xs, carry, deltas, entry))


def _zero_deltas(cell, carry, num_steps):
    """Zero perturbations ``[..., T, H]`` for a (possibly batched) ``carry``."""
    hidden = cell.output(carry)
    return jnp.zeros(hidden.shape[:-1] + (num_steps, hidden.shape[-1]), hidden.dtype)


def _carry_jacobians(cell, params, xs, carry, entry):
    """``[T, H, H]``: entry ``k - 1`` is ``de_T / de_k`` for the carry entry ``e`` (h or c)."""
    carry = cell.initial_carry(params) if carry is None else carry
    deltas = _zero_deltas(cell, carry, xs.shape[0])

    def final_entry(deltas):
        return _carry_entry(cell, _final_carry(cell, params, xs, carry, deltas, entry), entry)

    jacobian = jax.jacrev(final_entry)(deltas)
    return jnp.transpose(jacobian, (1, 0, 2))  # [H_out, T, H_in] -> [T, H_out, H_in]


def _loss_gradients(cell, params, xs, loss_of_final_hidden, entry):
    """``[B, T, H]``: ``dL_T / d e_k`` for the carry entry ``e``, a batch ``xs [B, T, I]``."""
    carry = cell.initial_carry(params, (xs.shape[0],))
    deltas = _zero_deltas(cell, carry, xs.shape[1])

    def loss(deltas):
        final = jax.vmap(lambda x, c, d: _final_hidden(cell, params, x, c, d, entry))(
            xs, carry, deltas)
        return loss_of_final_hidden(final)

    return jax.grad(loss)(deltas)


def hidden_jacobians(cell, params, xs, carry=None):
    """``[T, H, H]``: entry ``k - 1`` is ``dh_T / dh_k`` for ``k = 1..T`` of one sequence
    ``xs [T, I]`` (the last is the identity). ``carry`` defaults to the zero state."""
    return _carry_jacobians(cell, params, xs, carry, HIDDEN)


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
    gradients = _loss_gradients(cell, params, xs, loss_of_final_hidden, HIDDEN)
    return jnp.linalg.norm(gradients, axis=-1)


def cell_state_jacobians(cell, params, xs, carry=None):
    """``[T, H, H]``: entry ``k - 1`` is ``dc_T / dc_k``, ``k = 1..T``, of one sequence
    ``xs [T, I]`` for a cell whose carry is ``(h, c)`` (the LSTM); the last is the identity.

    ``c_k`` is perturbed with ``h_k`` held. A step maps ``(h_{t-1}, c_{t-1})`` to ``(h_t, c_t)``
    and its ``c``-to-``c`` block is ``diag(f_t)``; ``dc_T/dc_k`` is the ``c``-block of the product
    of these block Jacobians, so it also counts the paths that leave ``c`` through
    ``h_t = o_t tanh(c_t)`` and return through the gates. Were the gates blind to ``h``, it would
    be ``prod_{t=k+1}^{T} diag(f_t)``.
    """
    return _carry_jacobians(cell, params, xs, carry, CELL_STATE)


def cell_state_jacobian_norms(cell, params, xs):
    """``[B, T]`` spectral norms ``||dc_T / dc_k||_2`` for a batch ``xs [B, T, I]`` from zero
    states."""
    norms_of_one = lambda x: jnp.linalg.norm(cell_state_jacobians(cell, params, x), ord=2,
                                             axis=(1, 2))
    return jax.vmap(norms_of_one)(xs)


def cell_state_loss_gradient_norms(cell, params, xs, loss_of_final_hidden):
    """``[B, T]`` norms ``||dL_T / dc_k||`` of a cell whose carry is ``(h, c)`` (the LSTM).

    The gradient that back-propagation through time carries into step ``k + 1`` along the cell
    state: with ``c_{k+1} = f_{k+1} c_k + i_{k+1} g_{k+1}`` and ``h_{k+1} = o_{k+1} tanh(c_{k+1})``,

    .. math::

        \\frac{\\partial L_T}{\\partial c_k} = f_{k+1} \\odot \\Big(
        \\frac{\\partial L_T}{\\partial c_{k+1}} + o_{k+1} \\odot (1 - \\tanh^2 c_{k+1})
        \\odot \\frac{\\partial L_T}{\\partial h_{k+1}}\\Big),
        \\qquad \\frac{\\partial L_T}{\\partial c_T} = 0,

    every step back multiplying by ``f`` (the constant error carousel when ``f = 1``).
    ``dL_T/dc_T`` is zero because the loss reads ``h_T``, which the carry holds already.
    ``loss_of_final_hidden(h_T [B, H]) -> scalar`` as in :func:`loss_gradient_norms`.
    """
    gradients = _loss_gradients(cell, params, xs, loss_of_final_hidden, CELL_STATE)
    return jnp.linalg.norm(gradients, axis=-1)


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
