"""Flax shells around the pure cells: batched ``[B, T, I]`` recurrent layers.

Parameters come from the pure cell's ``init`` and the math from its ``step``
(:mod:`seqjax.recurrent.cells`), driven by :func:`seqjax.recurrent.unroll.unroll` under ``jax.vmap``; these
modules hold no second copy of the equations. Each layer stores its cell's parameter dict
under the name ``"cell"``, in float32; ``dtype`` is the compute dtype of the cell's matrix
products (mixed precision: :func:`seqjax.precision.compute_weights` casts the weights inside
every step, and the carry stays float32).
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.recurrent import linear_scan
from seqjax.recurrent.cells import get_cell, is_linear
from seqjax.precision import compute_weights
from seqjax.recurrent.unroll import unroll


def computing_in(dtype, step):
    """A cell's ``step`` whose weights are cast to ``dtype`` inside each call, so that under
    ``jax.lax.scan`` the weights' gradients are summed over the steps in float32."""
    return lambda params, carry, x: step(compute_weights(params, dtype), carry, x)


class RecurrentCell(nn.Module):
    """One step of a pure cell over a batch: ``(carry [B, H], x [B, I]) -> (carry, h [B, H])``."""

    cell: str
    hidden_size: int
    cell_kwargs: dict[str, Any] | None = None
    dtype: Any = jnp.float32  # compute dtype of the matrix products

    @nn.compact
    def __call__(self, carry, x):
        cell = get_cell(self.cell)
        params = self.param(
            "cell", lambda key: cell.init(key, x.shape[-1], self.hidden_size, **(self.cell_kwargs or {}))
        )
        step = computing_in(self.dtype, cell.step)
        return jax.vmap(step, in_axes=(None, 0, 0))(params, carry, x)


class Recurrent(nn.Module):
    """A recurrent layer over ``xs: [B, T, I]``; returns ``(final_carry, hs: [B, T, H])``.

    ``seq_lengths: [B]`` marks each example's valid prefix (see :func:`seqjax.recurrent.unroll.unroll`);
    ``carry=None`` starts from zeros. ``fused=True`` runs full-length forward windows of the
    classic cells through :func:`seqjax.recurrent.fused_bptt.fused_unroll` (same math,
    hand-written BPTT, faster); padded or reversed sequences take the plain ``vmap(unroll)``
    path. The cells linear in the state always run on :func:`seqjax.recurrent.linear_scan.run`
    with the back-end ``scan`` names (``auto`` by default), padded and reversed included.
    """

    cell: str
    hidden_size: int
    reverse: bool = False
    unroll: int = 1
    fused: bool = False
    cell_kwargs: dict[str, Any] | None = None
    mesh: Any = None  # fused path: split the batch rows over this mesh's devices
    dtype: Any = jnp.float32  # compute dtype of the matrix products
    scan: str = "auto"  # linear cells: sequential | associative | chunked | log | auto

    def initial_carry(self, batch_size, dtype=jnp.float32):
        """Zero carry for ``batch_size`` examples (needs no parameters)."""
        return get_cell(self.cell).zero_carry(self.hidden_size, (batch_size,), dtype)

    @nn.compact
    def __call__(self, xs, carry=None, seq_lengths=None):
        cell = get_cell(self.cell)
        params = self.param(
            "cell", lambda key: cell.init(key, xs.shape[-1], self.hidden_size, **(self.cell_kwargs or {}))
        )
        if carry is None:
            carry = self.initial_carry(xs.shape[0])
        if is_linear(self.cell):
            run = functools.partial(linear_scan.run, cell, compute_weights(params, self.dtype),
                                    reverse=self.reverse, backend=self.scan)
        elif self.fused and seq_lengths is None and not self.reverse:
            from seqjax.recurrent.fused_bptt import fused_unroll

            return fused_unroll(self.cell, params, xs, carry, mesh=self.mesh,
                                compute_dtype=self.dtype)
        else:
            step = computing_in(self.dtype, cell.step)
            run = functools.partial(unroll, step, params, reverse=self.reverse, unroll=self.unroll)
        if seq_lengths is None:
            return jax.vmap(lambda x, c: run(x, c))(xs, carry)
        return jax.vmap(lambda x, c, n: run(x, c, seq_length=n))(xs, carry, seq_lengths)


class Bidirectional(nn.Module):
    """A forward and a backward :class:`Recurrent` layer; ``hs: [B, T, 2H]`` (forward first).

    Returns ``((forward_final, backward_final), hs)``.
    """

    cell: str
    hidden_size: int
    cell_kwargs: dict[str, Any] | None = None
    dtype: Any = jnp.float32  # compute dtype of the matrix products
    scan: str = "auto"  # linear cells' scan back-end

    @nn.compact
    def __call__(self, xs, seq_lengths=None):
        layer = functools.partial(
            Recurrent, self.cell, self.hidden_size, cell_kwargs=self.cell_kwargs, dtype=self.dtype,
            scan=self.scan,
        )
        forward_final, forward_hs = layer(name="forward")(xs, seq_lengths=seq_lengths)
        backward_final, backward_hs = layer(reverse=True, name="backward")(
            xs, seq_lengths=seq_lengths
        )
        return (forward_final, backward_final), jnp.concatenate([forward_hs, backward_hs], -1)


class StackedRecurrent(nn.Module):
    """``num_layers`` :class:`Recurrent` layers, dropout between them (not after the last).

    ``carries`` is a list with one carry per layer (``None`` for zeros); returns
    ``(final_carries, hs: [B, T, H])`` with the top layer's outputs.
    """

    cell: str
    hidden_size: int
    num_layers: int = 1
    dropout: float = 0.0
    unroll: int = 1
    fused: bool = False
    cell_kwargs: dict[str, Any] | None = None
    mesh: Any = None  # fused path: split the batch rows over this mesh's devices
    dtype: Any = jnp.float32  # compute dtype of the matrix products
    scan: str = "auto"  # linear cells' scan back-end

    def initial_carry(self, batch_size, dtype=jnp.float32):
        """One zero carry per layer."""
        zero = get_cell(self.cell).zero_carry
        return [zero(self.hidden_size, (batch_size,), dtype) for _ in range(self.num_layers)]

    @nn.compact
    def __call__(self, xs, carries=None, seq_lengths=None, *, deterministic=True):
        carries = carries if carries is not None else [None] * self.num_layers
        final_carries, hs = [], xs
        for layer_index, carry in enumerate(carries):
            if layer_index > 0:
                hs = nn.Dropout(self.dropout)(hs, deterministic=deterministic)
            carry, hs = Recurrent(
                self.cell, self.hidden_size, unroll=self.unroll, fused=self.fused,
                cell_kwargs=self.cell_kwargs, mesh=self.mesh, dtype=self.dtype, scan=self.scan,
                name=f"layer_{layer_index}",
            )(hs, carry, seq_lengths)
            final_carries.append(carry)
        return final_carries, hs
