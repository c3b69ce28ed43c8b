"""Residual blocks as the papers build them around a recurrence (``model.block = "residual"``).

Every block is pre-normalized and residual, Griffin's layout (De et al. 2024, Fig. 2), which
the LRU (Orvieto et al. 2023) and minGRU/minLSTM (Feng et al. 2024) language models share:

.. math::

    x &\\leftarrow x + \\mathrm{TemporalMix}(\\mathrm{RMSNorm}(x)) \\\\
    x &\\leftarrow x + W_{down}\\,(\\mathrm{GeLU}(W_{gate}\\, n) \\odot W_{up}\\, n),
        \\qquad n = \\mathrm{RMSNorm}(x)

The temporal mix is the cell's recurrent layer for ``min_gru``, ``min_lstm``, ``lru`` and the
classic cells, and Hawk's recurrent block for ``rg_lru``:

.. math::

    \\mathrm{TemporalMix}(x) = W_{out}\\big(\\mathrm{GeLU}(W_{y} x) \\odot
        \\mathrm{RG\\text{-}LRU}(\\mathrm{Conv1D}_4(W_{x} x))\\big)

with a causal depthwise convolution of width 4 over time. Each block's carry is what
generation needs to continue exactly: the cell's carry, and for Hawk's block the last
``width - 1`` inputs of the convolution as well.
"""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from seqjax.recurrent.cells import get_cell
from seqjax.recurrent.layers import Recurrent

BLOCKS = ("none", "residual")  # model.block: plain stacked layers, or the papers' residual blocks
CONV_WIDTH = 4
MLP_RATIO = 3  # Griffin's MLP expansion


class CausalConv1D(nn.Module):
    """Depthwise causal convolution over time: ``y_t = sum_{k < width} w_k * x_{t-k} + b``.

    ``__call__(xs [B, T, H], history [B, width-1, H]) -> (ys, history)``: ``history`` holds
    the inputs before ``xs`` (zeros at the start), so a window and its continuation give
    the outputs of the whole sequence.
    """

    width: int = CONV_WIDTH

    @nn.compact
    def __call__(self, xs, history):
        kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=0, out_axis=()),
                            (self.width, xs.shape[-1]))
        bias = self.param("bias", nn.initializers.zeros, (xs.shape[-1],))
        padded = jnp.concatenate([history.astype(xs.dtype), xs], axis=1)
        num_steps = xs.shape[1]
        ys = sum(kernel[k] * padded[:, self.width - 1 - k:self.width - 1 - k + num_steps]
                 for k in range(self.width))
        return ys + bias, padded[:, num_steps:]


class HawkTemporalMix(nn.Module):
    """Hawk's recurrent block: a GeLU branch times (linear, causal conv, RG-LRU), then out."""

    width: int
    scan: str = "auto"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, xs, carry):
        history, rnn_carry = carry
        dense = functools.partial(nn.Dense, self.width, dtype=self.dtype)
        gate = nn.gelu(dense(name="gate_branch")(xs))
        conv_out, history = CausalConv1D(name="conv")(dense(name="rnn_branch")(xs), history)
        rnn_carry, hs = Recurrent("rg_lru", self.width, scan=self.scan, dtype=self.dtype,
                                  name="rg_lru")(conv_out, rnn_carry)
        return dense(name="out")(gate * hs), (history, rnn_carry)

    @staticmethod
    def zero_carry(width, batch_size):
        return (jnp.zeros((batch_size, CONV_WIDTH - 1, width)),
                get_cell("rg_lru").zero_carry(width, (batch_size,)))


class ResidualBlock(nn.Module):
    """Pre-norm residual temporal mix, then a pre-norm residual gated MLP; ``[B, T, W]``."""

    cell: str
    width: int
    scan: str = "auto"
    dtype: Any = jnp.float32

    def zero_carry(self, batch_size):
        if self.cell == "rg_lru":
            return HawkTemporalMix.zero_carry(self.width, batch_size)
        return get_cell(self.cell).zero_carry(self.width, (batch_size,))

    @nn.compact
    def __call__(self, xs, carry):
        normed = nn.RMSNorm(name="mix_norm")(xs)
        if self.cell == "rg_lru":
            mixed, carry = HawkTemporalMix(self.width, self.scan, self.dtype, name="mix")(
                normed, carry)
        else:
            carry, mixed = Recurrent(self.cell, self.width, scan=self.scan, dtype=self.dtype,
                                     name="mix")(normed, carry)
        xs = xs + mixed.astype(xs.dtype)
        normed = nn.RMSNorm(name="mlp_norm")(xs)
        dense = functools.partial(nn.Dense, dtype=self.dtype)
        hidden = nn.gelu(dense(MLP_RATIO * self.width, name="gate")(normed)) * dense(
            MLP_RATIO * self.width, name="up")(normed)
        return xs + dense(self.width, name="down")(hidden).astype(xs.dtype), carry


class ResidualStack(nn.Module):
    """``num_layers`` :class:`ResidualBlock` s and a final RMSNorm; carries one carry per block."""

    cell: str
    width: int
    num_layers: int = 1
    scan: str = "auto"
    dtype: Any = jnp.float32

    def _block(self, index, **kwargs):
        return ResidualBlock(self.cell, self.width, self.scan, self.dtype,
                             name=f"block_{index}", **kwargs)

    def initial_carry(self, batch_size):
        return [self._block(i, parent=None).zero_carry(batch_size) for i in range(self.num_layers)]

    @nn.compact
    def __call__(self, xs, carries=None):
        carries = carries if carries is not None else self.initial_carry(xs.shape[0])
        if xs.shape[-1] != self.width:
            xs = nn.Dense(self.width, dtype=self.dtype, name="project_in")(xs).astype(jnp.float32)
        new_carries = []
        for index, carry in enumerate(carries):
            xs, carry = self._block(index)(xs, carry)
            new_carries.append(carry)
        return new_carries, nn.RMSNorm(name="final_norm")(xs)

