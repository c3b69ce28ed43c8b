"""Fast recurrent layers for training: batched unrolling with a hand-written BPTT.

:func:`fused_unroll` computes exactly what ``jax.vmap(seqjax.recurrent.unroll.unroll)`` computes
with a cell of :mod:`seqjax.recurrent.cells` (same parameter dict, same carry), but is organised for
speed, because a recurrence is a long chain of small matrix products.

Inside, the batch is stored as the COLUMNS of ``[features, B]`` matrices, i.e. the lecture's
column-vector equations applied to ``B`` columns at once: ``z_t = W_h h_{t-1} + W_x x_t + b``
with ``h_{t-1}: [H, B]``. The weights are then the left operand of every per-step product,
the orientation XLA:CPU's dot library runs fastest for large weights (at H=1024 a step's
product is 2.4x faster than as ``h [B, H] x W_h^T``; at H=256 they are level).

1. The forward scan computes ``z_t`` and the gate nonlinearities, and saves the gates' local
   derivatives, so that the backward scan only multiplies and adds. Per step, a cell whose
   ``z_t`` is a plain sum (Elman, LSTM) makes its two products ONE,
   ``[W_h W_x] [h_{t-1}; x_t]``; hoisted, ``W_x X`` is ONE big matmul before the scan instead.
2. The gradient is a ``jax.custom_vjp``, back-propagation through time as derived in the
   lecture. With ``z_t`` the pre-activations (all gates stacked) and ``L`` the loss:

   .. math::

       \\frac{\\partial L}{\\partial h_t} &= \\bar h_t + W_h^T \\delta_{t+1},
           \\qquad \\bar h_t = \\text{the cotangent of the output } h_t \\\\
       \\delta_t = \\frac{\\partial L}{\\partial z_t} &= \\text{cell-local, e.g. Elman: }
           \\frac{\\partial L}{\\partial h_t} \\odot (1 - h_t^2) \\\\
       \\frac{\\partial L}{\\partial W_h} = \\sum_t \\delta_t h_{t-1}^T, \\quad
       \\frac{\\partial L}{\\partial W_x} &= \\sum_t \\delta_t x_t^T, \\quad
       \\frac{\\partial L}{\\partial b} = \\sum_t \\delta_t, \\quad
       \\frac{\\partial L}{\\partial x_t} = W_x^T \\delta_t

   The backward scan (:func:`_fused_backward`) runs the first two lines, one
   ``[H, kH] x [kH, B]`` product a step, in chunks of ``K`` steps (16 by default, the last
   chunk first); after each chunk its weight gradients (:func:`_parameter_gradients`) are ONE
   matmul over the chunk's stacked ``delta: [kH, K, B]``, instead of ``K`` small outer
   products, and without a ``[kH, T, B]`` stack of every step's ``delta``.

Mixed precision (``compute_dtype=jnp.bfloat16``): every matrix product above, forward and
backward, runs in bfloat16 with a float32 result; the carry, the gates, the saved local
derivatives, ``delta_t`` and the weight gradients summed over the chunks stay float32.

The cell-local ``delta_t`` of each cell is in its ``_*_backward_step`` below. The GRU
(reset-after) has two: ``delta_x`` for its input pre-activation and ``delta_h`` for its
recurrent product, which differ in the candidate block (``r_t`` multiplies ``W^n_h h``).

Shapes inside: ``[T, features, B]``; inputs and outputs are batch-major as in the layers.
Measurements behind each choice: docs/benchmarks.md.
"""

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec

from seqjax.precision import einsum, matmul

# ----------------------------------------------------------------------------- Elman
# Every array below is [features, B]: one column per example.


def _elman_forward_step(params, h_prev, z):
    """``h_t = tanh(z_t)``, ``z_t = W_h h_{t-1} + W_x x_t + b``; the backward pass needs only ``h_t``."""
    return jnp.tanh(z), None


def _elman_backward_step(back, params, h, dh):
    """``delta_t = dL/dh_t * (1 - h_t^2)``; ``dL/dh_{t-1} = W_h^T delta_t``."""
    delta = dh * (1.0 - h * h)
    return back(delta), delta, None


# ----------------------------------------------------------------------------- LSTM


def _lstm_forward_step(params, carry, z):
    """Gates from ``z_t = W_h h_{t-1} + W_x x_t + b``; saves the local derivatives (``[6H, B]``).

    Saved: ``dz/dc = [g i(1-i), c_{t-1} f(1-f), i(1-g^2)]`` for gates ``i, f, g``,
    ``dz_o/dh = tanh(c_t) o(1-o)``, ``dc_t/dh_t = o (1 - tanh(c_t)^2)`` and ``f``.
    """
    _, c_prev = carry
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=0)
    i, f, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jax.nn.sigmoid(z_o)
    g = jnp.tanh(z_g)
    c = f * c_prev + i * g
    tanh_c = jnp.tanh(c)
    h = o * tanh_c
    local = [g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g),
             tanh_c * o * (1.0 - o), o * (1.0 - tanh_c * tanh_c), f]
    return (h, c), jnp.concatenate(local, axis=0)


def _lstm_backward_step(back, params, saved, d_carry):
    """LSTM ``delta_t`` from ``dL/dh_t`` and ``dL/dc_t`` (the cell state's own path).

    ``dc = dL/dc_t + dh * o (1 - tanh(c_t)^2)``;
    ``delta = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), dh tanh(c_t) o(1-o)]``;
    ``dL/dh_{t-1} = W_h^T delta``, ``dL/dc_{t-1} = dc * f``.
    """
    dh, dc = d_carry
    hidden_size, batch = dh.shape
    d_gates, dc_dh, f = jnp.split(saved, [4 * hidden_size, 5 * hidden_size], axis=0)
    dc = dc + dh * dc_dh
    upstream = jnp.stack([dc, dc, dc, dh])  # gates i, f, g act through c; o through h
    delta = (upstream * d_gates.reshape(4, hidden_size, batch)).reshape(4 * hidden_size, batch)
    return (back(delta), dc * f), delta, None


# ----------------------------------------------------------------------------- GRU


def _gru_forward_step(params, h_prev, z_h, z_x):
    """Reset-after GRU from ``z_h = W_h h_{t-1}`` and ``z_x = W_x x_t + b``; saves the local
    derivatives ``[dz_r/dh, dz_u/dh, dz_n/dh, r, u]``.

    ``dz_n/dh = (1-u)(1-n^2)``, ``dz_r/dh = dz_n/dh (W^n_h h_{t-1} + b^n_h) r(1-r)``,
    ``dz_u/dh = (h_{t-1} - n) u(1-u)``, each ``[H, B]``.
    """
    x_r, x_u, x_n = jnp.split(z_x, 3, axis=0)
    h_r, h_u, h_n = jnp.split(z_h, 3, axis=0)
    r = jax.nn.sigmoid(x_r + h_r)
    u = jax.nn.sigmoid(x_u + h_u)
    h_n = h_n + params["b_hn"][:, None]
    n = jnp.tanh(x_n + r * h_n)
    h = n + u * (h_prev - n)
    dn = (1.0 - u) * (1.0 - n * n)
    local = [dn * h_n * r * (1.0 - r), (h_prev - n) * u * (1.0 - u), dn, r, u]
    return h, jnp.concatenate(local, axis=0)


def _gru_backward_step(back, params, saved, dh):
    """GRU ``delta_x`` (input pre-activations) and ``delta_h`` (recurrent product).

    ``delta_n = dh (1-u)(1-n^2)``, ``delta_r = delta_n (W^n_h h + b^n_h) r(1-r)``,
    ``delta_u = dh (h_{t-1} - n) u(1-u)``; ``delta_x = [delta_r, delta_u, delta_n]``,
    ``delta_h = [delta_r, delta_u, r delta_n]``; ``dL/dh_{t-1} = dh u + W_h^T delta_h``.
    """
    hidden_size, batch = dh.shape
    d_gates, r, u = jnp.split(saved, [3 * hidden_size, 4 * hidden_size], axis=0)
    delta_x = dh[None] * d_gates.reshape(3, hidden_size, batch)
    ones = jnp.ones_like(r)
    delta_h = delta_x * jnp.stack([ones, ones, r])  # r multiplies W^n_h h_{t-1}
    delta_x = delta_x.reshape(3 * hidden_size, batch)
    delta_h = delta_h.reshape(3 * hidden_size, batch)
    return dh * u + back(delta_h), delta_x, delta_h


# ----------------------------------------------------------------------------- driver


class _CellRule(NamedTuple):
    """How to run one cell forward and backward, one time step at a time."""

    num_gates: int
    # whether z_t = W_h h_{t-1} + W_x x_t + b is all the cell needs (Elman, LSTM), so that one
    # product [W_h W_x] [h_{t-1}; x_t] can make it; the GRU needs W_h h_{t-1} on its own
    sums_products: bool
    # (params, carry, *preactivations) -> (carry, saved_t), preactivations = (z_t,) if
    # sums_products else (W_h h_{t-1}, W_x x_t + b); saved_t is what the backward step reads
    # (None: it reads the new carry, all the Elman cell needs)
    forward_step: Callable
    # (back, params, saved_t, d_carry) -> (d_prev_carry, delta_x, delta_h or None if == delta_x),
    # back(delta) = W_h^T delta
    backward_step: Callable
    hidden: Callable  # carry -> h


_RULES = {
    "elman": _CellRule(1, True, _elman_forward_step, _elman_backward_step, lambda carry: carry),
    "lstm": _CellRule(4, True, _lstm_forward_step, _lstm_backward_step, lambda carry: carry[0]),
    "gru": _CellRule(3, False, _gru_forward_step, _gru_backward_step, lambda carry: carry),
}


class _Options(NamedTuple):
    """Static (hashable) settings of the fused scans."""

    unroll: int
    hoist_input_projection: bool
    gradient_chunk: int
    dtype: jnp.dtype  # compute dtype of the matrix products


def _prefetching_scan(step, carry, xs, *, unroll=1):
    """``jax.lax.scan`` of ``step(carry, xs[t])``, reading ``xs[t + 1]`` during step ``t``.

    XLA:CPU does not vectorize a loop fusion that both slices a scanned array and computes
    ``exp``/``tanh`` (the LSTM gates ran ~8x slower per step); carrying the next step's slice
    in the loop state keeps each slice a plain copy, and the gate math reads plain buffers.
    """
    num_steps = jax.tree.leaves(xs)[0].shape[0]

    def read(t):
        return jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, t, keepdims=False), xs)

    def body(state, t):
        carry, xs_t = state
        carry, ys_t = step(carry, xs_t)
        return (carry, read(jnp.minimum(t + 1, num_steps - 1))), ys_t

    (carry, _), ys = jax.lax.scan(body, (carry, read(0)), jnp.arange(num_steps), unroll=unroll)
    return carry, ys


def _masked(mask_t, new, old):
    """``new`` where ``mask_t`` (``[1, B]`` booleans), else ``old``, leaf by leaf."""
    return jax.tree.map(lambda a, b: jnp.where(mask_t, a, b), new, old)


def _preactivations(rule, params, xs, hoist, dtype):
    """What the forward scan reads per step, and how a step turns it into pre-activations.

    Returns ``(per_step, preactivations)`` with ``preactivations(h_prev, per_step_t)`` the
    tuple :attr:`_CellRule.forward_step` takes. Hoisted: ``W_x X`` for all ``T * B`` columns as
    ONE matmul before the scan. Per step: ``[W_h W_x] [h_{t-1}; x_t]``, ONE product, for a cell
    that sums its products; ``W_h h_{t-1}`` and ``W_x x_t`` for the GRU.
    """
    W_h, W_x = params["W_h"].astype(dtype), params["W_x"].astype(dtype)
    bias = params["b"][:, None] if "b" in params else 0.0
    if hoist:
        def preactivations(h_prev, z_x_t):
            if rule.sums_products:
                return (matmul(W_h, h_prev) + z_x_t + bias,)
            return matmul(W_h, h_prev), z_x_t + bias

        return einsum("gi,tbi->tgb", W_x, xs, dtype), preactivations
    if rule.sums_products:
        W_hx = jnp.concatenate([W_h, W_x], axis=1)  # [kH, H + I]
        return jnp.swapaxes(xs, 1, 2), lambda h_prev, x_t: (
            matmul(W_hx, jnp.concatenate([h_prev, x_t], axis=0)) + bias,
        )
    return jnp.swapaxes(xs, 1, 2), lambda h_prev, x_t: (
        matmul(W_h, h_prev), matmul(W_x, x_t) + bias
    )


def _scan_forward(rule, options, params, xs, carry, mask, save):
    """Forward scan: ``(final_carry, hs [T, B, H], saved [T, ., B] or None)``, ``hs`` unmasked."""
    per_step, preactivations = _preactivations(
        rule, params, xs, options.hoist_input_projection, options.dtype
    )

    def body(carry, inputs):
        v_t, mask_t = inputs
        new_carry, saved = rule.forward_step(params, carry, *preactivations(rule.hidden(carry), v_t))
        if mask_t is not None:
            new_carry = _masked(mask_t, new_carry, carry)
        return new_carry, (rule.hidden(new_carry).T, saved if save else None)

    final_carry, (hs, saved) = _prefetching_scan(body, carry, (per_step, mask), unroll=options.unroll)
    return final_carry, hs, saved


def _outputs(hs, mask):
    """``hs [T, B, H]`` zeroed past each sequence's end (``mask: [T, 1, B]``)."""
    return hs if mask is None else jnp.where(jnp.swapaxes(mask, 1, 2), hs, 0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _fused(cell_name, options, params, xs, carry, mask):
    """Core: ``xs: [T, B, I]``, carry leaves ``[H, B]``, ``mask: [T, 1, B]`` or None.

    Returns ``(final_carry, hs: [T, B, H])``.
    """
    rule = _RULES[cell_name]
    final_carry, hs, _ = _scan_forward(rule, options, params, xs, carry, mask, save=False)
    return final_carry, _outputs(hs, mask)


def _fused_forward(cell_name, options, params, xs, carry, mask):
    rule = _RULES[cell_name]
    final_carry, hs, saved = _scan_forward(rule, options, params, xs, carry, mask, save=True)
    residuals = (params, xs, carry, mask, hs, saved)
    return (final_carry, _outputs(hs, mask)), residuals


def _add_to_hidden(d_carry, d_h):
    """Add an output cotangent to the hidden-state part of a carry cotangent (``h`` or ``(h, c)``)."""
    if isinstance(d_carry, tuple):
        return (d_carry[0] + d_h, *d_carry[1:])
    return d_carry + d_h


def _backward_step(rule, back, params, d_carry, inputs):
    """One step of the backward scan: ``dL/dh_t``, the cell's ``delta_t``, ``dL/d carry_{t-1}``.

    ``d_carry`` is the carry cotangent flowing back from step ``t + 1``. Returns it for step
    ``t - 1``, and ``(delta_x, delta_h)`` of step ``t`` (``delta_h`` None when it is ``delta_x``).
    """
    d_h_t, mask_t, saved_t = inputs
    d_h_t = d_h_t.T  # [H, B]
    if mask_t is not None:  # a padded step's output is a constant zero
        d_h_t = jnp.where(mask_t, d_h_t, 0.0)
    d_carry = _add_to_hidden(d_carry, d_h_t)  # dL/dh_t = hbar_t + W_h^T delta_{t+1}
    d_new = d_carry
    if mask_t is not None:
        d_new = _masked(mask_t, d_carry, jax.tree.map(jnp.zeros_like, d_carry))
    d_prev, delta_x, delta_h = rule.backward_step(back, params, saved_t, d_new)
    if mask_t is not None:  # a padded step passes its carry's gradient straight through
        d_prev = jax.tree.map(lambda a, d: a + jnp.where(mask_t, 0.0, d), d_prev, d_carry)
    return d_prev, (delta_x, delta_h)


def _fused_backward(cell_name, options, residuals, cotangents):
    """BPTT chunk by chunk, the last first: each chunk's backward scan, then its weight gradients.

    A chunk is ``K = options.gradient_chunk`` consecutive steps; when ``K`` does not divide
    ``T``, the first ``T mod K`` steps form one shorter chunk, done last.
    """
    rule = _RULES[cell_name]
    params, xs, carry, mask, hs, saved = residuals
    d_final, d_hs = cotangents
    W_h_transposed = params["W_h"].T.astype(options.dtype)

    def back(delta):
        return matmul(W_h_transposed, delta)

    step = functools.partial(_backward_step, rule, back, params)
    saved = jnp.swapaxes(hs, 1, 2) if saved is None else saved  # Elman reads h_t, [T, H, B]
    h_prev = jnp.concatenate([rule.hidden(carry).T[None], hs[:-1]], axis=0)  # h_{t-1}, [T, B, H]
    per_step = (d_hs, mask, saved, h_prev, xs)  # every leaf [T, ...]

    def backward_chunk(d_carry, chunk):
        """Backward scan over one chunk's steps, then the chunk's gradients and ``dL/dx_t``."""
        d_hs_c, mask_c, saved_c, h_prev_c, xs_c = chunk
        d_carry, deltas = jax.lax.scan(
            step, d_carry, (d_hs_c, mask_c, saved_c), reverse=True, unroll=options.unroll
        )
        columns = [None if d is None else jnp.transpose(d, (1, 0, 2)) for d in deltas]  # [kH, K, B]
        grads, d_xs = _parameter_gradients(params, xs_c, h_prev_c, *columns, options.dtype)
        return d_carry, grads, d_xs

    def full_chunk(state, chunk):
        d_carry, grads = state
        d_carry, chunk_grads, d_xs = backward_chunk(d_carry, chunk)
        return (d_carry, jax.tree.map(jnp.add, grads, chunk_grads)), d_xs

    num_steps = xs.shape[0]
    size = min(options.gradient_chunk, num_steps)
    head = num_steps % size
    chunks = jax.tree.map(lambda a: a[head:].reshape((-1, size) + a.shape[1:]), per_step)
    zero_grads = jax.tree.map(jnp.zeros_like, params)
    (d_carry, grads), d_xs = jax.lax.scan(full_chunk, (d_final, zero_grads), chunks, reverse=True)
    d_xs = d_xs.reshape((-1,) + xs.shape[1:])
    if head:
        d_carry, head_grads, d_xs_head = backward_chunk(
            d_carry, jax.tree.map(lambda a: a[:head], per_step)
        )
        grads = jax.tree.map(jnp.add, grads, head_grads)
        d_xs = jnp.concatenate([d_xs_head, d_xs], axis=0)
    return grads, d_xs, d_carry, None


def _parameter_gradients(params, xs, h_prev, delta_x, delta_h, dtype):
    """``dW_h = sum_t delta_t h_{t-1}^T``, ``dW_x = sum_t delta_t x_t^T``, ``db = sum_t delta_t``,
    ``dx_t = W_x^T delta_t``: each one matmul over all ``K * B`` columns of a chunk, not ``K``
    small ones.

    ``delta: [kH, K, B]`` is the ``[kH, K*B]`` matrix of every step's columns; ``h_prev`` and
    ``xs`` are ``[K, B, .]``, its ``[K*B, .]`` rows, so no operand needs transposing. When
    ``delta_h`` is None (Elman, LSTM: it equals ``delta_x``) the three weight gradients are ONE
    matmul, ``sum_t delta_t [h_{t-1}; x_t; 1]^T``, so ``delta`` is read once. Products run in
    ``dtype``, sums in float32; ``dx_t`` is returned in the dtype of ``xs``.
    """
    hidden_size, input_size = h_prev.shape[-1], xs.shape[-1]
    ones = jnp.ones(xs.shape[:-1] + (1,), xs.dtype)
    if delta_h is None:
        rows = jnp.concatenate([h_prev, xs, ones], axis=-1)
        stacked = einsum("gtb,tbk->gk", delta_x, rows, dtype)
        dW_h, dW_x, db = stacked[:, :hidden_size], stacked[:, hidden_size:-1], stacked[:, -1]
    else:
        dW_h = einsum("gtb,tbh->gh", delta_h, h_prev, dtype)
        stacked = einsum("gtb,tbk->gk", delta_x, jnp.concatenate([xs, ones], axis=-1), dtype)
        dW_x, db = stacked[:, :input_size], stacked[:, -1]
    grads = {"W_h": dW_h, "W_x": dW_x}
    if "b" in params:
        grads["b"] = db
    if "b_hn" in params:  # GRU: b^n_h sits inside r * (W^n_h h + b^n_h), like the recurrent product
        grads["b_hn"] = delta_h[2 * hidden_size:].sum(axis=(1, 2))
    d_xs = einsum("gi,gtb->itb", params["W_x"], delta_x, dtype)  # [I, K*B] = W_x^T delta
    return grads, jnp.transpose(d_xs, (1, 2, 0)).astype(xs.dtype)


_fused.defvjp(_fused_forward, _fused_backward)


def _check_inputs(cell_name, params, xs, carry, seq_lengths):
    """One clear error for each way the inputs can be inconsistent."""
    if cell_name not in _RULES:
        raise ValueError(f"unknown cell {cell_name!r}: choose one of {', '.join(sorted(_RULES))}")
    if xs.ndim != 3:
        raise ValueError(f"xs must be batch-major [B, T, I], got shape {xs.shape}; add a batch axis")
    if xs.shape[1] == 0:
        raise ValueError("xs has no time steps (T = 0); pass at least one step")
    hidden_size = params["W_h"].shape[1]
    num_gates = _RULES[cell_name].num_gates
    if params["W_h"].shape != (num_gates * hidden_size, hidden_size) or params["W_x"].shape != (
        num_gates * hidden_size, xs.shape[-1]
    ):
        raise ValueError(
            f"params do not fit a {cell_name} cell with input size {xs.shape[-1]}: W_h "
            f"{params['W_h'].shape}, W_x {params['W_x'].shape}; create them with "
            f"seqjax.recurrent.cells.{cell_name}.init(key, {xs.shape[-1]}, hidden_size)"
        )
    for leaf in jax.tree.leaves(carry):
        if leaf.shape != (xs.shape[0], hidden_size):
            raise ValueError(
                f"carry leaves must be [B, H] = {(xs.shape[0], hidden_size)}, got {leaf.shape}; "
                f"use seqjax.recurrent.cells.{cell_name}.initial_carry(params, (batch_size,))"
            )
    if seq_lengths is not None and jnp.shape(seq_lengths) != (xs.shape[0],):
        raise ValueError(f"seq_lengths must have shape [B] = ({xs.shape[0]},), got {jnp.shape(seq_lengths)}")


def fused_unroll(
    cell_name, params, xs, carry, *, seq_lengths=None, unroll=1, hoist_input_projection=None,
    gradient_chunk=16, mesh=None, compute_dtype=None,
):
    """Run cell ``cell_name`` over a batch ``xs: [B, T, I]`` from ``carry`` (leaves ``[B, H]``).

    Returns ``(final_carry, hs: [B, T, H])``, equal to
    ``jax.vmap(recurrence.unroll, ...)(cell.step, params, xs, carry, seq_length=seq_lengths)``;
    differentiable (by the hand-written BPTT above) w.r.t. ``params``, ``xs`` and ``carry``.
    ``seq_lengths: [B]`` (optional) marks each example's valid prefix: outputs past it are
    zero and the final carry is the one at its last valid step. ``unroll`` is passed to both
    scans. ``hoist_input_projection`` computes ``W_x X`` as one matmul before the scan instead
    of inside each step's product; ``None`` picks per backend (per step on CPU, where it
    measured no slower and saves a ``[T, kH, B]`` buffer; hoisted elsewhere). The backward pass
    computes the weight gradients once per ``gradient_chunk`` steps, as one matmul over the
    chunk. ``cell_name`` is ``"elman"``, ``"lstm"`` or ``"gru"`` (reset-after, the default).
    ``compute_dtype`` is the dtype of the matrix products (``None``: the parameters'; see the
    module docstring for mixed precision).

    ``mesh`` (a ``jax.sharding.Mesh``, optional) splits the batch rows over all its devices,
    when ``B`` is a multiple of their number: each device runs the recurrence on its rows and
    sums its weight gradients over them, and the sums are all-reduced once, not once per
    gradient chunk (which is what XLA's partitioner does with the whole batch).
    """
    _check_inputs(cell_name, params, xs, carry, seq_lengths)
    if int(gradient_chunk) < 1:
        raise ValueError(f"gradient_chunk must be a positive number of steps, got {gradient_chunk}")
    if hoist_input_projection is None:
        hoist_input_projection = jax.default_backend() != "cpu"
    dtype = params["W_h"].dtype if compute_dtype is None else jnp.dtype(compute_dtype)
    options = _Options(int(unroll), bool(hoist_input_projection), int(gradient_chunk), dtype)
    run = functools.partial(_fused_unroll, cell_name, options)
    if mesh is not None and mesh.size > 1 and xs.shape[0] % mesh.size == 0:
        rows = PartitionSpec(mesh.axis_names)
        run = jax.shard_map(run, mesh=mesh, in_specs=(PartitionSpec(), rows, rows, rows),
                            out_specs=(rows, rows), check_vma=False)
    return run(params, xs, carry, seq_lengths)


def _fused_unroll(cell_name, options, params, xs, carry, seq_lengths):
    """:func:`fused_unroll` after its checks, on whatever rows it is given."""
    mask = None
    if seq_lengths is not None:
        steps = jnp.arange(xs.shape[1])[:, None, None]
        mask = steps < jnp.asarray(seq_lengths)[None, None, :]  # [T, 1, B]
    carry = jax.tree.map(jnp.transpose, carry)  # [H, B]: one column per example
    final_carry, hs = _fused(cell_name, options, params, jnp.swapaxes(xs, 0, 1), carry, mask)
    return jax.tree.map(jnp.transpose, final_carry), jnp.swapaxes(hs, 0, 1)
