"""Scaled dot-product attention: the pure equation, a fused fast path, and a multi-head layer.

.. math::

    \\mathrm{Attention}(Q, K, V) = \\mathrm{softmax}\\!\\left(\\frac{Q K^\\top}{\\sqrt{d_k}}\\right) V

Attention is a soft database lookup: a query is compared with every key, the comparisons
become weights, and the answer is the weighted sum of the values (:func:`attend`). Exact-match
lookup uses 0/1 weights (:func:`exact_match_weights`); attention uses softmax weights, which
sum to one.

Layouts: the pure functions take ``[..., T, d]`` (any leading axes); the multi-head functions
take ``[B, T, num_heads, head_dim]``, the layout of :func:`jax.nn.dot_product_attention`. Masks
are boolean with ``True`` = may attend, broadcastable to ``[..., T_q, T_k]``.

Mixed precision: the projections and the two matrix products run in the layers' ``dtype``
(e.g. bfloat16, parameters stay float32); the softmax always runs in float32.
"""

import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from seqjax.positional import apply_rotary
from seqjax.precision import rounded_dot_general

IMPLEMENTATIONS = ("auto", "reference", "xla", "cudnn", None)
DEFAULT_IMPLEMENTATION = "auto"  # what a model config without attention_impl runs
CUDNN_MIN_COMPUTE_CAPABILITY = 8.0  # cuDNN's flash attention: Ampere, Hopper and later
CUDNN_HEAD_DIMS = range(8, 129, 8)  # head sizes it takes: multiples of 8 up to 128
# Queries per block of causal self-attention on a CPU (causal_attention_by_query_blocks).
# Measured on nanoGPT's 6-layer GPT at T = 256 against one block (docs/benchmarks.md): 64
# beat 128 (forward pass 13% faster, training step 1-3%).
CAUSAL_QUERY_BLOCK = 64


def attend(weights, values):
    """The weighted sum of values, ``sum_j w_j v_j``, as a matrix product ``weights @ values``.

    ``weights: [T_k]`` with ``values: [T_k]`` (scalar values) or ``[T_k, d_v]``; batched:
    ``weights [..., T_q, T_k] @ values [..., T_k, d_v] -> [..., T_q, d_v]``. The weights need
    not sum to one (an exact-match lookup sums every matching value). Stacks of matrices
    multiply by :func:`~seqjax.precision.rounded_dot_general` (the same product; in bfloat16,
    the form a CPU runs at its bfloat16 rate).
    """
    if values.ndim == weights.ndim >= 2:  # stacks of matrices, e.g. [B, N, T_q, T_k]
        return jnp.einsum("...qk,...kd->...qd", weights, values, _dot_general=rounded_dot_general)
    return jnp.matmul(weights, values)


def exact_match_weights(query, keys):
    """Database lookup weights: 1 where ``keys == query``, else 0 (``keys: [..., T_k]``)."""
    return (keys == query).astype(jnp.result_type(float))


def causal_mask(query_length, key_length):
    """``[T_q, T_k]`` mask where query ``i`` may attend key ``j`` iff ``j <= i``.

    Query ``i`` and key ``i`` are the same position (top-left aligned, as the ``is_causal``
    of :func:`jax.nn.dot_product_attention`).
    """
    return jnp.tril(jnp.ones((query_length, key_length), dtype=bool))


def attention_weights(q, k, mask=None):
    """``softmax(Q K^T / sqrt(d_k))`` over keys, ``[..., T_q, T_k]``; masked keys get weight 0.

    A query row whose keys are all masked gets uniform weights (never NaN).
    """
    scores = jnp.einsum("...qd,...kd->...qk", q, k, _dot_general=rounded_dot_general)
    scores = scores / math.sqrt(q.shape[-1])
    return masked_softmax(scores, mask)


def masked_softmax(scores, mask=None):
    """Softmax over the last axis where only ``mask == True`` entries get weight, computed in
    float32 (returned in ``scores``' dtype)."""
    dtype, scores = scores.dtype, scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
    if mask is not None:
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    return jax.nn.softmax(scores, axis=-1).astype(dtype)


def scaled_dot_product_attention(q, k, v, mask=None):
    """``softmax(Q K^T / sqrt(d_k)) V``: ``q [..., T_q, d_k]``, ``k [..., T_k, d_k]``,
    ``v [..., T_k, d_v]`` -> ``[..., T_q, d_v]``.

    ``mask``: boolean, broadcastable to ``[..., T_q, T_k]``, ``True`` = may attend.
    """
    return attend(attention_weights(q, k, mask), v)


def cudnn_runs(device, dtype, head_dim, mask=None):
    """Whether cuDNN's flash attention takes this call: an NVIDIA GPU of compute capability
    :data:`CUDNN_MIN_COMPUTE_CAPABILITY` or more, 16-bit inputs (bfloat16 or float16), a head
    size in :data:`CUDNN_HEAD_DIMS`, and no mask beyond causality."""
    try:
        capability = float(getattr(device, "compute_capability", None))
    except (TypeError, ValueError):  # not an NVIDIA GPU
        return False
    return (device.platform == "gpu" and capability >= CUDNN_MIN_COMPUTE_CAPABILITY
            and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16) and head_dim in CUDNN_HEAD_DIMS
            and mask is None)


def default_gpu():
    """JAX's first device where its default backend is a GPU, else None."""
    device = jax.devices()[0]
    return device if device.platform == "gpu" else None


def resolve_implementation(implementation, q, mask=None, device=None):
    """The implementation a call on ``q: [B, T, N, H]`` gets: :func:`choose_implementation`."""
    return choose_implementation(implementation, q.dtype, q.shape[-1], mask, device)


def choose_implementation(implementation, dtype, head_dim, mask=None, device=None):
    """The implementation a call asks for: ``"auto"`` is ``"cudnn"`` where :func:`cudnn_runs`
    on ``device`` (default: :func:`default_gpu`) for inputs of ``dtype`` and ``head_dim``, else
    ``"reference"`` (so float32 stays on the written-out equation); any other choice is kept."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown attention implementation {implementation!r}: choose one of "
            f"{', '.join(map(repr, IMPLEMENTATIONS))}"
        )
    if implementation != "auto":
        return implementation
    device = default_gpu() if device is None else device
    usable = device is not None and cudnn_runs(device, dtype, head_dim, mask)
    return "cudnn" if usable else "reference"


def describe_implementation(implementation, dtype, head_dim):
    """One line for a run's log: what causal self-attention on JAX's default device computes
    with, and what keeps cuDNN's flash attention out where it does not run."""
    chosen = choose_implementation(implementation, dtype, head_dim)
    if chosen == "cudnn":  # float32 inputs run in bfloat16 (_fused_attention)
        runs_in = "float16" if jnp.dtype(dtype) == jnp.float16 else "bfloat16"
        blockers = _cudnn_blockers(runs_in, head_dim)
        out = f": it cannot run here, {', '.join(blockers)}" if blockers else ""
        return f"cuDNN's flash attention ({runs_in}, head size {head_dim}){out}"
    if chosen != "reference":
        return f"jax.nn.dot_product_attention(implementation={chosen!r})"
    equation = "the written-out softmax(QK^T/sqrt(d_k))V"
    if implementation != "auto":
        return equation
    blockers = ", ".join(_cudnn_blockers(dtype, head_dim))
    return f"{equation}; cuDNN's flash attention is out: {blockers}"


def _cudnn_blockers(dtype, head_dim):
    """What keeps cuDNN's flash attention from inputs of ``dtype`` and ``head_dim`` here."""
    gpu = default_gpu()
    no_gpu = gpu is None or not cudnn_runs(gpu, jnp.bfloat16, CUDNN_HEAD_DIMS[0])
    reasons = (
        (f"{jnp.dtype(dtype).name} (it takes model.dtype=bfloat16)",
         jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16)),
        (f"head size {head_dim} (it takes multiples of 8 up to 128)",
         head_dim not in CUDNN_HEAD_DIMS),
        (f"no NVIDIA GPU of compute capability {CUDNN_MIN_COMPUTE_CAPABILITY} or more", no_gpu),
    )
    return [reason for reason, applies in reasons if applies]


def multi_head_attention(q, k, v, *, causal=False, mask=None, implementation="reference"):
    """Attention per head on the ``[B, T, num_heads, head_dim]`` layout -> ``[B, T_q, N, H]``.

    ``implementation``: ``"reference"`` (:func:`scaled_dot_product_attention`), ``"auto"``
    (cuDNN's flash attention where :func:`resolve_implementation` allows it and the program is
    lowered for an NVIDIA GPU, else the reference) or one of :func:`jax.nn.dot_product_attention`'s:
    ``"xla"``, ``"cudnn"`` (flash attention, GPU only; it takes 16-bit floats, so float32
    inputs run in bfloat16 and the output is cast back) or ``None`` (JAX's choice, which is
    ``"xla"``). ``mask`` broadcasts to ``[B, N, T_q, T_k]``; ``causal`` adds :func:`causal_mask`.
    """
    chosen = resolve_implementation(implementation, q, mask)
    reference = partial(_reference_attention, causal=causal, mask=mask)
    if chosen == "reference":
        return reference(q, k, v)
    fused = partial(_fused_attention, causal=causal, mask=mask, implementation=chosen)
    if implementation == "auto":  # a CPU program on a GPU machine (jax.default_device) too
        return jax.lax.platform_dependent(q, k, v, cuda=fused, default=reference)
    return fused(q, k, v)


def _reference_attention(q, k, v, *, causal, mask):
    """:func:`scaled_dot_product_attention` per head, ``causal`` joined to ``mask``; on a CPU,
    causal self-attention longer than :data:`CAUSAL_QUERY_BLOCK` runs by query blocks."""
    whole = partial(_masked_attention, causal=causal, mask=mask)
    by_blocks = causal and mask is None and q.shape[1] == k.shape[1] > CAUSAL_QUERY_BLOCK
    if not by_blocks:
        return whole(q, k, v)
    blocks = partial(causal_attention_by_query_blocks, block=CAUSAL_QUERY_BLOCK)
    return jax.lax.platform_dependent(q, k, v, cpu=blocks, default=whole)


def _masked_attention(q, k, v, *, causal, mask):
    if causal:
        causal_part = causal_mask(q.shape[1], k.shape[1])
        mask = causal_part if mask is None else jnp.logical_and(mask, causal_part)
    swap = _swap_time_and_heads
    return swap(scaled_dot_product_attention(swap(q), swap(k), swap(v), mask))


def causal_attention_by_query_blocks(q, k, v, block):
    """Causal self-attention on ``[B, T, N, H]``, the queries taken ``block`` at a time.

    Queries ``[s, e)`` may attend keys ``[0, e)`` only, so each block's scores stop there:

    .. math::

        O_{[s, e)} = \\mathrm{softmax}\\!\\left(\\frac{Q_{[s, e)} K_{[0, e)}^\\top}{\\sqrt{d_k}}
        + M\\right) V_{[0, e)}, \\qquad M_{ij} = 0 \\text{ if } j \\le s + i \\text{ else } -\\infty

    The keys left out have weight 0 in the whole causal softmax, so the output is the same
    (up to the order of float sums) for about ``(n + 1) / 2n`` of the score products, with
    ``n = T / block`` blocks.
    """
    outputs = []
    for start in range(0, q.shape[1], block):
        end = min(start + block, q.shape[1])
        mask = jnp.arange(end)[None, :] <= jnp.arange(start, end)[:, None]
        swap = _swap_time_and_heads
        heads = scaled_dot_product_attention(
            swap(q[:, start:end]), swap(k[:, :end]), swap(v[:, :end]), mask)
        outputs.append(swap(heads))
    return jnp.concatenate(outputs, axis=1)


def _fused_attention(q, k, v, *, causal, mask, implementation):
    """:func:`jax.nn.dot_product_attention`; cuDNN's kernel gets float32 inputs as bfloat16."""
    dtype = jnp.bfloat16 if implementation == "cudnn" and q.dtype == jnp.float32 else q.dtype
    out = jax.nn.dot_product_attention(
        q.astype(dtype), k.astype(dtype), v.astype(dtype), mask=mask, is_causal=causal,
        implementation=implementation,
    )
    return out.astype(q.dtype)


def _swap_time_and_heads(x):
    """``[B, T, N, H] <-> [B, N, T, H]``."""
    return jnp.swapaxes(x, 1, 2)


def init_kv_cache(batch_size, num_heads, max_length, head_dim, dtype=jnp.float32):
    """An empty key/value cache ``{"key", "value"}``, each ``[B, N, max_length, head_dim]``."""
    shape = (batch_size, num_heads, max_length, head_dim)
    return {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}


def _ordered_after(value, dependency):
    """``value`` unchanged, but data-dependent on ``dependency`` (assumed finite).

    XLA orders operations by data dependencies: a cache write that does not depend on the
    attention reading the cache makes XLA copy the whole cache on every decode step instead
    of updating it in place (see the optimized HLO of a decode loop).
    """
    return value + jnp.zeros((), value.dtype) * dependency.reshape(-1)[0].astype(value.dtype)


def ring_slot_positions(position, length):
    """The position each slot of a ring buffer of ``length`` slots holds before ``position``
    is written: slot ``j`` holds the latest ``p < position`` with ``p = j (mod length)``,

    .. math::

        p_j = \\text{position} - 1 - ((\\text{position} - 1 - j) \\bmod \\text{length}),

    negative where the slot is still empty. ``int32 [length]``.
    """
    slots = jnp.arange(length)
    return position - 1 - jnp.mod(position - 1 - slots, length)


def ring_rotary_scores(q, k, cached_keys, position):
    """RoPE scores ``<R_t q, R_{p_j} k_j>`` of ``S`` new queries at positions ``t = position
    ..`` against a ring buffer of ``L`` slots and against the new keys, with every angle under
    ``2L`` positions.

    Slot ``j`` caches the key of position ``p_j = j (mod L)`` rotated by ``j``, the position
    modulo ``L``, not by ``p_j``. Of the slots in query ``t``'s window, those ``j < t mod L``
    hold ``p_j = t - (t mod L) + j`` (its own lap of the ring) and those ``j > t mod L`` hold
    ``p_j = t - (t mod L) - L + j`` (the lap before), so, as
    ``<R_a q, R_b k> = <R_{a-b} q, k>``,

    .. math::

        \\langle R_t q, R_{p_j} k_j \\rangle = \\begin{cases}
            \\langle R_{t \\bmod L}\\, q, R_j k_j \\rangle & j < t \\bmod L \\\\
            \\langle R_{t \\bmod L + L}\\, q, R_j k_j \\rangle & j > t \\bmod L.
        \\end{cases}

    The new tokens score each other at angles counted from the lap of the first,
    ``a_s = position mod L + s`` (under ``2L``: ``S <= L``), so their relative positions hold
    also where the chunk wraps past the buffer's end: ``<R_{a_s} q_s, R_{a_{s'}} k_{s'}>``.

    Angles at absolute positions would lose float32 precision as decoding goes on (outputs
    off by 2e-3 a million tokens in, docs/benchmarks.md). Takes ``[B, N, S, H]`` queries and new
    keys before rotation, and ``cached_keys [B, N, L, H]`` rotated by slot; returns
    ``(cached_scores [B, N, S, L], new_scores [B, N, S, S], k)`` with ``k`` rotated by its
    slot, ``t mod L``: the keys to cache. Only the scores of slots in each query's window are
    these (where ``a_s >= L``, the slots ``j < t mod L`` are not); the caller masks the rest.
    """
    max_length = cached_keys.shape[2]
    from_lap = jnp.mod(position, max_length) + jnp.arange(q.shape[2])  # [S]: a_s
    in_ring = jnp.mod(from_lap, max_length)  # t mod L
    q_from_lap = apply_rotary(q, from_lap)
    this_lap = jnp.einsum("...qd,...kd->...qk", q_from_lap, cached_keys)  # a_s >= L: masked
    lap_before = jnp.einsum("...qd,...kd->...qk", apply_rotary(q, in_ring + max_length),
                            cached_keys)  # two products: one on stacked queries was slower
    cached_scores = jnp.where(jnp.arange(max_length) < in_ring[:, None], this_lap, lap_before)
    k_from_lap = apply_rotary(k, from_lap)
    new_scores = jnp.einsum("...qd,...kd->...qk", q_from_lap, k_from_lap)
    # One token never wraps (a_0 < L); not rotating it twice keeps decoding 5% faster.
    k_in_ring = k_from_lap if q.shape[2] == 1 else apply_rotary(k, in_ring)
    return cached_scores, new_scores, k_in_ring


def cached_attention(q, k, v, cache, position, *, rotary=False):
    """Causal attention for ``S`` new tokens at positions ``position .. position + S - 1``
    over the last ``L`` positions, ``L`` the cache's length.

    The cache is a ring buffer: position ``p`` lives in slot ``p mod L``
    (:func:`ring_slot_positions`). Query ``position + s`` attends, in one softmax, to the
    cached keys of positions ``p_j`` with ``max(0, position + s - L + 1) <= p_j < position``
    and, causally,
    to the new ``k, v: [B, S, N, H]``; then ``k, v`` are written into ``cache`` (see
    :func:`init_kv_cache`; with ``rotary``, ``k`` rotated by its slot). Until ``L`` tokens
    have been fed this is plain causal attention; after, it slides (each query sees the last
    ``L`` positions). Returns ``(out [B, S, N, H], cache)``. Any ``S <= L`` new tokens fit,
    also where they wrap past the buffer's end. Reading the old cache, not the freshly
    written one, lets XLA update the cache in place.

    ``rotary=True`` applies RoPE (:mod:`seqjax.positional`) here, with angles under ``2L``
    positions however far decoding has gone (until the int32 ``position`` overflows, at
    ``2^31``): see :func:`ring_rotary_scores`.
    """
    swap = _swap_time_and_heads
    q, k, v = swap(q), swap(k), swap(v)  # [B, N, S, H]
    num_new, max_length = q.shape[2], cache["key"].shape[2]
    if num_new > max_length:
        raise ValueError(
            f"{num_new} new tokens do not fit a KV cache of {max_length}: feed at most "
            f"{max_length} at a time"
        )
    held = ring_slot_positions(position, max_length)
    if rotary:
        cached_scores, new_scores, k = ring_rotary_scores(q, k, cache["key"], position)
    else:
        cached_scores = jnp.einsum("...qd,...kd->...qk", q, cache["key"])
        new_scores = jnp.einsum("...qd,...kd->...qk", q, k)
    scores = jnp.concatenate([cached_scores, new_scores], axis=-1) / math.sqrt(q.shape[-1])
    query_positions = position + jnp.arange(num_new)[:, None]  # scores: [B, N, S, L + S]
    in_window = (held >= 0) & (held > query_positions - max_length)  # [S, max_length]
    mask = jnp.concatenate([in_window, causal_mask(num_new, num_new)], axis=-1)
    weights = masked_softmax(scores, mask)
    out = attend(weights[..., :max_length], cache["value"]) + attend(weights[..., max_length:], v)
    slots = jnp.mod(position + jnp.arange(num_new), max_length)

    def write(buffer, new):
        return buffer.at[:, :, slots].set(_ordered_after(new.astype(buffer.dtype), out))

    return swap(out), {"key": write(cache["key"], k), "value": write(cache["value"], v)}


def sliding_window_mask(length, window):
    """``[T, T]`` mask where query ``i`` may attend key ``j`` iff ``i - window < j <= i``:
    causal attention to the last ``window`` positions (the function a ring-buffer cache of
    ``window`` slots computes, :func:`cached_attention`)."""
    offsets = jnp.arange(length)[:, None] - jnp.arange(length)[None, :]
    return (offsets >= 0) & (offsets < window)


class HeadsProjection(nn.Module):
    """Linear map ``[..., W] -> [..., num_heads, W // num_heads]``: one projection per head,
    computed in ``dtype``."""

    num_heads: int
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.02)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        if width % self.num_heads:
            raise ValueError(
                f"width {width} is not divisible by num_heads {self.num_heads}: "
                "choose num_heads that divides the width"
            )
        shape = (width, self.num_heads, width // self.num_heads)
        kernel = self.param("kernel", self.kernel_init, shape)
        x, kernel = promote_dtype(x, kernel, dtype=self.dtype)
        y = jnp.einsum("...w,wnh->...nh", x, kernel, _dot_general=rounded_dot_general)
        if self.use_bias:  # stored flat: every bias is 1-D (weight decay skips 1-D params)
            bias = self.param("bias", nn.initializers.zeros, (width,)).astype(self.dtype)
            y = y + bias.reshape(shape[1:])
        return y


class MergeHeadsProjection(nn.Module):
    """Output projection ``[..., num_heads, head_dim] -> [..., num_heads * head_dim]``,
    computed in ``dtype``."""

    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.02)
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, heads):
        num_heads, head_dim = heads.shape[-2:]
        shape = (num_heads, head_dim, num_heads * head_dim)
        kernel = self.param("kernel", self.kernel_init, shape)
        heads, kernel = promote_dtype(heads, kernel, dtype=self.dtype)
        y = jnp.einsum("...nh,nhw->...w", heads, kernel, _dot_general=rounded_dot_general)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, shape[-1:]).astype(self.dtype)
        return y


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention: project to Q, K, V, attend per head, project back.

    ``[B, T, W] -> [B, T, W]`` with ``head_dim = W // num_heads``; ``num_heads=1`` is the
    single-head equation. ``rotary`` applies RoPE to queries and keys (then the model adds no
    positional embedding). ``dropout`` acts on the output projection (residual dropout), so
    every ``implementation`` computes the same function. ``output_init`` lets a model scale
    the residual projection (GPT-2's ``1/sqrt(2 * num_layers)``). ``dtype`` is the compute
    dtype of the projections and the attention products (the softmax stays float32).
    """

    num_heads: int
    use_bias: bool = True
    dropout: float = 0.0
    causal: bool = True
    rotary: bool = False
    implementation: str | None = "auto"
    kernel_init: nn.initializers.Initializer = nn.initializers.normal(0.02)
    output_init: nn.initializers.Initializer = nn.initializers.normal(0.02)
    dtype: Any = jnp.float32

    def setup(self):
        projection = partial(HeadsProjection, self.num_heads, self.use_bias, self.kernel_init,
                             self.dtype)
        self.query, self.key, self.value = projection(), projection(), projection()
        self.output = MergeHeadsProjection(self.use_bias, self.output_init, self.dtype)
        self.residual_dropout = nn.Dropout(self.dropout)

    def _output(self, heads, deterministic):
        return self.residual_dropout(self.output(heads), deterministic=deterministic)

    def __call__(self, x, *, deterministic=True, window=None):
        """``x: [B, T, W]`` -> ``[B, T, W]``; token ``t`` sits at position ``t``. With
        ``window``, each query attends only to the last ``window`` positions
        (:func:`sliding_window_mask`)."""
        q, k, v = self.query(x), self.key(x), self.value(x)
        if self.rotary:
            positions = jnp.arange(x.shape[1])[:, None]  # [T, 1]: broadcast over the heads
            q, k = apply_rotary(q, positions), apply_rotary(k, positions)
        mask = None if window is None else sliding_window_mask(x.shape[1], window)
        heads = multi_head_attention(
            q, k, v, causal=self.causal, mask=mask, implementation=self.implementation
        )
        return self._output(heads, deterministic)

    def decode(self, x, cache, position):
        """``S`` new tokens ``x: [B, S, W]`` at ``position``.. against a KV cache, which slides
        past its length (:func:`cached_attention`).

        Returns ``(y [B, S, W], cache)``. Rotary positions are applied inside
        :func:`cached_attention`, by ring slot (:func:`ring_rotary_scores`). One query row
        leaves nothing for a fused kernel to save, so decoding always runs the reference
        equation.
        """
        if not self.causal:
            raise ValueError("KV-cache decoding needs causal=True attention")
        q, k, v = self.query(x), self.key(x), self.value(x)
        heads, cache = cached_attention(q, k, v, cache, position, rotary=self.rotary)
        return self._output(heads, deterministic=True), cache
