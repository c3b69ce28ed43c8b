"""The GPT language model: shapes, causality, KV-cache decoding, init, config."""

import functools
import math
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqjax.attention import attend
from seqjax.generation import beam_search, fed_length, feed_prompt, generate, model_step_fn
from seqjax.models.transformer_lm import TransformerLM, from_config, gelu, window_length
from seqjax.data.tokenizers import CharTokenizer
from seqjax.positional import POSITIONAL_KINDS
from seqjax.precision import einsum_axes, float32_output_dot_general, rounded_dot_general
from seqjax.text_generation import TrainedRun, beam_text, continue_text

VOCAB_SIZE, CONTEXT_LENGTH = 11, 12


def tiny_model(**overrides):
    fields = dict(vocab_size=VOCAB_SIZE, context_length=CONTEXT_LENGTH, num_layers=2,
                  num_heads=2, width=32)
    return TransformerLM(**{**fields, **overrides})


def random_tokens(seed, shape):
    return jax.random.randint(jax.random.PRNGKey(seed), shape, 0, VOCAB_SIZE, jnp.int32)


@functools.cache
def model_and_variables(positional="learned"):
    model = tiny_model(positional=positional)
    return model, model.init(jax.random.PRNGKey(0), random_tokens(0, (1, CONTEXT_LENGTH)))


@pytest.mark.parametrize("tie_weights", [True, False])
def test_shapes_and_carry(tie_weights):
    model = tiny_model(tie_weights=tie_weights)
    tokens = random_tokens(1, (3, 7))
    variables = model.init(jax.random.PRNGKey(0), tokens)
    logits, carry = model.apply(variables, tokens, model.initial_carry(3))
    assert logits.shape == (3, 7, VOCAB_SIZE) and carry is None
    assert ("head" in variables["params"]) == (not tie_weights)


def test_only_matrices_are_more_than_one_dimensional():
    # The optimizer decays exactly the params with ndim >= 2: biases and norms must be 1-D.
    _, variables = model_and_variables("learned")
    for path, param in jax.tree_util.tree_leaves_with_path(variables["params"]):
        name = jax.tree_util.keystr(path)
        is_matrix = "kernel" in name or "embedding" in name
        assert (param.ndim >= 2) == is_matrix, name


@pytest.mark.parametrize("positional", POSITIONAL_KINDS)
def test_decode_step_logits_equal_full_forward(positional):
    model, variables = model_and_variables(positional)
    tokens = random_tokens(2, (2, 9))
    full_logits, _ = model.apply(variables, tokens)
    step_fn = jax.jit(model_step_fn(model, variables))
    state = model.init_decode_state(2, 9)
    for t in range(9):
        logits, state = step_fn(state, tokens[:, t])
        np.testing.assert_allclose(logits, full_logits[:, t], rtol=1e-4, atol=1e-5)


def test_future_tokens_do_not_change_past_logits():
    model, variables = model_and_variables("rotary")
    tokens = random_tokens(3, (1, 8))
    changed = tokens.at[0, 5].set((tokens[0, 5] + 1) % VOCAB_SIZE)
    before, _ = model.apply(variables, tokens)
    after, _ = model.apply(variables, changed)
    np.testing.assert_array_equal(before[:, :5], after[:, :5])
    assert not np.allclose(before[:, 5:], after[:, 5:])


def uncached_step_fn(model, variables):
    def step_fn(state, token):
        return model.apply(variables, state, token, method="uncached_decode_step")

    return step_fn


def logits_along(step_fn, state, tokens):
    """The next-token logits after each of ``tokens: [B, T]`` -> ``[T, B, V]``."""
    def feed(state, token):
        logits, state = step_fn(state, token)
        return state, logits

    return jax.lax.scan(feed, state, tokens.T)[1]


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_absolute_positions_fed_past_the_state_length_give_nan(positional):
    """A cache for 4 tokens, with nothing to rebuild from, cannot slide: a 5th token's logits
    are NaN, not those of some other function."""
    model, variables = model_and_variables(positional)
    step_fn = jax.jit(model_step_fn(model, variables))
    logits = logits_along(step_fn, model.init_decode_state(2, 4), random_tokens(5, (2, 6)))
    assert np.isfinite(logits[:4]).all() and np.isnan(logits[4:]).all()


def test_the_window_grows_to_the_context_then_keeps_refill_length_tokens():
    lengths, window = [], 0
    for _ in range(9):
        window = int(window_length(window, 4, 2))
        lengths.append(window)
    assert lengths == [1, 2, 3, 4, 3, 4, 3, 4, 3]


def test_uncached_sliding_window_with_refill_context_minus_one_is_nanogpts_crop():
    # nanoGPT's sample.py: condition on the last context_length tokens, recomputed each step.
    model, variables = model_and_variables("learned")
    tokens = random_tokens(7, (2, 2 * CONTEXT_LENGTH + 3))
    state = model.uncached_decode_state(2, tokens.shape[1], CONTEXT_LENGTH - 1)
    logits = jax.jit(logits_along, static_argnums=0)(
        uncached_step_fn(model, variables), state, tokens)
    lengths = range(1, tokens.shape[1] + 1)
    crops = [tokens[:, max(0, n - CONTEXT_LENGTH):n] for n in lengths]
    # Every crop padded on the right to the context, all in one batch: the logits at the
    # crop's last token do not see the padding (causality).
    padded = jnp.concatenate([jnp.pad(crop, ((0, 0), (0, CONTEXT_LENGTH - crop.shape[1])))
                              for crop in crops])
    all_logits = jax.jit(model.apply)(variables, padded)[0].reshape(
        len(crops), 2, CONTEXT_LENGTH, VOCAB_SIZE)
    for n, crop in zip(lengths, crops, strict=True):
        np.testing.assert_allclose(logits[n - 1], all_logits[n - 1, :, crop.shape[1] - 1],
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("positional", POSITIONAL_KINDS)
@pytest.mark.parametrize("refill_length", [CONTEXT_LENGTH - 1, None, 1])
def test_sliding_window_cache_gives_the_logits_of_its_uncached_definition(
        positional, refill_length):
    model, variables = model_and_variables(positional)
    tokens = random_tokens(6, (2, 3 * CONTEXT_LENGTH + 5))
    length = tokens.shape[1]

    @jax.jit
    def both(variables, tokens):
        cached = logits_along(model_step_fn(model, variables),
                              model.init_decode_state(2, length, refill_length), tokens)
        uncached = logits_along(uncached_step_fn(model, variables),
                                model.uncached_decode_state(2, length, refill_length), tokens)
        return cached, uncached

    cached, uncached = both(variables, tokens)
    np.testing.assert_allclose(cached, uncached, rtol=1e-4, atol=1e-5)


def test_sliding_window_logits_are_the_model_within_the_context_and_need_rotary():
    model, variables = model_and_variables("rotary")
    tokens = random_tokens(8, (2, CONTEXT_LENGTH))
    np.testing.assert_allclose(
        model.apply(variables, tokens, method="sliding_window_logits"),
        model.apply(variables, tokens)[0], rtol=1e-5, atol=1e-6)
    learned, learned_variables = model_and_variables("learned")
    with pytest.raises(ValueError, match="needs rotary positions"):
        learned.apply(learned_variables, tokens, method="sliding_window_logits")


def test_rotary_decoding_slides_a_ring_buffer_unless_given_a_refill_length():
    model, variables = model_and_variables("rotary")
    ring = model.init_decode_state(2, 5 * CONTEXT_LENGTH)
    assert "recent" not in ring and ring["layers"][0]["key"].shape[2] == CONTEXT_LENGTH
    assert "recent" in model.init_decode_state(2, 5 * CONTEXT_LENGTH, refill_length=4)
    assert "recent" in model_and_variables("learned")[0].init_decode_state(2, 5 * CONTEXT_LENGTH)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_ring_buffer_equals_nanogpts_crop_for_one_layer_only(num_layers):
    """Rotary scores see relative positions, so one layer attending to the last C tokens is
    the model run on those C tokens (nanoGPT's crop, refill_length C - 1). With two layers,
    the cached keys of the second layer were computed from windows reaching further back."""
    model = tiny_model(positional="rotary", num_layers=num_layers)
    variables = model.init(jax.random.PRNGKey(0), random_tokens(0, (1, CONTEXT_LENGTH)))
    tokens = random_tokens(9, (2, 3 * CONTEXT_LENGTH))
    length = tokens.shape[1]

    @jax.jit
    def ring_and_crop(variables, tokens):
        step_fn = model_step_fn(model, variables)
        ring = logits_along(step_fn, model.init_decode_state(2, length), tokens)
        crop = logits_along(uncached_step_fn(model, variables),
                            model.uncached_decode_state(2, length, CONTEXT_LENGTH - 1), tokens)
        return ring, crop

    ring, crop = ring_and_crop(variables, tokens)
    np.testing.assert_allclose(ring[:CONTEXT_LENGTH], crop[:CONTEXT_LENGTH], rtol=1e-4,
                               atol=1e-5)
    past = np.abs(np.asarray(ring[CONTEXT_LENGTH:]) - np.asarray(crop[CONTEXT_LENGTH:])).max()
    if num_layers == 1:
        assert past < 1e-4  # measured 1.2e-7
    else:
        assert past > 1e-3  # measured 1.4e-2


def test_the_ring_buffer_forgets_how_far_decoding_has_gone():
    """The ring caches each key rotated by its slot, not its position, so a state moved on by
    a whole number of windows (1.2 million positions: the same slots) decodes to the same
    logits."""
    model, variables = model_and_variables("rotary")
    step_fn = jax.jit(model_step_fn(model, variables))
    tokens = random_tokens(4, (2, 3 * CONTEXT_LENGTH))
    _, near = feed_prompt(step_fn, model.init_decode_state(2, tokens.shape[1]),
                          tokens[:, :CONTEXT_LENGTH])
    far = {**near, "position": near["position"] + 10**5 * CONTEXT_LENGTH}
    np.testing.assert_allclose(logits_along(step_fn, far, tokens[:, CONTEXT_LENGTH:]),
                               logits_along(step_fn, near, tokens[:, CONTEXT_LENGTH:]),
                               rtol=0, atol=1e-6)


def test_bfloat16_ring_buffer_keeps_a_bfloat16_cache_and_decodes_its_definition():
    """The dtypes, and agreement within bfloat16 rounding. This random model's attention is
    too flat to tell a wrong rotation at that tolerance (a lap rotated the wrong way measured
    1.3e-3 too): the float32 tests check the rotations."""
    model = tiny_model(positional="rotary", dtype=jnp.bfloat16)
    variables = model.init(jax.random.PRNGKey(0), random_tokens(0, (1, CONTEXT_LENGTH)))
    tokens = random_tokens(6, (2, 4 * CONTEXT_LENGTH))
    state = model.init_decode_state(2, tokens.shape[1])
    assert state["layers"][0]["key"].dtype == jnp.bfloat16
    ring = logits_along(jax.jit(model_step_fn(model, variables)), state, tokens)  # [T, B, V]
    expected = model.apply(variables, tokens, method="sliding_window_logits")
    assert ring.dtype == jnp.float32
    # Both round their products to bfloat16, in different orders (measured: 1.3e-3 apart).
    np.testing.assert_allclose(ring, jnp.swapaxes(expected, 0, 1), rtol=0, atol=5e-3)


def test_text_from_a_rotary_model_slides_its_ring_buffer_by_default():
    model, variables = model_and_variables("rotary")
    tokenizer = CharTokenizer("abcdefghijk")  # VOCAB_SIZE characters
    config = ml_collections.ConfigDict({"model": {"kind": "transformer"}})
    run = TrainedRun(config, tokenizer, model, variables["params"], record={})
    prompt, num_tokens = "abc", 3 * CONTEXT_LENGTH
    text = continue_text(run, prompt, num_tokens, temperature=0.0)
    state = model.uncached_decode_state(1, fed_length(len(prompt), num_tokens))  # the ring's
    expected = generate(uncached_step_fn(model, variables), state,
                        jnp.asarray(tokenizer.encode(prompt))[None], num_tokens,
                        jax.random.PRNGKey(0), temperature=0.0)
    assert "window" not in state and text == prompt + tokenizer.decode(expected[0])
    assert beam_text(run, prompt, num_tokens, beam_size=1)[0] == text  # one beam is greedy
    rebuilt = continue_text(run, prompt, num_tokens, temperature=0.0, refill_length=6)
    assert len(rebuilt) == len(text) and rebuilt[:CONTEXT_LENGTH] == text[:CONTEXT_LENGTH]


@pytest.mark.parametrize("positional, refill_length",
                         [("learned", None), ("learned", 1), ("rotary", None)])
def test_generation_past_the_context_equals_the_uncached_definition(positional, refill_length):
    """Greedy, sampling and beam search, each far past the context window from a prompt
    longer than the window: the cached decoder's tokens are its definition's."""
    model, variables = model_and_variables(positional)
    prompt, num_tokens, beam_size = random_tokens(4, (2, CONTEXT_LENGTH + 4)), 2 * CONTEXT_LENGTH, 3
    max_length = fed_length(prompt.shape[1], num_tokens)

    @jax.jit
    def decode(variables, prompt):
        results = []
        for step_fn, make_state in (
                (model_step_fn(model, variables), model.init_decode_state),
                (uncached_step_fn(model, variables), model.uncached_decode_state)):
            init = functools.partial(make_state, refill_length=refill_length)
            greedy = generate(step_fn, init(2, max_length), prompt, num_tokens,
                              jax.random.PRNGKey(0), temperature=0.0)
            sampled = generate(step_fn, init(2, max_length), prompt, num_tokens,
                               jax.random.PRNGKey(1), temperature=1.0, top_k=5)
            beam, _ = beam_search(step_fn, init(beam_size, max_length), prompt[0], num_tokens,
                                  beam_size)
            results.append((greedy, sampled, beam))
        return results

    cached, uncached = decode(variables, prompt)
    for cached_tokens, uncached_tokens in zip(cached, uncached, strict=True):
        np.testing.assert_array_equal(cached_tokens, uncached_tokens)
    assert len(np.unique(cached[0])) > 1  # a degenerate constant output would prove little


def test_beam_search_of_one_beam_is_greedy_on_the_model():
    model, variables = model_and_variables("sinusoidal")
    prompt = random_tokens(5, (4,))
    step_fn = model_step_fn(model, variables)
    greedy = generate(step_fn, model.init_decode_state(1, 10), prompt[None], 6,
                      jax.random.PRNGKey(0), temperature=0.0)
    tokens, _ = beam_search(step_fn, model.init_decode_state(1, 10), prompt, 6, beam_size=1)
    np.testing.assert_array_equal(tokens, greedy[0])


def test_too_long_inputs_and_bad_refill_lengths_are_errors():
    model, variables = model_and_variables("learned")
    for refill_length in (0, CONTEXT_LENGTH):
        for max_length in (CONTEXT_LENGTH + 1, CONTEXT_LENGTH):  # sliding or not: still checked
            with pytest.raises(ValueError, match="refill_length .* must be in"):
                model.init_decode_state(1, max_length, refill_length)
            with pytest.raises(ValueError, match="refill_length .* must be in"):
                model.uncached_decode_state(1, max_length, refill_length)
    with pytest.raises(ValueError, match="a context of 1 token cannot slide"):
        tiny_model(context_length=1).init_decode_state(1, 2)
    with pytest.raises(ValueError, match="exceeds context_length"):
        model.apply(variables, random_tokens(0, (1, CONTEXT_LENGTH + 1)))


@pytest.mark.parametrize("tie_weights", [True, False])
def test_bfloat16_runs_the_products_in_bfloat16_with_float32_params_and_logits(tie_weights):
    model = tiny_model(positional="rotary", tie_weights=tie_weights)
    mixed = tiny_model(positional="rotary", tie_weights=tie_weights, dtype=jnp.bfloat16)
    tokens = random_tokens(8, (2, CONTEXT_LENGTH))
    variables = model.init(jax.random.PRNGKey(0), tokens)
    assert jax.eval_shape(mixed.init, jax.random.PRNGKey(0), tokens) == jax.eval_shape(
        model.init, jax.random.PRNGKey(0), tokens)  # float32 params, same tree

    def loss(params):
        logits, _ = mixed.apply({"params": params}, tokens)
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1))

    hlo = jax.jit(jax.grad(loss)).lower(variables["params"]).as_text()
    products = re.findall(r"dot_general[^\n]*: \((tensor<[^)]*)\) -> (tensor<[^>]*>)", hlo)
    assert products and all("f32>" not in pair for pair, _ in products)  # forward and backward
    # Each asks for its float32 sum, which XLA:CPU computes at the bfloat16 rate where the CPU
    # has one (rounding it after); a bfloat16 result it would widen to float32 products.
    assert all(result.endswith("xf32>") for _, result in products)
    logits, _ = mixed.apply(variables, tokens)
    reference, _ = model.apply(variables, tokens)
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, reference, atol=0.03)  # bfloat16: 8 mantissa bits
    # The head returns its float32 sum: the logits are not rounded to bfloat16's 8 bits.
    assert not np.array_equal(logits, logits.astype(jnp.bfloat16).astype(jnp.float32))


def test_bad_configuration_is_an_error():
    tokens = random_tokens(0, (1, 4))
    with pytest.raises(ValueError, match="positional"):
        tiny_model(positional="alibi").init(jax.random.PRNGKey(0), tokens)
    with pytest.raises(ValueError, match="divisible"):
        tiny_model(num_heads=3).init(jax.random.PRNGKey(0), tokens)


def test_dropout_is_random_in_training_and_off_in_evaluation():
    model = tiny_model(dropout=0.5)
    tokens = random_tokens(0, (2, 6))
    variables = model.init(jax.random.PRNGKey(0), tokens)
    train = lambda seed: model.apply(variables, tokens, deterministic=False,
                                     rngs={"dropout": jax.random.PRNGKey(seed)})[0]
    assert not np.allclose(train(0), train(1))
    np.testing.assert_array_equal(model.apply(variables, tokens)[0],
                                  model.apply(variables, tokens)[0])


def test_xla_attention_model_matches_reference():
    model, variables = model_and_variables("rotary")
    tokens = random_tokens(6, (2, 8))
    fused = model.clone(attention_impl="xla")
    np.testing.assert_allclose(fused.apply(variables, tokens)[0],
                               model.apply(variables, tokens)[0], rtol=1e-4, atol=1e-5)


def test_auto_attention_is_cudnn_in_bfloat16_on_a_gpu_and_the_reference_elsewhere():
    model = tiny_model(width=128, num_heads=2, dtype=jnp.bfloat16)  # head size 64
    tokens = random_tokens(7, (2, CONTEXT_LENGTH))
    params = model.init(jax.random.PRNGKey(0), tokens)["params"]

    def loss_and_grads(attention_impl):
        def loss(params):
            logits, _ = model.clone(attention_impl=attention_impl).apply({"params": params}, tokens)
            return jax.nn.logsumexp(logits, axis=-1).mean()
        program = jax.jit(jax.value_and_grad(loss)).lower(params)
        return program.compile()(params), "__cudnn$fmha" in program.as_text()

    (auto_loss, auto_grads), auto_calls_cudnn = loss_and_grads("auto")
    (loss, grads), reference_calls_cudnn = loss_and_grads("reference")
    assert model.attention_impl == "auto" and not reference_calls_cudnn
    device = jax.devices()[0]
    capability = str(getattr(device, "compute_capability", ""))  # H100, H200: "9.0"; A100: "8.0"
    on_recent_nvidia_gpu = (device.platform == "gpu" and capability[:1].isdigit()
                            and float(capability) >= 8.0)
    assert auto_calls_cudnn == on_recent_nvidia_gpu
    if not on_recent_nvidia_gpu:  # the same program
        np.testing.assert_array_equal(auto_loss, loss)
        jax.tree.map(np.testing.assert_array_equal, auto_grads, grads)
        return
    np.testing.assert_allclose(auto_loss, loss, rtol=2e-2)
    for auto_grad, grad in zip(jax.tree.leaves(auto_grads), jax.tree.leaves(grads)):
        assert np.linalg.norm(auto_grad - grad) <= 0.05 * np.linalg.norm(grad) + 1e-6


def test_gelu_is_x_times_the_normal_cdf():
    x = np.concatenate([np.linspace(-12, 12, 2001), [0.0, -1e-3, 1e-3]]).astype(np.float32)
    cdf = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x.astype(np.float64)])
    np.testing.assert_allclose(gelu(jnp.asarray(x)), x * cdf, rtol=1e-6, atol=2e-6)
    # bfloat16 in and out, computed wider: only the output's rounding (8 bits) is lost
    x16 = jnp.asarray(x, jnp.bfloat16)
    exact = np.asarray(x16, np.float64) * np.array([0.5 * (1 + math.erf(v / math.sqrt(2)))
                                                    for v in np.asarray(x16, np.float64)])
    assert gelu(x16).dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(gelu(x16), np.float64), exact, rtol=2 ** -8, atol=2e-6)


def test_the_mlp_computes_the_erf_form():
    model = TransformerLM(vocab_size=VOCAB_SIZE, context_length=8, num_layers=1, num_heads=2,
                          width=16)
    tokens = random_tokens(0, (1, 8))
    params = model.init(jax.random.PRNGKey(0), tokens)
    program = str(jax.make_jaxpr(model.apply)(params, tokens))
    assert " erf " in program and "erfc" not in program


def test_gelu_gradient_matches_finite_differences():
    x = np.linspace(-6, 6, 61)
    with jax.enable_x64():
        grad = jax.vmap(jax.grad(gelu))(jnp.asarray(x))
        step = 1e-6
        slope = (gelu(jnp.asarray(x + step)) - gelu(jnp.asarray(x - step))) / (2 * step)
    np.testing.assert_allclose(grad, slope, rtol=1e-6, atol=1e-8)


def test_gelu_is_pytorchs_exact_gelu():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(0, 3, (64, 512)).astype(np.float32)
    leaf = torch.tensor(x, requires_grad=True)
    expected = torch.nn.GELU()(leaf)  # nanoGPT's MLP activation
    expected.sum().backward()
    np.testing.assert_allclose(gelu(jnp.asarray(x)), expected.detach().numpy(), rtol=1e-6,
                               atol=2e-6)
    grad = jax.grad(lambda v: gelu(v).sum())(jnp.asarray(x))
    np.testing.assert_allclose(grad, leaf.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_nanogpt_initialisation():
    num_layers = 4
    model = TransformerLM(vocab_size=VOCAB_SIZE, context_length=8, num_layers=num_layers,
                          num_heads=2, width=64)
    params = model.init(jax.random.PRNGKey(0), random_tokens(0, (1, 8)))["params"]
    block = params["blocks_0"]
    residual_std = 0.02 / np.sqrt(2 * num_layers)
    np.testing.assert_allclose(np.std(block["attention"]["query"]["kernel"]), 0.02, rtol=0.1)
    np.testing.assert_allclose(np.std(block["mlp"]["expand"]["kernel"]), 0.02, rtol=0.1)
    np.testing.assert_allclose(np.std(block["attention"]["output"]["kernel"]), residual_std,
                               rtol=0.1)
    np.testing.assert_allclose(np.std(block["mlp"]["contract"]["kernel"]), residual_std, rtol=0.1)
    assert np.all(block["mlp"]["contract"]["bias"] == 0)


def test_from_config_reads_model_fields():
    config = ml_collections.ConfigDict(dict(
        kind="transformer", num_layers=3, num_heads=2, width=16, mlp_ratio=2, dropout=0.1,
        use_bias=False, tie_weights=False, positional="rotary",
    ))
    model = from_config(config, vocab_size=VOCAB_SIZE, context_length=32)
    assert (model.num_layers, model.num_heads, model.width, model.mlp_ratio) == (3, 2, 16, 2)
    assert (model.dropout, model.use_bias, model.tie_weights) == (0.1, False, False)
    assert (model.positional, model.attention_impl) == ("rotary", "auto")
    assert (model.vocab_size, model.context_length) == (VOCAB_SIZE, 32)
    config.kind = "rnn"
    with pytest.raises(ValueError, match="transformer"):
        from_config(config, vocab_size=VOCAB_SIZE, context_length=32)


def value_and_grads(product, a, b, numbers):
    """``sum(sin(product(a, b)))`` and its gradients in ``a`` and ``b``."""
    return jax.value_and_grad(lambda a, b: jnp.sum(jnp.sin(product(a, b, numbers))),
                              argnums=(0, 1))(a, b)


def random_operands(shapes):
    return [jax.random.normal(jax.random.PRNGKey(seed), shape) for seed, shape in enumerate(shapes)]


def assert_float32_is_dot_general(product, a, b, numbers):
    """On float32 operands ``product`` and its gradients are exactly ``dot_general``'s."""
    value, grads = value_and_grads(product, a, b, numbers)
    expected, expected_grads = value_and_grads(jax.lax.dot_general, a, b, numbers)
    np.testing.assert_array_equal(value, expected)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_array_equal(got, want)


def test_the_float32_output_product_and_its_gradients():
    """Float32 operands: exactly ``dot_general``. bfloat16 operands: float32 sums out, and
    gradient products in bfloat16 from the cotangent rounded to it."""
    a, b = random_operands(((5, 12), (7, 12)))
    numbers = (((1,), (1,)), ((), ()))
    assert_float32_is_dot_general(float32_output_dot_general, a, b, numbers)
    a16, b16 = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
    out = float32_output_dot_general(a16, b16, numbers)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, jax.lax.dot_general(a16.astype(jnp.float32),
                                                        b16.astype(jnp.float32), numbers),
                               rtol=1e-5)  # the float32 sum of the bfloat16 operands
    cotangent = jnp.cos(out)
    _, vjp = jax.vjp(lambda a, b: float32_output_dot_general(a, b, numbers), a16, b16)
    _, vjp16 = jax.vjp(lambda a, b: jax.lax.dot_general(a, b, numbers), a16, b16)
    for got, want in zip(vjp(cotangent), vjp16(cotangent.astype(jnp.bfloat16))):
        assert got.dtype == jnp.bfloat16
        np.testing.assert_array_equal(got, want)


PRODUCT_LAYOUTS = [  # (lhs shape, rhs shape), dot_general's dimension_numbers
    (((5, 12), (7, 12)), (((1,), (1,)), ((), ()))),  # x W^T
    (((12, 5), (12, 7)), (((0,), (0,)), ((), ()))),  # x^T dy: a weight gradient
    (((3, 4, 6), (4, 6, 5)), (((1, 2), (0, 1)), ((), ()))),  # merging heads
    (((2, 3, 4, 6), (2, 3, 5, 6)), (((3,), (3,)), ((0, 1), (0, 1)))),  # Q K^T per head
    (((2, 6, 3, 4), (3, 5, 2, 4)), (((3,), (3,)), ((2, 0), (0, 2)))),  # batch axes anywhere
    # W^T delta of the fused LSTM (gi,gtb->itb): XLA:CPU failed on its float32-sum products
    # at run time until their axes were merged first (_matrix_product)
    (((64, 24), (64, 8, 4)), (((0,), (0,)), ((), ()))),
]


@pytest.mark.parametrize("shapes,numbers", PRODUCT_LAYOUTS)
def test_the_rounded_product_and_its_gradients(shapes, numbers):
    """Float32 operands: exactly ``dot_general``. bfloat16 operands: the float32 sum rounded to
    bfloat16, and gradients within one bfloat16 rounding of autodiff's bfloat16 products."""
    a, b = random_operands(shapes)
    assert_float32_is_dot_general(rounded_dot_general, a, b, numbers)
    a16, b16 = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
    out = jax.jit(functools.partial(rounded_dot_general, dimension_numbers=numbers))(a16, b16)
    float32_sum = jax.lax.dot_general(a16.astype(jnp.float32), b16.astype(jnp.float32), numbers)
    assert out.dtype == jnp.bfloat16
    one_rounding = dict(rtol=2.0 ** -8, atol=1e-6)  # bfloat16 keeps 8 significant bits
    np.testing.assert_allclose(out.astype(jnp.float32), float32_sum, **one_rounding)
    cotangent = jnp.cos(out)
    _, vjp = jax.vjp(lambda a, b: rounded_dot_general(a, b, numbers), a16, b16)
    _, vjp16 = jax.vjp(lambda a, b: jax.lax.dot_general(a, b, numbers), a16, b16)
    for got, want in zip(jax.jit(vjp)(cotangent), vjp16(cotangent)):
        assert got.dtype == jnp.bfloat16 and got.shape == want.shape
        np.testing.assert_allclose(got.astype(jnp.float32), want.astype(jnp.float32),
                                   **one_rounding)


def test_the_rounded_product_leaves_other_dtypes_and_a_wider_result_to_dot_general():
    numbers = (((1,), (0,)), ((), ()))
    big = jnp.asarray([[2 ** 23, 2 ** 23 + 1]], jnp.int32)  # the sum 2^24 + 1 is exact in int32
    np.testing.assert_array_equal(rounded_dot_general(big, jnp.ones((2, 1), jnp.int32), numbers),
                                  [[2 ** 24 + 1]])
    a16, ones16 = jnp.asarray([[256.0, 1.0]], jnp.bfloat16), jnp.ones((2, 1), jnp.bfloat16)
    wide = rounded_dot_general(a16, ones16, numbers, preferred_element_type=jnp.float32)
    assert wide.dtype == jnp.float32 and wide[0, 0] == 257.0  # 257 is not a bfloat16
    weights = jnp.ones((2, 3, 4), jnp.int32)  # integer weights over bfloat16 values
    values = jnp.ones((2, 4, 5), jnp.bfloat16)
    grad = jax.jit(jax.grad(lambda v: attend(weights, v).astype(jnp.float32).sum()))(values)
    assert grad.dtype == jnp.bfloat16 and np.all(np.asarray(grad, np.float32) == 3.0)


@pytest.mark.parametrize("shapes,numbers", PRODUCT_LAYOUTS)
def test_einsum_axes_computes_what_dot_general_computes(shapes, numbers):
    a, b = random_operands(shapes)
    lhs, rhs, out = einsum_axes(a.ndim, b.ndim, numbers)
    np.testing.assert_allclose(jnp.einsum(f"{lhs},{rhs}->{out}", a, b),
                               jax.lax.dot_general(a, b, numbers), rtol=1e-5, atol=1e-5)
