"""Sampling, generation and beam search on hand-built step functions."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.generation import (
    beam_search,
    fed_length,
    feed_prompt,
    generate,
    reorder_beams,
    sample_next,
    teacher_forced_losses,
    top_k_filter,
    top_p_filter,
)

PROBS = np.array([0.5, 0.3, 0.15, 0.05])
LOGITS = jnp.log(jnp.asarray(PROBS, jnp.float32))


def second_order_chain(log_prob_table):
    """``step_fn`` of a Markov chain whose next token depends on the last two tokens.

    ``log_prob_table[a, b]`` is ``log p(next | a, b)``; the state is the previous token, so a
    beam search that mixed up beam states would score the wrong continuations.
    """
    table = jnp.asarray(log_prob_table, jnp.float32)

    def step_fn(state, token):
        return table[state["previous"], token], {"previous": token}

    return step_fn


def chain_state(batch_size):
    return {"previous": jnp.zeros(batch_size, jnp.int32)}


def random_chain(seed, vocab_size=4):
    logits = np.random.default_rng(seed).normal(size=(vocab_size, vocab_size, vocab_size)) * 2
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True))


def chain_log_prob(log_prob_table, prompt, tokens):
    """``log p(tokens | prompt)`` by direct lookup (prompt already fed)."""
    sequence = [0, *prompt, *tokens]  # the state starts as previous = 0
    return sum(
        log_prob_table[sequence[i - 2], sequence[i - 1], sequence[i]]
        for i in range(len(prompt) + 1, len(sequence))
    )


def python_greedy(log_prob_table, prompt, num_tokens):
    tokens = []
    for _ in range(num_tokens):
        sequence = [0, *prompt, *tokens]
        tokens.append(int(np.argmax(log_prob_table[sequence[-2], sequence[-1]])))
    return tokens


# --- sample_next ---------------------------------------------------------------------------


def test_temperature_zero_is_argmax():
    logits = jax.random.normal(jax.random.PRNGKey(0), (6, 9))
    greedy = sample_next(jax.random.PRNGKey(1), logits, temperature=0.0)
    np.testing.assert_array_equal(greedy, np.argmax(logits, axis=-1))


def test_top_k_one_is_greedy_for_every_key():
    logits = jax.random.normal(jax.random.PRNGKey(0), (6, 9))
    for seed in range(5):
        sampled = sample_next(jax.random.PRNGKey(seed), logits, top_k=1)
        np.testing.assert_array_equal(sampled, np.argmax(logits, axis=-1))


@pytest.mark.parametrize("top_p, kept", [(0.45, [0]), (0.75, [0, 1]), (0.9, [0, 1, 2]),
                                         (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_smallest_set_reaching_p(top_p, kept):
    filtered = top_p_filter(LOGITS, top_p)
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(filtered)), kept)


def test_top_k_filter_keeps_k_largest():
    filtered = top_k_filter(LOGITS[jnp.array([2, 0, 3, 1])], 2)
    np.testing.assert_array_equal(np.isfinite(filtered), [False, True, False, True])


def test_top_p_applies_after_top_k_renormalises():
    # top-2 renormalised: (0.625, 0.375), so top_p = 0.6 keeps token 0 alone, while over
    # the full distribution (0.5 first) top_p = 0.6 needs tokens 0 and 1.
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    sample = lambda **options: jax.vmap(lambda key: sample_next(key, LOGITS, **options))(keys)
    assert set(np.asarray(sample(top_k=2, top_p=0.6)).tolist()) == {0}
    assert set(np.asarray(sample(top_p=0.6)).tolist()) == {0, 1}


def chi_square(samples, probs):
    counts = np.bincount(np.asarray(samples), minlength=len(probs))
    expected = len(samples) * np.asarray(probs)
    return np.sum((counts - expected) ** 2 / expected)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_sampling_frequencies_match_softmax(temperature):
    num_samples = 20000
    logits = jnp.tile(LOGITS, (num_samples, 1))
    samples = sample_next(jax.random.PRNGKey(0), logits, temperature=temperature)
    probs = jax.nn.softmax(LOGITS / temperature)
    # 3 degrees of freedom: P(chi2 > 25) ~ 2e-5; a wrong distribution gives hundreds.
    assert chi_square(samples, probs) < 25.0


def test_top_k_sampling_frequencies_match_renormalised_softmax():
    logits = jnp.tile(LOGITS, (20000, 1))
    samples = sample_next(jax.random.PRNGKey(1), logits, top_k=3)
    probs = np.append(PROBS[:3] / PROBS[:3].sum(), 1e-12)
    assert chi_square(samples, probs) < 25.0


def test_bad_sampling_options_are_errors():
    with pytest.raises(ValueError, match="temperature"):
        sample_next(jax.random.PRNGKey(0), LOGITS, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        sample_next(jax.random.PRNGKey(0), LOGITS, top_k=0)
    with pytest.raises(ValueError, match="top_p"):
        sample_next(jax.random.PRNGKey(0), LOGITS, top_p=1.5)


# --- generate --------------------------------------------------------------------------------


def test_greedy_generate_matches_python_loop_and_jits():
    table = random_chain(0)
    prompt = jnp.array([[1, 2], [3, 3]], jnp.int32)
    run = jax.jit(
        lambda prompt, key: generate(
            second_order_chain(table), chain_state(2), prompt, 6, key, temperature=0.0
        )
    )
    tokens = run(prompt, jax.random.PRNGKey(0))
    assert tokens.shape == (2, 6) and tokens.dtype == jnp.int32
    for row in range(2):
        expected = python_greedy(table, prompt[row].tolist(), 6)
        np.testing.assert_array_equal(tokens[row], expected)


def test_sampled_generation_is_reproducible_and_varies_with_key():
    step_fn, prompt = second_order_chain(np.zeros((4, 4, 4))), jnp.ones((3, 1), jnp.int32)
    run = lambda seed: generate(step_fn, chain_state(3), prompt, 12, jax.random.PRNGKey(seed))
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def counting_step_fn(step_fn, calls):
    """``step_fn`` that appends to ``calls`` each time it runs (also inside a scan)."""
    def counted(state, token):
        jax.debug.callback(lambda: calls.append(1))
        return step_fn(state, token)

    return counted


@pytest.mark.parametrize("num_tokens", [1, 2, 5])
def test_decoding_feeds_the_prompt_and_every_token_but_the_last(num_tokens):
    """Nothing follows the last token, so feeding it would be a wasted model step (and would
    need a decode state one token longer)."""
    table, prompt = random_chain(3), jnp.array([[1, 2, 0]], jnp.int32)
    calls = []
    step_fn = counting_step_fn(second_order_chain(table), calls)
    tokens = generate(step_fn, chain_state(1), prompt, num_tokens, jax.random.PRNGKey(0),
                      temperature=0.0)
    jax.effects_barrier()
    assert len(calls) == fed_length(3, num_tokens) == 3 + num_tokens - 1
    np.testing.assert_array_equal(tokens[0], python_greedy(table, [1, 2, 0], num_tokens))
    calls.clear()
    beam, _ = beam_search(step_fn, chain_state(2), prompt[0], num_tokens, beam_size=2)
    jax.effects_barrier()
    assert len(calls) == fed_length(3, num_tokens) and beam.shape == (num_tokens,)


def primitive_count(jaxpr, name):
    """How many equations of primitive ``name`` a (closed) jaxpr holds, its sub-jaxprs (scan
    bodies, cond branches) included."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    count = 0
    for equation in jaxpr.eqns:
        count += equation.primitive.name == name
        for value in equation.params.values():
            for inner in value if isinstance(value, (tuple, list)) else (value,):
                if hasattr(inner, "eqns") or hasattr(getattr(inner, "jaxpr", None), "eqns"):
                    count += primitive_count(inner, name)
    return count


def test_decoding_programs_hold_one_copy_of_the_model():
    """The prompt and the new tokens go through one scan: a model's decode step is traced into
    (and compiled in) the programs of ``generate``, ``feed_prompt`` and ``beam_search`` once."""
    step_fn = counting_step_fn(second_order_chain(random_chain(0)), [])
    prompt = jnp.array([[1, 2, 0]], jnp.int32)
    program = jax.make_jaxpr(lambda prompt, key: generate(
        step_fn, chain_state(1), prompt, 4, key, top_k=2))(prompt, jax.random.PRNGKey(0))
    assert primitive_count(program, "debug_callback") == 1
    fed = jax.make_jaxpr(lambda prompt: feed_prompt(step_fn, chain_state(1), prompt))(prompt)
    assert primitive_count(fed, "debug_callback") == 1
    beam = jax.make_jaxpr(lambda prompt: beam_search(
        step_fn, chain_state(2), prompt[0], 4, beam_size=2))(prompt)
    assert primitive_count(beam, "debug_callback") == 1


@pytest.mark.parametrize("prompt_length", [1, 3])
def test_sampled_tokens_use_one_split_key_each(prompt_length):
    """Token ``i`` is drawn with key ``i`` whatever the prompt's length (a uniform chain, so the
    tokens depend on the keys alone)."""
    step_fn = second_order_chain(np.zeros((4, 4, 4)))
    prompt = jnp.ones((2, prompt_length), jnp.int32)
    key = jax.random.PRNGKey(5)
    tokens = generate(step_fn, chain_state(2), prompt, 4, key)
    expected = [jax.random.categorical(k, jnp.zeros((2, 4))) for k in jax.random.split(key, 4)]
    np.testing.assert_array_equal(tokens, np.stack(expected, axis=1))


def test_a_prompt_of_another_integer_dtype_is_fed_as_int32():
    """The chain's state stores the token fed, so a uint8 prompt would change the scan carry's
    dtype if it were fed as it is."""
    step_fn, prompt = second_order_chain(random_chain(6)), jnp.array([[1, 2, 0]], jnp.int32)
    small = prompt.astype(jnp.uint8)
    key = jax.random.PRNGKey(0)
    np.testing.assert_array_equal(generate(step_fn, chain_state(1), small, 3, key),
                                  generate(step_fn, chain_state(1), prompt, 3, key))
    np.testing.assert_array_equal(feed_prompt(step_fn, chain_state(1), small)[0],
                                  feed_prompt(step_fn, chain_state(1), prompt)[0])


def test_teacher_forced_losses_are_the_chains_next_token_losses():
    table = random_chain(4)
    tokens = jnp.array([[1, 2, 0, 3, 3, 1], [0, 0, 2, 1, 3, 2]], jnp.int32)
    losses = jax.jit(lambda tokens: teacher_forced_losses(
        second_order_chain(table), chain_state(2), tokens))(tokens)
    assert losses.shape == (2, 5)
    for row in range(2):
        sequence = [0, *tokens[row].tolist()]  # the state starts as previous = 0
        expected = [-table[sequence[t - 1], sequence[t], sequence[t + 1]] for t in range(1, 6)]
        np.testing.assert_allclose(losses[row], expected, rtol=1e-5)


def test_generating_no_token_is_an_error():
    with pytest.raises(ValueError, match="num_tokens must be >= 1, got 0"):
        generate(second_order_chain(random_chain(0)), chain_state(1),
                 jnp.ones((1, 2), jnp.int32), 0, jax.random.PRNGKey(0))


def test_empty_prompt_is_an_error():
    with pytest.raises(ValueError, match="at least one token"):
        generate(second_order_chain(random_chain(0)), chain_state(1),
                 jnp.zeros((1, 0), jnp.int32), 3, jax.random.PRNGKey(0))


# --- beam search -----------------------------------------------------------------------------


def test_beam_size_one_is_greedy():
    table = random_chain(1)
    tokens, score = beam_search(second_order_chain(table), chain_state(1), jnp.array([2, 1]), 5, 1)
    expected = python_greedy(table, [2, 1], 5)
    np.testing.assert_array_equal(tokens, expected)
    np.testing.assert_allclose(score, chain_log_prob(table, [2, 1], expected), rtol=1e-5)


@pytest.mark.parametrize("prompt", [[1], [2, 1, 0]])
def test_wide_beam_is_exhaustive_search(prompt):
    # With beam_size = V^(n-1) nothing is ever pruned: beam search finds the argmax sequence.
    table, vocab_size, num_tokens = random_chain(2, vocab_size=3), 3, 3
    tokens, score = beam_search(second_order_chain(table), chain_state(9), jnp.array(prompt),
                                num_tokens, beam_size=9)
    all_scores = {
        seq: chain_log_prob(table, prompt, seq)
        for seq in itertools.product(range(vocab_size), repeat=num_tokens)
    }
    best = max(all_scores, key=all_scores.get)
    np.testing.assert_array_equal(tokens, best)
    np.testing.assert_allclose(score, all_scores[best], rtol=1e-5)


def test_beam_search_beats_myopic_greedy():
    # From token 1, greedy takes 2 (p=0.6), after which every token has p=1/3; taking 3
    # (p=0.4) leads to a token of p=0.9. Beam 2 finds 0.4 * 0.9 = 0.36 > 0.6 / 3 = 0.2.
    probs = np.full((4, 4, 4), 0.25)
    probs[0, 1] = [0.0, 0.0, 0.6, 0.4]
    probs[1, 2] = [1 / 3, 1 / 3, 1 / 3, 0.0]
    probs[1, 3] = [0.9, 0.1 / 3, 0.1 / 3, 0.1 / 3]
    table = np.log(probs + 1e-30)
    greedy = python_greedy(table, [1], 2)
    search = jax.jit(lambda prompt: beam_search(second_order_chain(table), chain_state(2),
                                                prompt, num_tokens=2, beam_size=2))
    tokens, score = search(jnp.array([1]))
    assert greedy[0] == 2 and tokens.tolist() == [3, 0]
    np.testing.assert_allclose(score, np.log(0.36), rtol=1e-5)
    assert score > chain_log_prob(table, [1], greedy)


def test_length_penalty_trades_early_end_for_longer_continuation():
    # Token 0 is EOS. After the prompt: p(EOS) = 0.5, p(2) = 0.45; after 2, p(2) = 0.9.
    # Sum of log-probs prefers ending now (log 0.5); per-token average prefers 2, 2, 2.
    probs = np.full((3, 3, 3), 1 / 3)
    probs[0, 1] = [0.5, 0.05, 0.45]
    probs[1, 2] = probs[2, 2] = [0.05, 0.05, 0.9]
    step_fn, table = second_order_chain(np.log(probs)), np.log(probs)
    search = lambda penalty: beam_search(
        step_fn, chain_state(3), jnp.array([1]), 3, 3, length_penalty=penalty, eos_id=0
    )
    tokens, score = search(0.0)
    np.testing.assert_array_equal(tokens, [0, 0, 0])  # after EOS: EOS padding
    np.testing.assert_allclose(score, np.log(0.5), rtol=1e-5)
    tokens, score = search(1.0)
    np.testing.assert_array_equal(tokens, [2, 2, 2])
    np.testing.assert_allclose(score, chain_log_prob(table, [1], [2, 2, 2]) / 3, rtol=1e-5)


def test_reorder_beams_gathers_batched_leaves_and_shares_scalars():
    state = {"cache": jnp.arange(6).reshape(3, 2), "position": jnp.array(7)}
    reordered = reorder_beams(state, jnp.array([2, 2, 0]))
    np.testing.assert_array_equal(reordered["cache"], [[4, 5], [4, 5], [0, 1]])
    assert reordered["position"] == 7
