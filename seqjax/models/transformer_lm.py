"""A decoder-only Transformer language model (GPT), in the spirit of nanoGPT.

.. code-block:: text

    tokens [B, T] -> token embedding (+ learned/sinusoidal positions) -> dropout
      -> num_layers x [ x + Attention(LayerNorm(x)),  x + MLP(LayerNorm(x)) ]   (pre-LN)
      -> LayerNorm -> logits [B, T, V]  (head tied to the token embedding by default)

Initialisation follows nanoGPT/GPT-2: weights ``N(0, 0.02)``, biases zero, and the two
projections that write into the residual stream scaled by ``1 / sqrt(2 * num_layers)``.

Decoding with a key/value cache (:meth:`TransformerLM.init_decode_state`,
:meth:`TransformerLM.decode_step`) runs one token per call in ``O(max_length)`` time; the
uncached baseline (:meth:`TransformerLM.uncached_decode_step`) reruns the whole token
buffer each step. Both have the ``step_fn(state, token) -> (logits, state)`` signature of
:mod:`seqjax.generation`. The Transformer has no sliding window: prompt plus generated
tokens must fit in ``context_length``, else :meth:`init_decode_state` raises ``ValueError``.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.attention import MultiHeadSelfAttention, init_kv_cache
from seqjax.positional import (
    LearnedPositionalEmbedding,
    check_positional_kind,
    sinusoidal_features,
)

INIT_STD = 0.02


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

    @nn.compact
    def __call__(self, x, *, deterministic=True):
        width = x.shape[-1]
        tokens = x.reshape(-1, width)  # [B * T, W]
        hidden = nn.Dense(
            self.mlp_ratio * width, use_bias=self.use_bias,
            kernel_init=nn.initializers.normal(INIT_STD), name="expand",
        )(tokens)
        hidden = nn.gelu(hidden, approximate=False)
        out = nn.Dense(
            width, use_bias=self.use_bias, kernel_init=self.output_init, name="contract"
        )(hidden)
        return nn.Dropout(self.dropout)(out.reshape(x.shape), deterministic=deterministic)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm block: ``x + Attention(LN(x))``, then ``x + MLP(LN(x))``; ``[B, T, W]``."""

    num_heads: int
    mlp_ratio: int = 4
    dropout: float = 0.0
    use_bias: bool = True
    rotary: bool = False
    attention_impl: str | None = "reference"
    residual_init: nn.initializers.Initializer = nn.initializers.normal(INIT_STD)

    def setup(self):
        self.attention_norm = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias)
        self.attention = MultiHeadSelfAttention(
            num_heads=self.num_heads, use_bias=self.use_bias, dropout=self.dropout,
            causal=True, rotary=self.rotary, implementation=self.attention_impl,
            output_init=self.residual_init,
        )
        self.mlp_norm = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias)
        self.mlp = MLP(self.mlp_ratio, self.dropout, self.use_bias, self.residual_init)

    def __call__(self, x, *, deterministic=True):
        x = x + self.attention(self.attention_norm(x), deterministic=deterministic)
        return x + self.mlp(self.mlp_norm(x), deterministic=deterministic)

    def decode(self, x, cache, position):
        """The block on new tokens ``x: [B, S, W]`` at ``position..`` with a KV cache."""
        attended, cache = self.attention.decode(self.attention_norm(x), cache, position)
        x = x + attended
        return x + self.mlp(self.mlp_norm(x)), cache


class TransformerLM(nn.Module):
    """GPT: ``tokens [B, T] -> (logits [B, T, V], carry)``, causal (logit ``t`` predicts ``t+1``).

    ``positional`` is ``"learned" | "sinusoidal" | "rotary"`` (:mod:`seqjax.positional`);
    ``attention_impl`` is one of :data:`seqjax.attention.IMPLEMENTATIONS`.
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
    attention_impl: str | None = "reference"

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
            )
            for _ in range(self.num_layers)
        ]
        self.final_norm = nn.LayerNorm(epsilon=1e-5, use_bias=self.use_bias)
        if not self.tie_weights:
            self.head = nn.Dense(self.vocab_size, use_bias=False, kernel_init=normal)

    def _embed(self, tokens, positions):
        """Token embeddings plus additive positions (none for rotary): ``[B, T] -> [B, T, W]``."""
        x = self.token_embedding(tokens)
        if self.positional == "learned":
            x = x + self.position_embedding(positions)
        elif self.positional == "sinusoidal":
            x = x + sinusoidal_features(positions, self.width).astype(x.dtype)
        return x

    def _logits(self, x):
        x = self.final_norm(x)
        if self.tie_weights:
            return self.token_embedding.attend(x)
        return self.head(x)

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
        x = self._embed(tokens, jnp.arange(length))
        x = self.embedding_dropout(x, deterministic=deterministic)
        for block in self.blocks:
            x = block(x, deterministic=deterministic)
        return self._logits(x), carry

    def initial_carry(self, batch_size):
        """The Transformer keeps no carry between windows: ``None``."""
        return None

    def _check_decode_length(self, max_length):
        if max_length > self.context_length:
            raise ValueError(
                f"prompt + generated tokens = {max_length} exceeds the context_length "
                f"{self.context_length} of this Transformer (it has no sliding window): "
                "shorten the prompt or generate fewer tokens"
            )

    def init_decode_state(self, batch_size, max_length):
        """Empty KV cache for ``max_length`` tokens: ``{"layers": ({"key", "value"}, ...),
        "position": int32 []}``, each cache ``[B, num_heads, max_length, width // num_heads]``.

        Raises ``ValueError`` if ``max_length > context_length``.
        """
        self._check_decode_length(max_length)
        head_dim = self.width // self.num_heads
        layers = tuple(
            init_kv_cache(batch_size, self.num_heads, max_length, head_dim)
            for _ in range(self.num_layers)
        )
        return {"layers": layers, "position": jnp.zeros((), jnp.int32)}

    def decode_step(self, state, token):
        """Feed ``token: [B]`` at ``state["position"]`` -> ``(next-token logits [B, V], state)``."""
        position = state["position"]
        x = self._embed(token[:, None], position[None])
        layers = []
        for block, cache in zip(self.blocks, state["layers"], strict=True):
            x, cache = block.decode(x, cache, position)
            layers.append(cache)
        logits = self._logits(x)[:, 0]
        return logits, {"layers": tuple(layers), "position": position + 1}

    def uncached_decode_state(self, batch_size, max_length):
        """Baseline decode state without a cache: a token buffer ``[B, max_length]`` + position."""
        self._check_decode_length(max_length)
        return {
            "tokens": jnp.zeros((batch_size, max_length), jnp.int32),
            "position": jnp.zeros((), jnp.int32),
        }

    def uncached_decode_step(self, state, token):
        """Like :meth:`decode_step`, but reruns the full ``[B, max_length]`` buffer every step.

        Causality makes the unfilled tail of the buffer irrelevant to the logits read at
        ``position``; the fixed shape keeps one compiled program for every step.
        """
        position = state["position"]
        tokens = jax.lax.dynamic_update_slice_in_dim(
            state["tokens"], token[:, None].astype(jnp.int32), position, axis=1
        )
        logits, _ = self(tokens)
        next_logits = jax.lax.dynamic_index_in_dim(logits, position, axis=1, keepdims=False)
        return next_logits, {"tokens": tokens, "position": position + 1}


def from_config(model_config, vocab_size, context_length):
    """A :class:`TransformerLM` from the ``model`` ConfigDict (``kind == "transformer"``).

    Reads ``num_layers, num_heads, width, mlp_ratio, dropout, use_bias, tie_weights,
    positional`` and, if present, ``attention_impl`` (default ``"reference"``).
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
        attention_impl=model_config.get("attention_impl", "reference"),
    )
