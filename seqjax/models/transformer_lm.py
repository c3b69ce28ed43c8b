"""A decoder-only Transformer language model (GPT), in the spirit of nanoGPT.

.. code-block:: text

    tokens [B, T] -> token embedding (+ learned/sinusoidal positions) -> dropout
      -> num_layers x [ x + Attention(LayerNorm(x)),  x + MLP(LayerNorm(x)) ]   (pre-LN)
      -> LayerNorm -> logits [B, T, V]  (head tied to the token embedding by default)

Initialisation follows nanoGPT/GPT-2: weights ``N(0, 0.02)``, biases zero, and the two
projections that write into the residual stream scaled by ``1 / sqrt(2 * num_layers)``.

Mixed precision (``dtype=jnp.bfloat16``) follows PyTorch's autocast: parameters stay float32,
every matrix product (attention projections and products, MLP, head) and the LayerNorm outputs
feeding them run in ``dtype``, while the residual stream, LayerNorm statistics, the attention
softmax and the returned logits stay float32.

Decoding with a key/value cache (:meth:`TransformerLM.init_decode_state`,
:meth:`TransformerLM.decode_step`) runs one token per call in ``O(context_length)`` time; the
uncached baseline (:meth:`TransformerLM.uncached_decode_step`) reruns the whole window each
step. Both have the ``step_fn(state, token) -> (logits, state)`` signature of
:mod:`seqjax.generation`, and both generate any number of tokens: past ``context_length``
the window slides. Learned and sinusoidal positions are absolute within the window, so a
cache cannot simply drop its oldest token; instead, when the cache is full it is rebuilt from
the window's last ``refill_length`` tokens once every ``context_length - refill_length``
tokens (:func:`window_length`; ``context_length - 1``: nanoGPT's rule of cropping to the last
``context_length`` tokens at every step; the default is ``context_length // 2``). Rotary
positions are relative, so by default their cache is a ring buffer that keeps the last
``context_length`` tokens at one token's cost per token: sliding-window attention
(:meth:`TransformerLM.sliding_window_logits`), which for more than one layer is not the crop
of nanoGPT's rule (a rotary model given a ``refill_length`` rebuilds like the others).
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.attention import (
    DEFAULT_IMPLEMENTATION, MultiHeadSelfAttention, describe_implementation, init_kv_cache,
)
from seqjax.precision import (
    compute_dtype, float32_output_dot_general, model_dtype_name, rounded_dot_general,
)
from seqjax.positional import (
    LearnedPositionalEmbedding,
    check_positional_kind,
    sinusoidal_features,
)

INIT_STD = 0.02
SQRT_HALF = math.sqrt(0.5)


def gelu(x):
    """The exact GELU, ``GELU(x) = x Phi(x) = x / 2 (1 + erf(x / sqrt(2)))``.

    ``Phi`` is the standard normal's CDF. Written with ``erf``, as PyTorch's ``nn.GELU()``
    (nanoGPT's) computes it; ``jax.nn.gelu(approximate=False)`` writes the same function with
    ``erfc``, which XLA:CPU expands into more work (docs/benchmarks.md). Computed in at least
    float32, as PyTorch does for bfloat16: in bfloat16, ``1 + erf`` would cancel for negative
    ``x``.
    """
    wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return (0.5 * wide * (1.0 + jax.lax.erf(wide * SQRT_HALF))).astype(x.dtype)


class MLP(nn.Module):
    """Position-wise feed-forward: ``Dense(mlp_ratio * W) -> GELU -> Dense(W) -> dropout``.

    Position-wise, so it runs on all tokens as one ``[B * T, W]`` matrix. Same function as on
    ``[B, T, W]``, but then XLA:CPU computes the weight gradients without first copying the
    activations' gradient into a transposed layout (measured: 1.28x on a whole training step of
    nanoGPT's 6-layer, width-384 model; see docs/benchmarks.md).
    """

    mlp_ratio: int = 4
    dropout: float = 0.0
    use_bias: bool = True
    output_init: nn.initializers.Initializer = nn.initializers.normal(INIT_STD)
    dtype: Any = jnp.float32  # compute dtype of both layers

    @nn.compact
    def __call__(self, x, *, deterministic=True):
        width = x.shape[-1]
        tokens = x.reshape(-1, width)  # [B * T, W]
        hidden = nn.Dense(
            self.mlp_ratio * width, use_bias=self.use_bias, dtype=self.dtype,
            kernel_init=nn.initializers.normal(INIT_STD), dot_general=rounded_dot_general,
            name="expand",
        )(tokens)
        hidden = gelu(hidden)
        out = nn.Dense(
            width, use_bias=self.use_bias, dtype=self.dtype, kernel_init=self.output_init,
            dot_general=rounded_dot_general, name="contract",
        )(hidden)
        return nn.Dropout(self.dropout)(out.reshape(x.shape), deterministic=deterministic)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + Attention(LN(x))``, then ``x + MLP(LN(x))``; ``[B, T, W]``."""

    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    use_bias: bool = True
    rotary: bool = False
    attention_impl: str | None = "auto"
    residual_init: nn.initializers.Initializer = nn.initializers.normal(INIT_STD)
    dtype: Any = jnp.float32  # compute dtype of the branches; the residual stream is float32

    def setup(self):
        self.attention_norm = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias, dtype=self.dtype)
        self.attention = MultiHeadSelfAttention(
            num_heads=self.num_heads, use_bias=self.use_bias, dropout=self.dropout,
            causal=True, rotary=self.rotary, implementation=self.attention_impl,
            output_init=self.residual_init, dtype=self.dtype,
        )
        self.mlp_norm = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias, dtype=self.dtype)
        self.mlp = MLP(self.mlp_ratio, self.dropout, self.use_bias, self.residual_init,
                       self.dtype)

    def __call__(self, x, *, deterministic=True, window=None):
        x = x + self.attention(self.attention_norm(x), deterministic=deterministic,
                               window=window)
        return x + self.mlp(self.mlp_norm(x), deterministic=deterministic)

    def decode(self, x, cache, position):
        """The block on new tokens ``x: [B, S, W]`` at ``position..`` with a KV cache."""
        attended, cache = self.attention.decode(self.attention_norm(x), cache, position)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), cache


class TransformerLM(nn.Module):
    """GPT: ``tokens [B, T] -> (logits [B, T, V], carry)``, causal (logit ``t`` predicts ``t+1``).

    ``positional`` is ``"learned" | "sinusoidal" | "rotary"`` (:mod:`seqjax.positional`);
    ``attention_impl`` is one of :data:`seqjax.attention.IMPLEMENTATIONS`; the default,
    ``"auto"``, takes cuDNN's flash attention on a recent NVIDIA GPU in bfloat16 and the
    written-out equation elsewhere (:func:`seqjax.attention.resolve_implementation`). ``dtype``
    is the compute dtype (mixed precision, see the module docstring).
    """

    vocab_size: int
    context_length: int
    num_layers: int = 4
    num_heads: int = 4
    width: int = 128
    mlp_ratio: int = 4
    dropout: float = 0.0
    use_bias: bool = True
    tie_weights: bool = True
    positional: str = "learned"
    attention_impl: str | None = "auto"
    dtype: Any = jnp.float32

    def setup(self):
        check_positional_kind(self.positional)
        if self.width % self.num_heads:
            raise ValueError(
                f"width {self.width} is not divisible by num_heads {self.num_heads}: "
                "choose num_heads that divides the width"
            )
        normal = nn.initializers.normal(INIT_STD)
        self.token_embedding = nn.Embed(self.vocab_size, self.width, embedding_init=normal)
        if self.positional == "learned":
            self.position_embedding = LearnedPositionalEmbedding(self.context_length, self.width)
        self.embedding_dropout = nn.Dropout(self.dropout)
        residual_init = nn.initializers.normal(INIT_STD / math.sqrt(2 * self.num_layers))
        self.blocks = [
            TransformerBlock(
                num_heads=self.num_heads, mlp_ratio=self.mlp_ratio, dropout=self.dropout,
                use_bias=self.use_bias, rotary=self.positional == "rotary",
                attention_impl=self.attention_impl, residual_init=residual_init,
                dtype=self.dtype,
            )
            for _ in range(self.num_layers)
        ]
        self.final_norm = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias, dtype=self.dtype)
        if not self.tie_weights:
            self.head = nn.Dense(self.vocab_size, use_bias=False, kernel_init=normal,
                                 dtype=self.dtype, dot_general=float32_output_dot_general)

    def _embed(self, tokens, positions):
        """Token embeddings plus additive positions (none for rotary): ``[B, T] -> [B, T, W]``."""
        x = self.token_embedding(tokens)
        if self.positional == "learned":
            x = x + self.position_embedding(positions)
        elif self.positional == "sinusoidal":
            x = x + sinusoidal_features(positions, self.width).astype(x.dtype)
        return x

    def _logits(self, x):
        """float32 logits: the head's matrix product runs in ``dtype`` and returns its float32
        sum unrounded."""
        x = self.final_norm(x).astype(self.dtype)
        if self.tie_weights:
            embedding = self.token_embedding.embedding.astype(self.dtype)
            return float32_output_dot_general(x, embedding, (((x.ndim - 1,), (1,)), ((), ())))
        return self.head(x).astype(jnp.float32)

    def __call__(self, tokens, carry=None, *, deterministic=True):
        """``tokens: int32 [B, T]`` with ``T <= context_length`` -> ``(logits [B, T, V], carry)``.

        ``carry`` is returned unchanged: attention sees the whole window, it keeps no state.
        """
        length = tokens.shape[1]
        if length > self.context_length:
            raise ValueError(
                f"sequence length {length} exceeds context_length {self.context_length}: "
                "feed shorter sequences or build the model with a longer context_length"
            )
        return self._forward(tokens, deterministic=deterministic), carry

    def _forward(self, tokens, *, deterministic=True, window=None):
        """Logits of ``tokens: [B, T]`` at positions ``0 .. T - 1``; ``window`` limits every
        attention to the last ``window`` positions."""
        x = self._embed(tokens, jnp.arange(tokens.shape[1]))
        x = self.embedding_dropout(x, deterministic=deterministic)
        for block in self.blocks:
            x = block(x, deterministic=deterministic, window=window)
        return self._logits(x)

    def sliding_window_logits(self, tokens):
        """``tokens: int32 [B, N]`` of any length -> logits ``[B, N, V]`` where every layer's
        attention sees the last ``context_length`` positions (sliding-window attention).

        Rotary positions only: the scores see relative positions, so each query's window is
        one it could have met in training. This is the function the ring-buffer cache decodes
        (:meth:`init_decode_state`). Up to ``context_length`` tokens it is :meth:`__call__`;
        past it, a token's representation in layer ``l`` depends on up to
        ``l * (context_length - 1)`` tokens back, so it is not the model run on the last
        ``context_length`` tokens (nanoGPT's crop) unless the model has one layer.
        """
        if self.positional != "rotary":
            raise ValueError(
                f"sliding-window attention needs rotary positions, not {self.positional!r}: "
                "its windows move past the positions the model was trained on"
            )
        return self._forward(tokens, window=self.context_length)

    def initial_carry(self, batch_size):
        """The Transformer keeps no carry between windows: ``None``."""
        return None

    def checked_refill_length(self, refill_length=None):
        """The sliding window's ``refill_length``, checked. Left out, it is ``None`` for rotary
        positions (the ring-buffer cache, see :meth:`init_decode_state`) and
        ``context_length // 2`` for the others."""
        if self.slides_by_ring(refill_length):
            return None
        if self.context_length < 2:
            raise ValueError(
                f"a context of {self.context_length} token cannot slide: generate at most "
                f"{self.context_length} token in all, or train with a longer context_length"
            )
        refill_length = self.context_length // 2 if refill_length is None else refill_length
        if not 1 <= refill_length < self.context_length:
            raise ValueError(
                f"refill_length {refill_length} must be in [1, context_length - 1 = "
                f"{self.context_length - 1}]: it is how many tokens the sliding window keeps "
                "when it is full"
            )
        return refill_length

    def _empty_caches(self, batch_size, length):
        head_dim = self.width // self.num_heads
        return tuple(
            init_kv_cache(batch_size, self.num_heads, length, head_dim, self.dtype)
            for _ in range(self.num_layers)
        )

    def init_decode_state(self, batch_size, max_length, refill_length=None):
        """Empty KV cache for ``max_length`` tokens (any number): ``{"layers": ({"key",
        "value"}, ...), "position": int32 []}``, each cache ``[B, num_heads, L, head_dim]``
        with ``L = min(max_length, context_length)``.

        Past ``context_length`` the window slides, by one of two rules:

        - rebuilding (learned or sinusoidal positions, or rotary given a ``refill_length``):
          the state also keeps the last ``refill_length`` tokens fed (``"recent": [B,
          refill_length]``), from which :meth:`decode_step` rebuilds the cache when it is
          full (:func:`window_length`); the definition is :meth:`uncached_decode_step`.
        - ring buffer (rotary positions, ``refill_length`` left out): the cache keeps the
          last ``context_length`` tokens, each new one overwriting the oldest
          (:func:`seqjax.attention.cached_attention`), at the cost of one token per token;
          the definition is :meth:`sliding_window_logits`. Its rotary angles stay under
          ``2 * context_length`` positions (:func:`seqjax.attention.ring_rotary_scores`),
          so decoding is as exact a million tokens in as at the start.
        """
        refill_length = self._window_refill_length(max_length, refill_length)
        length = min(max_length, self.context_length)
        state = {"layers": self._empty_caches(batch_size, length),
                 "position": jnp.zeros((), jnp.int32)}
        if refill_length:
            state["recent"] = jnp.zeros((batch_size, refill_length), jnp.int32)
        return state

    def slides_by_ring(self, refill_length=None):
        """Whether decoding with this ``refill_length`` slides a ring-buffer cache: rotary
        positions with no ``refill_length`` (:meth:`init_decode_state`)."""
        return self.positional == "rotary" and refill_length is None

    def _window_refill_length(self, max_length, refill_length):
        """``refill_length`` checked (even where the window will not slide), or its default:
        ``None`` for the ring buffer (whether it will slide or not), else 0 when
        ``max_length`` tokens fit the context."""
        if self.slides_by_ring(refill_length):
            return None
        if max_length > self.context_length or refill_length is not None:
            refill_length = self.checked_refill_length(refill_length)
        return refill_length if max_length > self.context_length else 0

    def _decode_tokens(self, layers, tokens, position):
        """Feed ``tokens: [B, S]`` at ``position..`` through the cached blocks ->
        ``(logits [B, S, V], layers)``."""
        x = self._embed(tokens, position + jnp.arange(tokens.shape[1]))
        new_layers = []
        for block, cache in zip(self.blocks, layers, strict=True):
            x, cache = block.decode(x, cache, position)
            new_layers.append(cache)
        return self._logits(x), tuple(new_layers)

    def _refill(self, state):
        """The cache rebuilt from the window's last ``refill_length`` tokens, at positions
        ``0 ..`` (the window slides: every kept token moves to a new position)."""
        kept = state["recent"]
        empty = jax.tree.map(jnp.zeros_like, state["layers"])
        _, layers = self._decode_tokens(empty, kept, jnp.zeros((), jnp.int32))
        return {**state, "layers": layers, "position": jnp.asarray(kept.shape[1], jnp.int32)}

    def decode_step(self, state, token):
        """Feed ``token: [B]`` at ``state["position"]`` -> ``(next-token logits [B, V], state)``;
        with the rebuilding rule a full cache is first rebuilt (:meth:`_refill`), while a ring
        buffer slides by itself (:meth:`init_decode_state`). A state of learned or sinusoidal
        positions fed more tokens than its ``max_length`` returns NaN logits: with nothing to
        rebuild from, its cache cannot slide (size the state with
        :func:`seqjax.generation.fed_length`)."""
        if "recent" in state:
            full = state["position"] == self.context_length
            state = jax.lax.cond(full, self._refill, lambda state: state, state)
            recent = jnp.concatenate([state["recent"][:, 1:], token[:, None]], axis=1)
            state = {**state, "recent": recent}
        position = state["position"]
        logits, layers = self._decode_tokens(state["layers"], token[:, None], position)
        logits = logits[:, 0]
        if "recent" not in state and self.positional != "rotary":
            logits = jnp.where(position < layers[0]["key"].shape[2], logits, jnp.nan)
        return logits, {**state, "layers": layers, "position": position + 1}

    def uncached_decode_state(self, batch_size, max_length, refill_length=None):
        """Baseline decode state without a cache: every token fed (``"tokens": [B, L]``, with
        ``context_length`` slots of padding when the window slides by rebuilding), how many
        (``"position"``), and, for the rebuilding rule, the current window's length and
        ``refill_length`` (:meth:`init_decode_state` names the rules)."""
        refill_length = self._window_refill_length(max_length, refill_length)  # 0: never used
        if refill_length is None:  # the ring buffer's definition: sliding-window attention
            return {"tokens": jnp.zeros((batch_size, max_length), jnp.int32),
                    "position": jnp.zeros((), jnp.int32)}
        sliding = max_length > self.context_length
        return {
            "tokens": jnp.zeros(
                (batch_size, max_length + (self.context_length if sliding else 0)), jnp.int32
            ),
            "position": jnp.zeros((), jnp.int32),
            "window": jnp.zeros((), jnp.int32),
            "refill_length": jnp.asarray(refill_length, jnp.int32),
        }

    def uncached_decode_step(self, state, token):
        """The definition :meth:`decode_step` computes: run the model afresh on the tokens fed
        so far, ``token`` last, and read its last logits.

        The rebuilding rule runs :meth:`__call__` on the window of :func:`window_length`
        tokens that ends with ``token``, read as a fixed ``[B, min(L, context_length)]`` slice
        starting at its first token; the ring buffer's rule runs
        :meth:`sliding_window_logits` on all ``L`` slots. Causality makes the slots after
        ``token`` irrelevant, and the fixed shapes keep one compiled program for every step.
        """
        position = state["position"]
        tokens = jax.lax.dynamic_update_slice_in_dim(
            state["tokens"], token[:, None].astype(jnp.int32), position, axis=1
        )
        state = {**state, "tokens": tokens, "position": position + 1}
        if "window" not in state:
            logits = self.sliding_window_logits(tokens)
            return jax.lax.dynamic_index_in_dim(logits, position, axis=1, keepdims=False), state
        window = window_length(state["window"], self.context_length, state["refill_length"])
        span = min(tokens.shape[1], self.context_length)
        start = position + 1 - window
        logits, _ = self(jax.lax.dynamic_slice_in_dim(tokens, start, span, axis=1))
        next_logits = jax.lax.dynamic_index_in_dim(logits, window - 1, axis=1, keepdims=False)
        return next_logits, {**state, "window": window}


def window_length(previous, context_length, refill_length):
    """How many tokens the sliding window holds once one more token is fed.

    .. math::

        w_{n+1} = \\begin{cases} w_n + 1 & w_n < C \\\\ K + 1 & w_n = C \\end{cases}

    with ``C = context_length``, ``K = refill_length`` and ``w_0 = 0``: the window grows to
    the full context, then keeps its last ``K`` tokens. ``K = C - 1`` is nanoGPT's rule (the
    last ``C`` tokens, always); a smaller ``K`` lets a KV cache be rebuilt less often.
    """
    return jnp.where(previous < context_length, previous + 1, refill_length + 1)


def from_config(model_config, vocab_size, context_length):
    """A :class:`TransformerLM` from the ``model`` ConfigDict (``kind == "transformer"``).

    Reads ``num_layers, num_heads, width, mlp_ratio, dropout, use_bias, tie_weights,
    positional`` and, if present, ``attention_impl`` (default ``"auto"``) and ``dtype``
    (default ``"float32"``, see :func:`seqjax.precision.compute_dtype`).
    """
    if model_config.kind != "transformer":
        raise ValueError(
            f"model.kind is {model_config.kind!r}, not 'transformer': "
            "build this config with its own model's from_config"
        )
    return TransformerLM(
        vocab_size=vocab_size,
        context_length=context_length,
        num_layers=model_config.num_layers,
        num_heads=model_config.num_heads,
        width=model_config.width,
        mlp_ratio=model_config.mlp_ratio,
        dropout=model_config.dropout,
        use_bias=model_config.use_bias,
        tie_weights=model_config.tie_weights,
        positional=model_config.positional,
        attention_impl=model_config.get("attention_impl", DEFAULT_IMPLEMENTATION),
        dtype=compute_dtype(model_dtype_name(model_config)),
    )


def describe_attention(model_config):
    """What the training step of the Transformer in ``model_config`` attends with on JAX's default
    device, as one line (:func:`seqjax.attention.describe_implementation`); decoding with the
    KV cache always runs the written-out equation."""
    implementation = model_config.get("attention_impl", DEFAULT_IMPLEMENTATION)
    dtype = compute_dtype(model_dtype_name(model_config))
    head_dim = model_config.width // model_config.num_heads
    return describe_implementation(implementation, dtype, head_dim)
