"""Recurrent language model: embedding -> stacked recurrent cells -> softmax head.

.. math::

    x_t = E[y_t], \\qquad h^{(l)}_t = \\mathrm{cell}(h^{(l)}_{t-1}, h^{(l-1)}_t), \\qquad
    p(y_{t+1} \\mid y_{\\le t}) = \\mathrm{softmax}(W_y h^{(L)}_t + b_y)

The recurrence is the pure cell of :mod:`seqjax.recurrent.cells`, run by
:class:`seqjax.recurrent.layers.StackedRecurrent` (``block="none"``: layers stacked directly,
dropout between them) or by the papers' pre-norm residual blocks
(``block="residual"``: :class:`seqjax.recurrent.blocks.ResidualStack`; Hawk's block for
``rg_lru``). The carry (one carry per layer or block) is an
argument and a result, so training can carry it across consecutive windows (truncated BPTT,
as char-rnn does) and generation can carry it from token to token.

Mixed precision (``dtype=jnp.bfloat16``): the cells' and the head's matrix products run in
``dtype``; parameters, the carries (the LSTM's cell state included) and the logits stay float32.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from seqjax.precision import compute_dtype, float32_output_dot_general, model_dtype_name
from seqjax.recurrent.blocks import ResidualStack
from seqjax.recurrent.layers import StackedRecurrent


class RecurrentLM(nn.Module):
    """``tokens [B, T] -> (logits [B, T, V], carries)``; dropout between layers and before the head."""

    vocab_size: int
    cell: str = "lstm"
    embed_size: int = 128
    hidden_size: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    fused: bool = True
    mesh: Any = None  # training on a device mesh: the fused layers split the batch over it
    dtype: Any = jnp.float32  # compute dtype of the matrix products (mixed precision)
    scan: str = "auto"  # the scan back-end of a cell linear in its state
    block: str = "none"  # none: stacked layers | residual: seqjax.recurrent.blocks

    def _stack(self, **module_kwargs):
        if self.block == "residual":
            return ResidualStack(self.cell, self.hidden_size, self.num_layers, self.scan,
                                 self.dtype, **module_kwargs)
        return StackedRecurrent(
            self.cell, self.hidden_size, self.num_layers, self.dropout,
            fused=self.fused, mesh=self.mesh, dtype=self.dtype, scan=self.scan, **module_kwargs,
        )

    def initial_carry(self, batch_size):
        """Zero carries, one per layer."""
        return self._stack(parent=None).initial_carry(batch_size)

    @nn.compact
    def __call__(self, tokens, carry=None, *, deterministic=True):
        x = nn.Embed(self.vocab_size, self.embed_size, name="embed")(tokens)
        if self.block == "residual":
            carry, hs = self._stack(name="blocks")(x, carry)
        else:
            carry, hs = self._stack(name="recurrent")(x, carry, deterministic=deterministic)
        hs = nn.Dropout(self.dropout)(hs, deterministic=deterministic)
        logits = nn.Dense(self.vocab_size, dtype=self.dtype, name="head",
                          dot_general=float32_output_dot_general)(hs)
        return logits.astype(jnp.float32), carry

    def init_decode_state(self, batch_size, max_length=None):
        """Decoding state: the carries (an RNN has no context limit, so ``max_length`` is unused)."""
        del max_length
        return self.initial_carry(batch_size)

    def decode_step(self, state, token):
        """Feed ``token [B]``; return next-token ``logits [B, V]`` and the new carries."""
        logits, state = self(token[:, None], state)
        return logits[:, 0], state


def from_config(model_config, vocab_size, context_length=None, mesh=None):
    """A :class:`RecurrentLM` from a config's ``model`` section (``kind`` names the cell)."""
    del context_length
    return RecurrentLM(
        vocab_size=vocab_size,
        cell=model_config.kind,
        embed_size=model_config.embed_size,
        hidden_size=model_config.hidden_size,
        num_layers=model_config.num_layers,
        dropout=model_config.dropout,
        fused=model_config.get("fused", True),
        mesh=mesh,
        dtype=compute_dtype(model_dtype_name(model_config)),
        scan=model_config.get("scan", "auto"),
        block=model_config.get("block", "none"),
    )
