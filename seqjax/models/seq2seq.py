"""Encoder-decoder models: an RNN decoder with or without attention, and a Transformer.

Every model here has one interface, read by :mod:`seqjax.training.sequence_tasks` and by decoding:

- ``__call__(source [B, S], source_lengths [B], decoder_inputs [B, T]) -> logits [B, T, V]``,
  teacher forcing: ``decoder_inputs`` is the target shifted right behind ``BOS``
  (:func:`teacher_forcing_inputs`), and logit ``t`` predicts target ``t``;
- ``init_decode_state(source, source_lengths, max_length)`` and
  ``decode_step(state, token [B]) -> (logits [B, V], state)``, the ``step_fn`` of
  :mod:`seqjax.generation`, so :func:`greedy_decode` and :func:`beam_decode` are that module's
  ``generate`` and ``beam_search``.

:class:`RecurrentSeq2Seq` is the RNN encoder-decoder of Cho et al. (2014): the decoder starts
from ``s_0 = tanh(W c)`` with ``c`` the encoder's summary, and at every step reads a context
vector ``c_t`` with the previous output ``y_{t-1}``:

.. math::

    s_t = \\mathrm{cell}(s_{t-1}, [E y_{t-1}; c_t]), \\qquad
    p(y_t \\mid y_{<t}, x) = \\mathrm{softmax}(W_o \\tanh(W_h [s_t; c_t; E y_{t-1}]))

Without attention ``c_t = c`` for every ``t`` (Cho et al.); with attention (Bahdanau et al.
2015) ``c_t = \\sum_j \\alpha_{tj} h_j`` over the encoder states, with weights from the previous
decoder state ``s_{t-1}``: additive ``e_{tj} = v^\\top \\tanh(W_q s_{t-1} + W_k h_j)`` or
dot-product ``e_{tj} = (W_q s_{t-1})^\\top (W_k h_j) / \\sqrt{d}``, softmax over valid ``j``.

:class:`TransformerSeq2Seq` is the encoder-decoder of Vaswani et al. (2017), pre-LN: decoder
blocks of causal self-attention, cross-attention to the encoder states, and an MLP.

Mixed precision: ``dtype`` is the compute dtype of every matrix product (parameters stay
float32); the decoder's carry, the attention softmax and the logits are float32.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.attention import attend, attention_weights, masked_softmax
from seqjax.recurrent.cells import get_cell
from seqjax.generation import beam_search, generate, model_step_fn
from seqjax.models.sequence_heads import (
    MultiHeadAttention, PositionalInput, RecurrentEncoder, TransformerEncoder, key_padding_mask,
)
from seqjax.models.transformer_lm import INIT_STD, MLP
from seqjax.precision import compute_dtype, float32_output_dot_general, model_dtype_name
from seqjax.recurrent.layers import RecurrentCell
from seqjax.tasks.vocabulary import BOS, EOS

ATTENTIONS = ("none", "additive", "dot")


def teacher_forcing_inputs(targets):
    """Decoder inputs for ``targets [B, T]``: ``BOS`` then the targets shifted right by one."""
    bos = jnp.full((targets.shape[0], 1), BOS, targets.dtype)
    return jnp.concatenate([bos, targets[:, :-1]], axis=1)


def additive_attention_weights(query, keys, score_vector, mask):
    """Bahdanau weights ``softmax_j(v^T tanh(q + k_j))``: ``query [B, A]`` (already ``W_q s``),
    ``keys [B, S, A]`` (already ``W_k h``), ``score_vector [A]``, ``mask [B, S]`` -> ``[B, S]``."""
    scores = jnp.tanh(query[:, None, :] + keys) @ score_vector
    return masked_softmax(scores, mask)


def dot_attention_weights(query, keys, mask):
    """Scaled dot-product weights ``softmax_j(q . k_j / sqrt(A))``: ``[B, A], [B, S, A] -> [B, S]``."""
    return attention_weights(query[:, None, :], keys, mask[:, None, :])[:, 0]


def _carry_from_hidden(cell_name, hidden):
    """A cell carry whose hidden state is ``hidden [B, H]`` (the LSTM's cell state starts at 0;
    the LRU's complex state and last output both start at ``hidden``)."""
    cell = get_cell(cell_name)
    zero = cell.zero_carry(hidden.shape[-1], hidden.shape[:-1], hidden.dtype)
    if hasattr(cell, "carry_from"):
        return cell.carry_from(hidden.astype(cell.state(zero).dtype), hidden)
    return (hidden, zero[1]) if isinstance(zero, tuple) else hidden


class RecurrentDecoderStep(nn.Module):
    """One decoder step for a batch: ``(carry, token [B], memory) -> (carry, logits [B, V])``.

    ``memory``: ``values [B, S, D]`` (encoder states), ``mask [B, S]``, ``context [B, D]``
    (the encoder summary) and, with attention, ``keys [B, S, A]`` (``W_k`` applied once).
    """

    cell: str
    hidden_size: int
    vocab_size: int
    embed_size: int
    attention: str = "additive"
    dtype: Any = jnp.float32  # compute dtype of the matrix products

    def _context(self, carry, memory):
        if self.attention == "none":
            return memory["context"]
        query = nn.Dense(memory["keys"].shape[-1], dtype=self.dtype, name="query")(
            get_cell(self.cell).output(carry)
        )
        if self.attention == "additive":
            score_vector = self.param(
                "score_vector", nn.initializers.normal(1.0 / math.sqrt(query.shape[-1])),
                (query.shape[-1],),
            )
            weights = additive_attention_weights(query, memory["keys"], score_vector, memory["mask"])
        else:
            weights = dot_attention_weights(query, memory["keys"], memory["mask"])
        return attend(weights[:, None, :], memory["values"])[:, 0]

    @nn.compact
    def __call__(self, carry, token, memory):
        context = self._context(carry, memory)
        embedded = nn.Embed(self.vocab_size, self.embed_size, name="embed")(token)
        carry, hidden = RecurrentCell(self.cell, self.hidden_size, dtype=self.dtype, name="cell")(
            carry, jnp.concatenate([embedded, context], axis=-1)
        )
        combined = nn.Dense(self.hidden_size, dtype=self.dtype, name="combine")(
            jnp.concatenate([hidden, context, embedded], axis=-1)
        )
        logits = nn.Dense(self.vocab_size, dtype=self.dtype, name="head",
                          dot_general=float32_output_dot_general)(jnp.tanh(combined))
        return carry, logits.astype(jnp.float32)


class RecurrentSeq2Seq(nn.Module):
    """RNN encoder-decoder (Cho et al. 2014), attention ``none | additive | dot`` (Bahdanau).

    ``encoder`` is a :class:`~seqjax.models.sequence_heads.RecurrentEncoder`; the decoder is
    one layer of ``cell`` with ``hidden_size`` units over an output vocabulary ``vocab_size``.
    """

    encoder: nn.Module
    cell: str
    hidden_size: int
    vocab_size: int
    embed_size: int = 32
    attention: str = "additive"
    dtype: Any = jnp.float32  # compute dtype of the matrix products

    def setup(self):
        self.bridge = nn.Dense(self.hidden_size, dtype=self.dtype)
        if self.attention != "none":
            self.memory_keys = nn.Dense(self.hidden_size, use_bias=False, dtype=self.dtype)
        scan = nn.scan(
            RecurrentDecoderStep, variable_broadcast="params", split_rngs={"params": False},
            in_axes=(1, nn.broadcast), out_axes=1,
        )
        self.decoder = scan(
            self.cell, self.hidden_size, self.vocab_size, self.embed_size, self.attention,
            self.dtype,
        )

    def init_decode_state(self, source, source_lengths, max_length=None):
        """Encode ``source``: ``{"carry": s_0, "memory": {...}}``, every leaf batched on axis 0
        (an RNN decoder has no length limit: ``max_length`` is unused)."""
        del max_length
        states, summary = self.encoder(source, source_lengths)
        mask = jnp.arange(states.shape[1])[None, :] < source_lengths[:, None]
        memory = {"values": states, "mask": mask, "context": summary}
        if self.attention != "none":
            memory["keys"] = self.memory_keys(states)
        carry = _carry_from_hidden(self.cell, jnp.tanh(self.bridge(summary)).astype(jnp.float32))
        return {"carry": carry, "memory": memory}

    def decode_step(self, state, token):
        """Feed ``token [B]``; return the next-token ``logits [B, V]`` and the new state."""
        carry, logits = self.decoder(state["carry"], token[:, None], state["memory"])
        return logits[:, 0], {"carry": carry, "memory": state["memory"]}

    def __call__(self, source, source_lengths, decoder_inputs, *, deterministic=True):
        state = self.init_decode_state(source, source_lengths)
        _, logits = self.decoder(state["carry"], decoder_inputs, state["memory"])
        return logits


class DecoderBlock(nn.Module):
    """Pre-LN decoder block: causal self-attention, cross-attention to ``memory``, MLP."""

    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    residual_init: nn.initializers.Initializer = nn.initializers.normal(INIT_STD)
    dtype: Any = jnp.float32  # of the branches; the residual stream ``x`` stays float32

    @nn.compact
    def __call__(self, x, memory, memory_mask, *, deterministic=True):
        attention = lambda causal, name: MultiHeadAttention(
            self.num_heads, causal=causal, dropout=self.dropout,
            output_init=self.residual_init, dtype=self.dtype, name=name,
        )
        norm = lambda name: nn.LayerNorm(epsilon=1e-5, dtype=self.dtype, name=name)
        normed = norm("self_attention_norm")(x)
        x = x + attention(True, "self_attention")(normed, normed, deterministic=deterministic)
        normed = norm("cross_attention_norm")(x)
        x = x + attention(False, "cross_attention")(
            normed, memory, memory_mask, deterministic=deterministic
        )
        normed = norm("mlp_norm")(x)
        mlp = MLP(self.mlp_ratio, self.dropout, output_init=self.residual_init, dtype=self.dtype,
                  name="mlp")
        return x + mlp(normed, deterministic=deterministic)


class TransformerSeq2Seq(nn.Module):
    """Transformer encoder-decoder (Vaswani et al. 2017). ``max_target_length`` sizes the
    decoder's positions: decoder inputs (and decode buffers) may be at most that long."""

    encoder: nn.Module
    vocab_size: int
    width: int
    num_layers: int
    num_heads: int
    max_target_length: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    positional: str = "learned"
    dtype: Any = jnp.float32  # compute dtype of the matrix products

    def setup(self):
        self.embedding = PositionalInput(
            self.vocab_size, self.width, self.max_target_length, self.positional, self.dropout
        )
        residual_init = nn.initializers.normal(INIT_STD / math.sqrt(3 * self.num_layers))
        self.blocks = [
            DecoderBlock(self.num_heads, self.mlp_ratio, self.dropout, residual_init, self.dtype)
            for _ in range(self.num_layers)
        ]
        self.final_norm = nn.LayerNorm(epsilon=1e-5, dtype=self.dtype)
        self.head = nn.Dense(self.vocab_size, kernel_init=nn.initializers.normal(INIT_STD),
                             dtype=self.dtype, dot_general=float32_output_dot_general)

    def decode(self, decoder_inputs, memory, memory_mask, *, deterministic=True):
        """``decoder_inputs [B, T]`` with encoder ``memory [B, S, W]`` -> ``logits [B, T, V]``."""
        x = self.embedding(decoder_inputs, deterministic=deterministic)
        for block in self.blocks:
            x = block(x, memory, memory_mask, deterministic=deterministic)
        return self.head(self.final_norm(x)).astype(jnp.float32)

    def __call__(self, source, source_lengths, decoder_inputs, *, deterministic=True):
        memory, _ = self.encoder(source, source_lengths, deterministic=deterministic)
        memory_mask = key_padding_mask(source_lengths, source.shape[1])
        return self.decode(decoder_inputs, memory, memory_mask, deterministic=deterministic)

    def init_decode_state(self, source, source_lengths, max_length):
        """Encode ``source``; an empty token buffer ``[B, max_length]`` and ``position`` 0."""
        if max_length > self.max_target_length:
            raise ValueError(
                f"decoding {max_length} steps exceeds max_target_length {self.max_target_length}: "
                "decode fewer tokens or build the model with a longer max_target_length"
            )
        memory, _ = self.encoder(source, source_lengths)
        mask = jnp.arange(source.shape[1])[None, :] < source_lengths[:, None]
        tokens = jnp.zeros((source.shape[0], max_length), jnp.int32)
        return {"tokens": tokens, "position": jnp.zeros((), jnp.int32), "memory": memory,
                "memory_mask": mask}

    def decode_step(self, state, token):
        """Write ``token [B]`` at ``position`` and rerun the (causal) decoder on the buffer; the
        logits at ``position`` predict the next token. Targets are short, so no KV cache."""
        position = state["position"]
        tokens = jax.lax.dynamic_update_slice_in_dim(
            state["tokens"], token[:, None].astype(jnp.int32), position, axis=1
        )
        logits = self.decode(tokens, state["memory"], state["memory_mask"][:, None, None, :])
        next_logits = jax.lax.dynamic_index_in_dim(logits, position, axis=1, keepdims=False)
        return next_logits, {**state, "tokens": tokens, "position": position + 1}


def greedy_decode(model, variables, source, source_lengths, num_tokens):
    """Greedy decoding through :func:`seqjax.generation.generate` -> ``[B, num_tokens]``."""
    state = model.apply(variables, source, source_lengths, num_tokens,
                        method="init_decode_state")
    prompt = jnp.full((source.shape[0], 1), BOS, jnp.int32)
    return generate(model_step_fn(model, variables), state, prompt, num_tokens,
                    jax.random.PRNGKey(0), temperature=0.0)


def beam_decode(model, variables, source, source_lengths, num_tokens, beam_size,
                length_penalty=0.0):
    """Beam search per example (:func:`seqjax.generation.beam_search`, beams end at ``EOS``)
    -> ``[B, num_tokens]``. Decode states must be batched on axis 0 except 0-d leaves."""
    state = model.apply(variables, source, source_lengths, num_tokens,
                        method="init_decode_state")
    step_fn = model_step_fn(model, variables)
    prompt = jnp.array([BOS], jnp.int32)

    def one_example(example_state):
        beams = jax.tree.map(
            lambda leaf: leaf if leaf.ndim == 0 else jnp.broadcast_to(leaf, (beam_size, *leaf.shape)),
            example_state,
        )
        tokens, _ = beam_search(step_fn, beams, prompt, num_tokens, beam_size,
                                length_penalty=length_penalty, eos_id=EOS)
        return tokens

    axes = jax.tree.map(lambda leaf: None if leaf.ndim == 0 else 0, state)
    return jax.vmap(one_example, in_axes=(axes,))(state)


def seq2seq_from_config(model_config, task):
    """The encoder-decoder of ``model_config.kind`` for a seq2seq ``task``: a Transformer, or an
    RNN encoder-decoder with ``model_config.attention`` (``none | additive | dot``)."""
    source_vocab, target_vocab = len(task.input_vocabulary), len(task.output_vocabulary)
    dtype = compute_dtype(model_dtype_name(model_config))
    if model_config.kind == "transformer":
        encoder = TransformerEncoder(
            width=model_config.hidden_size, num_layers=model_config.num_layers,
            num_heads=model_config.num_heads, max_length=task.max_input_length,
            vocab_size=source_vocab, mlp_ratio=model_config.mlp_ratio,
            dropout=model_config.dropout, positional=model_config.positional, dtype=dtype,
        )
        return TransformerSeq2Seq(
            encoder, target_vocab, model_config.hidden_size, model_config.num_layers,
            model_config.num_heads, task.max_target_length + 1, model_config.mlp_ratio,
            model_config.dropout, model_config.positional, dtype,
        )
    encoder = RecurrentEncoder(
        cell=model_config.kind, hidden_size=model_config.hidden_size, vocab_size=source_vocab,
        embed_size=model_config.embed_size, num_layers=model_config.num_layers,
        direction=model_config.direction, dtype=dtype,
    )
    return RecurrentSeq2Seq(
        encoder, model_config.kind, model_config.hidden_size, target_vocab,
        model_config.embed_size, model_config.attention, dtype,
    )
