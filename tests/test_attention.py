"""Attention and positional encodings against NumPy float64 references."""

import re
import types
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax.attention as attention_module
from seqjax.attention import (
    MultiHeadSelfAttention,
    attend,
    cached_attention,
    causal_attention_by_query_blocks,
    causal_mask,
    describe_implementation,
    exact_match_weights,
    init_kv_cache,
    multi_head_attention,
    resolve_implementation,
    ring_slot_positions,
    scaled_dot_product_attention,
    sliding_window_mask,
)
from seqjax.positional import (
    LearnedPositionalEmbedding,
    apply_rotary,
    check_positional_kind,
    sinusoidal_encoding,
    sinusoidal_features,
)


def numpy_attention(q, k, v, mask=None):
    """``softmax(Q K^T / sqrt(d)) V`` in float64, masked scores at -inf."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def random_normal(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape)


def numpy_rotary(x, positions):
    """RoPE in float64: pair ``(x_{2i}, x_{2i+1})`` as a complex number times ``e^{i theta}``,
    ``theta = p / 10000^{2i / H}``; ``positions`` broadcasts to ``x.shape[:-1]``."""
    x = np.asarray(x, np.float64)
    head_dim = x.shape[-1]
    theta = np.asarray(positions, np.float64)[..., None] * 10000.0 ** (
        -np.arange(0, head_dim, 2) / head_dim)
    pairs = x.reshape(*x.shape[:-1], head_dim // 2, 2)
    rotated = (pairs[..., 0] + 1j * pairs[..., 1]) * np.exp(1j * theta)
    return np.stack([rotated.real, rotated.imag], axis=-1).reshape(x.shape)


# --- the equation ----------------------------------------------------------------------


def test_database_analogy_exact_and_soft_lookup():
    query, keys = 5, jnp.array([1, 5, 3, 4, 5])
    values = jnp.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert attend(exact_match_weights(query, keys), values) == 7.0  # 2 + 5
    soft_weights = jnp.array([0.125, 1.0, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(attend(soft_weights, values), 9.875)


def test_softmax_lookup_is_normalised_average_of_best_matches():
    # A sharp dot-product query favours the largest keys (the two 5s): softmax splits the
    # weight evenly between them, so attention returns their mean value (2 + 5) / 2.
    keys = jnp.array([[1.0], [5.0], [3.0], [4.0], [5.0]])
    values = jnp.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    out = scaled_dot_product_attention(jnp.array([[100.0]]), keys, values)
    np.testing.assert_allclose(out, [[3.5]], rtol=1e-6)


@pytest.mark.parametrize("use_mask", [False, True])
def test_scaled_dot_product_attention_matches_numpy(use_mask):
    q, k = random_normal(0, (2, 3, 4, 8)), random_normal(1, (2, 3, 6, 8))
    v = random_normal(2, (2, 3, 6, 5))
    mask = None
    if use_mask:
        mask = np.array(jax.random.bernoulli(jax.random.PRNGKey(3), 0.5, (2, 1, 4, 6)))
        mask[..., 0] = True  # every query sees at least one key
    out = scaled_dot_product_attention(q, k, v, mask)
    np.testing.assert_allclose(out, numpy_attention(q, k, v, mask), rtol=1e-5, atol=1e-6)


def test_causal_mask_is_lower_triangular():
    np.testing.assert_array_equal(causal_mask(3, 4), np.tril(np.ones((3, 4), bool)))


def test_fully_masked_row_is_finite():
    q, k, v = random_normal(0, (2, 4)), random_normal(1, (3, 4)), random_normal(2, (3, 4))
    out = scaled_dot_product_attention(q, k, v, jnp.zeros((2, 3), bool))
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("causal", [False, True])
def test_reference_matches_jax_dot_product_attention(causal):
    q, k, v = (random_normal(i, (2, 5, 3, 8)) for i in range(3))  # [B, T, N, H]
    padding = jnp.arange(5) < jnp.array([[5], [3]])  # [B, T_k]
    mask = padding[:, None, None, :]
    reference = multi_head_attention(q, k, v, causal=causal, mask=mask)
    fused = multi_head_attention(q, k, v, causal=causal, mask=mask, implementation="xla")
    np.testing.assert_allclose(reference, fused, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("length, block", [(10, 4), (12, 4), (7, 7), (9, 16)])
def test_causal_attention_by_query_blocks_is_the_causal_equation(length, block):
    q, k, v = (random_normal(i, (2, length, 3, 8)) for i in range(3))

    def whole(q, k, v):
        swap = attention_module._swap_time_and_heads
        heads = scaled_dot_product_attention(swap(q), swap(k), swap(v), causal_mask(length, length))
        return swap(heads)

    def blocks(q, k, v):
        return causal_attention_by_query_blocks(q, k, v, block)

    np.testing.assert_allclose(blocks(q, k, v), whole(q, k, v), rtol=1e-5, atol=1e-6)
    for a, b in zip(jax.grad(lambda *x: jnp.sum(blocks(*x) ** 2), argnums=(0, 1, 2))(q, k, v),
                    jax.grad(lambda *x: jnp.sum(whole(*x) ** 2), argnums=(0, 1, 2))(q, k, v)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="query blocks are the CPU's path")
def test_long_causal_self_attention_runs_by_query_blocks_on_a_cpu():
    length = 2 * attention_module.CAUSAL_QUERY_BLOCK + 3
    q, k, v = (random_normal(i, (1, length, 2, 8)) for i in range(3))
    causal = jax.jit(partial(multi_head_attention, causal=True))
    score_shapes = set(re.findall(r"tensor<1x2x(\d+)x(\d+)xf32>", causal.lower(q, k, v).as_text()))
    block = attention_module.CAUSAL_QUERY_BLOCK
    assert {(str(block), str(block)), (str(block), str(2 * block))} <= score_shapes  # 2 blocks
    assert (str(length), str(length)) not in score_shapes  # no full [T, T] score matrix
    padded = multi_head_attention(q, k, v, mask=causal_mask(length, length)[None, None])
    np.testing.assert_allclose(causal(q, k, v), padded, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN attention needs a GPU")
def test_reference_matches_cudnn_flash_attention():
    q, k, v = (random_normal(i, (2, 128, 4, 64)) for i in range(3))  # float32: run in bf16
    reference = multi_head_attention(q, k, v, causal=True)
    fused = multi_head_attention(q, k, v, causal=True, implementation="cudnn")
    assert fused.dtype == jnp.float32
    np.testing.assert_allclose(reference, fused, atol=3e-2)


def test_auto_takes_cudnn_only_where_its_flash_attention_runs():
    hopper = types.SimpleNamespace(platform="gpu", compute_capability="9.0")
    q = jnp.zeros((2, 8, 4, 64), jnp.bfloat16)

    def choice(q=q, device=hopper, mask=None):
        return resolve_implementation("auto", q, mask, device)

    assert choice() == "cudnn" and choice(q.astype(jnp.float16)) == "cudnn"
    assert choice(q.astype(jnp.float32)) == "reference"  # float32 keeps the exact equation
    assert choice(jnp.zeros((2, 8, 4, 60), jnp.bfloat16)) == "reference"  # head size
    assert choice(jnp.zeros((2, 8, 1, 256), jnp.bfloat16)) == "reference"
    assert choice(mask=jnp.ones((2, 1, 8, 8), bool)) == "reference"
    assert choice(device=types.SimpleNamespace(platform="gpu", compute_capability="7.0")) == "reference"
    assert choice(device=types.SimpleNamespace(platform="gpu", compute_capability="gfx90a")) == "reference"
    assert choice(device=types.SimpleNamespace(platform="cpu")) == "reference"
    assert resolve_implementation("xla", q, None, hopper) == "xla"
    if jax.default_backend() == "cpu":
        assert resolve_implementation("auto", q) == "reference"


def test_a_run_is_told_which_attention_it_gets_and_what_keeps_cudnn_out(monkeypatch):
    hopper = types.SimpleNamespace(platform="gpu", compute_capability="9.0")
    monkeypatch.setattr(attention_module, "default_gpu", lambda: hopper)
    assert describe_implementation("auto", jnp.bfloat16, 64) == (
        "cuDNN's flash attention (bfloat16, head size 64)")
    assert describe_implementation("auto", jnp.float32, 60) == (
        "the written-out softmax(QK^T/sqrt(d_k))V; cuDNN's flash attention is out: float32 (it "
        "takes model.dtype=bfloat16), head size 60 (it takes multiples of 8 up to 128)")
    assert describe_implementation("reference", jnp.bfloat16, 64) == (
        "the written-out softmax(QK^T/sqrt(d_k))V")
    assert describe_implementation("xla", jnp.float32, 64) == (
        "jax.nn.dot_product_attention(implementation='xla')")
    assert describe_implementation("cudnn", jnp.float32, 64) == (
        "cuDNN's flash attention (bfloat16, head size 64)")  # float32 inputs run in bfloat16
    monkeypatch.setattr(attention_module, "default_gpu", lambda: None)
    assert describe_implementation("auto", jnp.bfloat16, 64).endswith(
        "is out: no NVIDIA GPU of compute capability 8.0 or more")
    assert describe_implementation("cudnn", jnp.bfloat16, 64).endswith(
        ": it cannot run here, no NVIDIA GPU of compute capability 8.0 or more")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="lowers for the CPU beside a (pretend) GPU")
def test_auto_lowered_for_a_cpu_runs_the_reference_even_where_a_gpu_is_there(monkeypatch):
    hopper = types.SimpleNamespace(platform="gpu", compute_capability="9.0")
    monkeypatch.setattr(attention_module, "default_gpu", lambda: hopper)
    monkeypatch.setattr(attention_module, "_fused_attention",  # stands in for cuDNN's kernel
                        lambda q, k, v, **_: jnp.full(q.shape, jnp.nan, q.dtype))
    q, k, v = (random_normal(i, (2, 8, 2, 64)).astype(jnp.bfloat16) for i in range(3))
    reference = multi_head_attention(q, k, v, causal=True)
    np.testing.assert_array_equal(multi_head_attention(q, k, v, causal=True, implementation="auto"),
                                  reference)
    assert np.isnan(np.asarray(multi_head_attention(q, k, v, causal=True, implementation="cudnn"),
                               np.float32)).all()


def test_unknown_implementation_is_an_error():
    q = jnp.zeros((1, 2, 1, 4))
    with pytest.raises(ValueError, match="implementation"):
        multi_head_attention(q, q, q, implementation="flash")


def test_cached_attention_matches_full_causal_attention():
    q, k, v = (random_normal(i, (2, 5, 3, 4)) for i in range(3))
    cache = init_kv_cache(batch_size=2, num_heads=3, max_length=6, head_dim=4)
    prefix_out, cache = cached_attention(q[:, :3], k[:, :3], v[:, :3], cache, 0)
    outs = [prefix_out]
    for t in range(3, 5):
        out, cache = cached_attention(q[:, t:t + 1], k[:, t:t + 1], v[:, t:t + 1], cache, t)
        outs.append(out)
    full = multi_head_attention(q, k, v, causal=True)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, rtol=1e-5, atol=1e-6)


def test_more_new_tokens_than_cache_slots_is_an_error():
    q = random_normal(0, (1, 5, 2, 4))
    cache = init_kv_cache(batch_size=1, num_heads=2, max_length=4, head_dim=4)
    with pytest.raises(ValueError, match="5 new tokens do not fit a KV cache of 4"):
        cached_attention(q, q, q, cache, 0)


def test_sliding_window_mask_keeps_the_last_window_positions():
    mask = np.asarray(sliding_window_mask(6, 3))
    for i in range(6):
        assert [j for j in range(6) if mask[i, j]] == list(range(max(0, i - 2), i + 1))


def test_ring_slots_hold_the_latest_earlier_position_of_their_residue():
    for position in range(12):
        held = np.asarray(ring_slot_positions(position, 4))
        for slot in range(4):
            earlier = [p for p in range(position) if p % 4 == slot]
            if earlier:
                assert held[slot] == earlier[-1]
            else:
                assert held[slot] < 0  # still empty


@pytest.mark.parametrize("chunks", [[3] + [1] * 8, [2] * 6, [3] * 4, [1, 4, 4, 3]])
def test_cached_attention_past_its_length_slides_over_the_last_positions(chunks):
    """A cache of 4 slots fed 11 to 13 tokens in chunks (a 3-token prefix then one by one; two
    at a time; three at a time and 1, 4, 4, 3, whose chunks wrap past the buffer's end): each
    query attends to the last 4 positions (NumPy, float64)."""
    length, window = sum(chunks), 4
    q, k, v = (random_normal(i, (2, length, 3, 4)) for i in range(3))
    cache = init_kv_cache(batch_size=2, num_heads=3, max_length=window, head_dim=4)
    outs, start = [], 0
    for size in chunks:
        new = slice(start, start + size)
        out, cache = cached_attention(q[:, new], k[:, new], v[:, new], cache, start)
        outs.append(out)
        start += size
    swap = lambda a: np.swapaxes(np.asarray(a), 1, 2)  # [B, T, N, H] <-> [B, N, T, H]
    mask = np.asarray(sliding_window_mask(length, window))
    expected = swap(numpy_attention(swap(q), swap(k), swap(v), mask))
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("start", [0, 2, 3, 5, 7, 10**6 + 1, 10**6 + 3, 10**7 + 1])
def test_rotary_cached_attention_stays_exact_far_into_decoding(start):
    """A cache of 4 slots (keys rotated by their slot; empty below position 0) at ``start``,
    then a chunk of 2 tokens (wrapping past the buffer's end where ``start = 3 mod 4``) and 1
    more, with RoPE: NumPy float64 attention rotated at the absolute positions, over the last
    4 positions. The largest error is 2.5e-7 at every
    start, against 1.9e-3 at 10^6 and 1.3e-2 at 10^7 with keys cached after rotation at
    absolute float32 angles (measured)."""
    window, head_dim = 4, 8
    keys = random_normal(0, (2, 3, window, head_dim))  # [B, N, L, H], before rotation
    cache = {"key": apply_rotary(keys, jnp.arange(window)),
             "value": random_normal(1, (2, 3, window, head_dim))}
    q, k, v = (random_normal(i, (2, 3, 3, head_dim)) for i in (2, 3, 4))  # [B, S, N, H]
    rotary = partial(cached_attention, rotary=True)
    first, after = rotary(q[:, :2], k[:, :2], v[:, :2], cache, start)
    second, _ = rotary(q[:, 2:], k[:, 2:], v[:, 2:], after, start + 2)

    swap = lambda a: np.swapaxes(np.asarray(a), 1, 2)  # [B, T, N, H] <-> [B, N, T, H]
    key_positions = np.concatenate([ring_slot_positions(start, window), start + np.arange(3)])
    query_positions = start + np.arange(3)
    keys = numpy_rotary(np.concatenate([keys, swap(k)], axis=2), key_positions)
    values = np.concatenate([cache["value"], swap(v)], axis=2)
    offsets = query_positions[:, None] - key_positions[None, :]
    mask = (offsets >= 0) & (offsets < window) & (key_positions >= 0)  # empty slots: p < 0
    expected = numpy_attention(numpy_rotary(swap(q), query_positions), keys, values, mask)
    np.testing.assert_allclose(jnp.concatenate([first, second], axis=1), swap(expected),
                               rtol=1e-5, atol=1e-5)


# --- the multi-head layer ----------------------------------------------------------------


def numpy_multi_head(params, x, num_heads):
    """Per-head attention (causal) on projections, heads concatenated, output projection."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    x = np.asarray(x, np.float64)
    length, width = x.shape[1:]
    mask = np.tril(np.ones((length, length), bool))

    def project(name, head):
        bias = p[name]["bias"].reshape(num_heads, -1)[head]
        return x @ p[name]["kernel"][:, head] + bias

    heads = [
        numpy_attention(project("query", n), project("key", n), project("value", n), mask)
        for n in range(num_heads)
    ]
    out_kernel = p["output"]["kernel"].reshape(-1, width)  # [N, H, W] -> [N * H, W]
    return np.concatenate(heads, axis=-1) @ out_kernel + p["output"]["bias"]


@pytest.mark.parametrize("num_heads", [1, 2])
def test_multi_head_layer_matches_per_head_equation(num_heads):
    x = random_normal(0, (2, 5, 8))
    layer = MultiHeadSelfAttention(num_heads=num_heads)
    variables = layer.init(jax.random.PRNGKey(1), x)
    expected = numpy_multi_head(variables["params"], x, num_heads)
    np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-4, atol=1e-6)


def test_causal_layer_leaks_nothing_from_the_future():
    x = random_normal(0, (1, 4, 8))
    layer = MultiHeadSelfAttention(num_heads=2, rotary=True)
    variables = layer.init(jax.random.PRNGKey(1), x)
    jacobian = jax.jacobian(lambda x: layer.apply(variables, x)[0])(x)[:, :, 0]  # [T, W, T, W]
    influence = np.abs(np.asarray(jacobian)).sum(axis=(1, 3))  # [t_out, t_in]
    future = np.triu(np.ones((4, 4), bool), k=1)
    assert np.all(influence[future] == 0.0)
    assert np.all(influence[~future] > 0.0)


@pytest.mark.parametrize("rotary", [False, True])
def test_layer_decode_matches_full_call(rotary):
    x = random_normal(0, (2, 5, 8))
    layer = MultiHeadSelfAttention(num_heads=2, rotary=rotary)
    variables = layer.init(jax.random.PRNGKey(1), x)
    cache = init_kv_cache(batch_size=2, num_heads=2, max_length=5, head_dim=4)
    outs = []
    for t in range(5):
        out, cache = layer.apply(variables, x[:, t:t + 1], cache, t, method="decode")
        outs.append(out)
    np.testing.assert_allclose(
        jnp.concatenate(outs, axis=1), layer.apply(variables, x), rtol=1e-5, atol=1e-6
    )


def test_width_not_divisible_by_heads_is_an_error():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadSelfAttention(num_heads=3).init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 8)))


# --- positional encodings ------------------------------------------------------------------


def test_sinusoidal_encoding_matches_formula():
    num_positions, width = 7, 6
    expected = np.zeros((num_positions, width))
    for p in range(num_positions):
        for i in range(width // 2):
            expected[p, 2 * i] = np.sin(p / 10000 ** (2 * i / width))
            expected[p, 2 * i + 1] = np.cos(p / 10000 ** (2 * i / width))
    np.testing.assert_allclose(sinusoidal_encoding(num_positions, width), expected, atol=1e-6)
    np.testing.assert_allclose(sinusoidal_features(jnp.array(4), width), expected[4], atol=1e-6)


def test_rotary_matches_complex_rotation():
    x = random_normal(0, (3, 8))
    positions = jnp.array([0, 1, 5])
    np.testing.assert_allclose(apply_rotary(x, positions), numpy_rotary(x, positions),
                               rtol=1e-5, atol=1e-5)


def test_rotary_preserves_norms_and_sees_relative_positions():
    q, k = random_normal(0, (8,)), random_normal(1, (8,))
    rotated = apply_rotary(q, 13)
    np.testing.assert_allclose(jnp.linalg.norm(rotated), jnp.linalg.norm(q), rtol=1e-5)
    np.testing.assert_allclose(apply_rotary(q, 0), q)
    score = lambda p, s: jnp.dot(apply_rotary(q, p), apply_rotary(k, s))
    np.testing.assert_allclose(score(7, 3), score(4, 0), rtol=1e-4)
    np.testing.assert_allclose(score(7, 3), score(25, 21), rtol=1e-4)
    assert not np.isclose(score(7, 3), score(3, 7))


def test_learned_positional_embedding_looks_up_rows():
    module = LearnedPositionalEmbedding(num_positions=6, width=4)
    variables = module.init(jax.random.PRNGKey(0), jnp.arange(6))
    table = variables["params"]["embedding"]
    positions = np.array([[3, 0]])
    np.testing.assert_array_equal(module.apply(variables, positions), np.asarray(table)[positions])


def test_positional_errors_name_the_fix():
    with pytest.raises(ValueError, match="rotary"):
        check_positional_kind("alibi")
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 5)
