"""Predictions from sequences: encoders and the many-to-one / many-to-many heads on them.

An encoder maps ``inputs [B, T]`` (token ids) or ``[B, T, F]`` (values) and their
``lengths [B]`` to ``(states [B, T, D], summary [B, D])``:

- :class:`RecurrentEncoder` (Elman, LSTM or GRU; forward, backward or bidirectional): the
  summary is the final carry's hidden state at each sequence's own last valid step (the
  backward direction ends at step 0), so padding never changes it;
- :class:`TransformerEncoder` (pre-LN blocks of unmasked-but-padding-masked self-attention
  and an MLP): bidirectional, every state sees the whole sequence; the summary pools the
  states over the valid steps;
- :class:`CausalTransformerEncoder` (a decoder-only Transformer: causal self-attention, rotary
  positions by default): state ``t`` sees steps ``0..t`` only, as a forward recurrent layer's,
  and the summary is the state at each sequence's own last valid step.

:class:`ManyToOne` puts a linear head on the summary (a classifier, or a regressor with one
output), :class:`ManyToMany` on every state (a tagger). States past a sequence's length are
padding: the recurrent ones are zero, and no valid step attends to them.

Mixed precision: every module has a ``dtype``, the compute dtype of its matrix products
(parameters stay float32). Encoder states and summaries are float32 (the recurrent carries,
the Transformer's residual stream and final LayerNorm), and so are the heads' outputs.
"""

import math
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from seqjax.attention import HeadsProjection, MergeHeadsProjection, multi_head_attention
from seqjax.recurrent.cells import get_cell
from seqjax.models import MODEL_KINDS
from seqjax.models.transformer_lm import INIT_STD, MLP, TransformerBlock
from seqjax.positional import POSITIONAL_KINDS, LearnedPositionalEmbedding, sinusoidal_features
from seqjax.precision import compute_dtype, float32_output_dot_general, model_dtype_name
from seqjax.recurrent.layers import Bidirectional, Recurrent

DIRECTIONS = ("forward", "backward", "bidirectional")
POOLINGS = ("mean", "max", "last")
ENCODER_POSITIONALS = ("learned", "sinusoidal")
CAUSAL_POSITIONALS = POSITIONAL_KINDS  # learned | sinusoidal | rotary (relative, the default)
CAUSAL_TRANSFORMER = "causal_transformer"
ENCODER_KINDS = MODEL_KINDS + (CAUSAL_TRANSFORMER,)  # every model.kind of a task model


class InputEmbedding(nn.Module):
    """``tokens [B, T] -> [B, T, features]`` by a table, or values ``[B, T, F]`` by a Dense map
    (``vocab_size=None``)."""

    vocab_size: int | None
    features: int
    embedding_init: nn.initializers.Initializer = nn.linear.default_embed_init
    dtype: Any = jnp.float32  # of the values' projection; the result is float32

    @nn.compact
    def __call__(self, inputs):
        if self.vocab_size is None:
            projected = nn.Dense(self.features, dtype=self.dtype, name="project")(inputs)
            return projected.astype(jnp.float32)
        return nn.Embed(
            self.vocab_size, self.features, embedding_init=self.embedding_init, name="embed"
        )(inputs)


class RecurrentEncoder(nn.Module):
    """Embedding, then ``num_layers`` recurrent layers run over each sequence's valid prefix.

    ``D = hidden_size`` (``2 * hidden_size`` bidirectional, forward half first). The summary
    is ``h`` of the top layer's final carry (both directions' for bidirectional).
    ``full_length=True`` (every sequence fills the window, as in the long-range memory
    tasks) runs forward layers through the fused BPTT path, which needs no lengths.
    """

    cell: str
    hidden_size: int
    vocab_size: int | None = None
    embed_size: int = 32
    num_layers: int = 1
    direction: str = "forward"
    full_length: bool = False
    mesh: Any = None  # training on a device mesh: the fused layers split the batch over it
    dtype: Any = jnp.float32
    scan: str = "auto"  # the scan back-end of a cell linear in its state

    @nn.compact
    def __call__(self, inputs, lengths, *, deterministic=True):
        output = get_cell(self.cell).output
        states = InputEmbedding(self.vocab_size, self.embed_size, dtype=self.dtype,
                                name="input")(inputs)
        for index in range(self.num_layers):
            if self.direction == "bidirectional":
                (forward, backward), states = Bidirectional(
                    self.cell, self.hidden_size, dtype=self.dtype, scan=self.scan,
                    name=f"layer_{index}"
                )(states, seq_lengths=lengths)
                summary = jnp.concatenate([output(forward), output(backward)], axis=-1)
            else:
                fused = self.full_length and self.direction == "forward"
                carry, states = Recurrent(
                    self.cell, self.hidden_size, reverse=self.direction == "backward",
                    fused=fused, mesh=self.mesh, dtype=self.dtype, scan=self.scan,
                    name=f"layer_{index}",
                )(states, seq_lengths=None if fused else lengths)
                summary = output(carry)
        return states, summary


def key_padding_mask(lengths, num_steps):
    """``[B, 1, 1, T]`` boolean: key ``t`` of example ``b`` may be attended iff ``t < lengths[b]``
    (broadcasts against the ``[B, heads, T_q, T_k]`` scores)."""
    return (jnp.arange(num_steps)[None, :] < lengths[:, None])[:, None, None, :]


class MultiHeadAttention(nn.Module):
    """Queries from ``x [B, T_q, W]`` attend to ``memory [B, T_k, W]`` -> ``[B, T_q, W]``.

    Self-attention when ``memory is x``; cross-attention (a decoder reading its encoder)
    otherwise. ``mask`` is boolean, broadcastable to ``[B, heads, T_q, T_k]`` (``True`` = may
    attend, e.g. :func:`key_padding_mask`); ``causal`` adds the causal mask. The math is
    :func:`seqjax.attention.multi_head_attention`; this layer only adds the projections.
    """

    num_heads: int
    causal: bool = False
    dropout: float = 0.0
    output_init: nn.initializers.Initializer = nn.initializers.normal(INIT_STD)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, memory, mask=None, *, deterministic=True):
        q = HeadsProjection(self.num_heads, dtype=self.dtype, name="query")(x)
        k = HeadsProjection(self.num_heads, dtype=self.dtype, name="key")(memory)
        v = HeadsProjection(self.num_heads, dtype=self.dtype, name="value")(memory)
        heads = multi_head_attention(q, k, v, causal=self.causal, mask=mask)
        out = MergeHeadsProjection(kernel_init=self.output_init, dtype=self.dtype,
                                   name="output")(heads)
        return nn.Dropout(self.dropout)(out, deterministic=deterministic)


class EncoderBlock(nn.Module):
    """Pre-LN block: ``x + SelfAttention(LN(x))`` over the valid keys, then ``x + MLP(LN(x))``."""

    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    residual_init: nn.initializers.Initializer = nn.initializers.normal(INIT_STD)
    dtype: Any = jnp.float32  # of the branches; the residual stream ``x`` stays float32

    @nn.compact
    def __call__(self, x, mask, *, deterministic=True):
        normed = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="attention_norm")(x)
        x = x + MultiHeadAttention(
            self.num_heads, dropout=self.dropout, output_init=self.residual_init,
            dtype=self.dtype, name="attention",
        )(normed, normed, mask, deterministic=deterministic)
        normed = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name="mlp_norm")(x)
        mlp = MLP(self.mlp_ratio, self.dropout, output_init=self.residual_init, dtype=self.dtype,
                  name="mlp")
        return x + mlp(normed, deterministic=deterministic)


class PositionalInput(nn.Module):
    """Input embedding plus positions (``learned`` or ``sinusoidal``; ``rotary`` adds none, it
    acts inside attention), then dropout: ``[B, T, W]``."""

    vocab_size: int | None
    width: int
    max_length: int
    positional: str = "learned"
    dropout: float = 0.0
    dtype: Any = jnp.float32  # of a values' projection; the embedding is float32

    @nn.compact
    def __call__(self, inputs, *, deterministic=True):
        normal = nn.initializers.normal(INIT_STD)
        x = InputEmbedding(self.vocab_size, self.width, normal, self.dtype, name="input")(inputs)
        positions = jnp.arange(x.shape[1])
        if self.positional == "learned":
            x = x + LearnedPositionalEmbedding(self.max_length, self.width, name="position")(positions)
        elif self.positional == "sinusoidal":
            x = x + sinusoidal_features(positions, self.width).astype(x.dtype)
        return nn.Dropout(self.dropout)(x, deterministic=deterministic)


def pool(states, lengths, pooling="mean"):
    """Pool ``states [B, T, D]`` over each sequence's valid steps -> ``[B, D]``: their
    ``mean``, ``max``, or the ``last`` valid state."""
    valid = (jnp.arange(states.shape[1])[None, :] < lengths[:, None])[..., None]
    if pooling == "last":
        return jnp.take_along_axis(states, (lengths - 1)[:, None, None], axis=1)[:, 0]
    if pooling == "max":
        return jnp.max(jnp.where(valid, states, -jnp.inf), axis=1)
    total = jnp.sum(jnp.where(valid, states, 0.0), axis=1)
    return total / jnp.maximum(lengths, 1)[:, None].astype(states.dtype)


class TransformerEncoder(nn.Module):
    """Bidirectional Transformer encoder (Vaswani et al. 2017, pre-LN): ``D = width``.

    Padding is masked out of every attention, so the states of the valid steps do not depend
    on it; the summary is :func:`pool` of the final-LayerNorm states.
    """

    width: int
    num_layers: int
    num_heads: int
    max_length: int
    vocab_size: int | None = None
    mlp_ratio: int = 4
    dropout: float = 0.0
    positional: str = "learned"
    pooling: str = "mean"
    dtype: Any = jnp.float32  # of the blocks' products; states and summary are float32

    @nn.compact
    def __call__(self, inputs, lengths, *, deterministic=True):
        x = PositionalInput(
            self.vocab_size, self.width, self.max_length, self.positional, self.dropout,
            self.dtype, name="embedding",
        )(inputs, deterministic=deterministic)
        mask = key_padding_mask(lengths, x.shape[1])
        residual_init = nn.initializers.normal(INIT_STD / math.sqrt(2 * self.num_layers))
        for index in range(self.num_layers):
            x = EncoderBlock(
                self.num_heads, self.mlp_ratio, self.dropout, residual_init, self.dtype,
                name=f"block_{index}",
            )(x, mask, deterministic=deterministic)
        states = nn.LayerNorm(epsilon=1e-5, name="final_norm")(x)
        return states, pool(states, lengths, self.pooling)


class CausalTransformerEncoder(nn.Module):
    """Decoder-only Transformer read left to right (GPT's blocks, pre-LN): ``D = width``.

    Every block's self-attention is causal, so the state at step ``t`` is a function of
    inputs ``x_0 .. x_t`` alone, like ``h_t`` of a forward recurrent layer:

    .. math::

        s_t = f(x_0, \\dots, x_t), \\qquad \\text{summary} = s_{L - 1}
        \\quad (L: \\text{the sequence's length}).

    A many-to-one head therefore answers from the last valid step, where a recurrent model
    answers, and a tagger's output at ``t`` has seen only the past. Right padding comes after
    every valid step, so no valid state attends to it; the states past a sequence's length are
    zero, as the recurrent encoders'. With ``positional="rotary"`` (the default) attention
    scores depend on relative offsets only (:func:`seqjax.positional.apply_rotary`): no
    parameter is tied to an absolute position, so none can be looked up at a fixed ``T``.
    """

    width: int
    num_layers: int
    num_heads: int
    max_length: int  # sizes learned positions only
    vocab_size: int | None = None
    mlp_ratio: int = 4
    dropout: float = 0.0
    positional: str = "rotary"
    dtype: Any = jnp.float32  # of the blocks' products; states and summary are float32

    @nn.compact
    def __call__(self, inputs, lengths, *, deterministic=True):
        x = PositionalInput(
            self.vocab_size, self.width, self.max_length, self.positional, self.dropout,
            self.dtype, name="embedding",
        )(inputs, deterministic=deterministic)
        residual_init = nn.initializers.normal(INIT_STD / math.sqrt(2 * self.num_layers))
        for index in range(self.num_layers):
            x = TransformerBlock(
                self.num_heads, self.mlp_ratio, self.dropout, rotary=self.positional == "rotary",
                residual_init=residual_init, dtype=self.dtype, name=f"block_{index}",
            )(x, deterministic=deterministic)
        states = nn.LayerNorm(epsilon=1e-5, name="final_norm")(x)
        valid = (jnp.arange(states.shape[1])[None, :] < lengths[:, None])[..., None]
        states = jnp.where(valid, states, 0.0)
        return states, pool(states, lengths, "last")


class ManyToOne(nn.Module):
    """``(inputs, lengths) -> [B, output_size]``: a linear head on the encoder's summary."""

    encoder: nn.Module
    output_size: int
    dtype: Any = jnp.float32  # of the head's product; its output is float32

    @nn.compact
    def __call__(self, inputs, lengths, *, deterministic=True):
        _, summary = self.encoder(inputs, lengths, deterministic=deterministic)
        head = nn.Dense(self.output_size, dtype=self.dtype, name="head",
                        dot_general=float32_output_dot_general)
        return head(summary).astype(jnp.float32)


class ManyToMany(nn.Module):
    """``(inputs, lengths) -> [B, T, output_size]``: a linear head on every encoder state."""

    encoder: nn.Module
    output_size: int
    dtype: Any = jnp.float32  # of the head's product; its output is float32

    @nn.compact
    def __call__(self, inputs, lengths, *, deterministic=True):
        states, _ = self.encoder(inputs, lengths, deterministic=deterministic)
        head = nn.Dense(self.output_size, dtype=self.dtype, name="head",
                        dot_general=float32_output_dot_general)
        return head(states).astype(jnp.float32)


def encoder_from_config(model_config, vocab_size, max_length, full_length=False, mesh=None):
    """The encoder of ``model_config.kind`` (one of :data:`ENCODER_KINDS`: ``elman | lstm | gru``,
    ``transformer`` (bidirectional) or ``causal_transformer`` (decoder-only)).

    ``vocab_size=None`` for real-valued inputs; ``max_length`` sizes learned positions;
    ``full_length``: every sequence is ``max_length`` long (recurrent encoders then run fused,
    their batch split over ``mesh`` when one is given).
    """
    dtype = compute_dtype(model_dtype_name(model_config))
    if model_config.kind == "transformer":
        return TransformerEncoder(
            width=model_config.hidden_size, num_layers=model_config.num_layers,
            num_heads=model_config.num_heads, max_length=max_length, vocab_size=vocab_size,
            mlp_ratio=model_config.mlp_ratio, dropout=model_config.dropout,
            positional=model_config.positional, pooling=model_config.pooling, dtype=dtype,
        )
    if model_config.kind == CAUSAL_TRANSFORMER:
        return CausalTransformerEncoder(
            width=model_config.hidden_size, num_layers=model_config.num_layers,
            num_heads=model_config.num_heads, max_length=max_length, vocab_size=vocab_size,
            mlp_ratio=model_config.mlp_ratio, dropout=model_config.dropout,
            positional=model_config.positional, dtype=dtype,
        )
    return RecurrentEncoder(
        cell=model_config.kind, hidden_size=model_config.hidden_size, vocab_size=vocab_size,
        embed_size=model_config.embed_size, num_layers=model_config.num_layers,
        direction=model_config.direction, full_length=full_length, mesh=mesh, dtype=dtype,
        scan=model_config.get("scan", "auto"),
    )


def sequence_model_from_config(model_config, task, mesh=None):
    """A :class:`ManyToOne` (classification, regression) or :class:`ManyToMany` (tagging) model
    for ``task`` (a :class:`seqjax.tasks.Task`) with the encoder of ``model_config``."""
    vocab_size = len(task.input_vocabulary) if task.input_vocabulary is not None else None
    encoder = encoder_from_config(model_config, vocab_size, task.max_input_length,
                                  task.full_length, mesh)
    head = ManyToMany if task.kind == "tagging" else ManyToOne
    return head(encoder=encoder, output_size=task.num_outputs,
                dtype=compute_dtype(model_dtype_name(model_config)))
