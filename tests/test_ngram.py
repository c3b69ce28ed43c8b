"""Specification of the count n-gram language model (seqjax.models.ngram)."""

import math
from collections import Counter

import numpy as np
import pytest

from seqjax.models.ngram import NGramLM


def structured_text(length, vocab_size, seed):
    """A Markov chain ``[length]`` whose next token is mostly ``previous + 1`` (mod V)."""
    rng = np.random.default_rng(seed)
    steps = np.where(rng.random(length) < 0.8, 1, rng.integers(0, vocab_size, length))
    return np.cumsum(steps) % vocab_size


def reference_log_probs(train, test, order, vocab_size, k):
    """Slow add-k n-gram log-probabilities of ``test`` from ``Counter``s of ``train`` windows."""
    train = [int(token) for token in train]
    joint, context = Counter(), Counter()
    for context_length in range(order):
        for end in range(context_length, len(train)):
            window = tuple(train[end - context_length : end + 1])
            joint[window] += 1
            context[window[:-1]] += 1
    log_probs = []
    for position, token in enumerate(test):
        history = tuple(int(t) for t in test[max(0, position - order + 1) : position])
        numerator = joint[history + (int(token),)] + k
        log_probs.append(math.log(numerator / (context[history] + k * vocab_size)))
    return np.array(log_probs)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_next_token_probs_sum_to_one_for_every_context(order):
    vocab_size = 7
    train = structured_text(2000, vocab_size, seed=0)
    model = NGramLM.fit(train, order, vocab_size, k=0.01)
    rng = np.random.default_rng(1)
    contexts = [[], [3], list(train[:order - 1]), list(train[100:110]), [6, 6, 6, 6, 6, 6]]
    contexts += [list(rng.integers(0, vocab_size, length)) for length in range(8) for _ in range(5)]
    for context in contexts:
        probs = model.next_token_probs(context)
        assert probs.shape == (vocab_size,)
        assert np.all(probs > 0)
        assert abs(probs.sum() - 1.0) < 1e-12


def test_unseen_context_gives_uniform_distribution():
    model = NGramLM.fit([0, 1, 0, 1, 0], order=3, vocab_size=4, k=0.5)
    np.testing.assert_allclose(model.next_token_probs([3, 3]), np.full(4, 0.25), rtol=1e-15)


@pytest.mark.parametrize("k", [1.0, 0.05])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_log_probs_match_a_dictionary_reference(order, k):
    vocab_size = 5
    rng = np.random.default_rng(order)
    train = rng.integers(0, vocab_size, 300)
    test = np.concatenate([train[:40], rng.integers(0, vocab_size, 60)])
    model = NGramLM.fit(train, order, vocab_size, k=k)
    expected = reference_log_probs(train, test, order, vocab_size, k)
    np.testing.assert_allclose(model.log_probs(test), expected, rtol=1e-12)
    assert model.loss(test) == pytest.approx(-expected.mean(), rel=1e-12)


def test_next_token_probs_match_log_probs_of_the_continuation():
    vocab_size = 6
    train = structured_text(500, vocab_size, seed=3)
    model = NGramLM.fit(train, order=3, vocab_size=vocab_size, k=0.1)
    text = train[:20]
    for position in range(len(text)):
        probs = model.next_token_probs(text[:position])
        assert math.log(probs[text[position]]) == pytest.approx(model.log_probs(text)[position])


def test_hand_checked_bigram():
    # Unigram counts: 0 x3, 1 x2, N = 5. Bigrams: (0,1) x2, (1,0) x2; each of 0 and 1 is
    # followed by a token twice (the final 0 is followed by nothing), so count(c) = 2.
    model = NGramLM.fit([0, 1, 0, 1, 0], order=2, vocab_size=2, k=1.0)
    p_first_0 = (3 + 1) / (5 + 2)
    p_1_after_0 = (2 + 1) / (2 + 2)
    p_0_after_1 = (2 + 1) / (2 + 2)
    np.testing.assert_allclose(model.next_token_probs([]), [4 / 7, 3 / 7], rtol=1e-15)
    np.testing.assert_allclose(model.next_token_probs([1, 0]), [1 / 4, 3 / 4], rtol=1e-15)
    np.testing.assert_allclose(
        model.log_probs([0, 1, 0, 0]),
        np.log([p_first_0, p_1_after_0, p_0_after_1, (0 + 1) / (2 + 2)]),
        rtol=1e-15,
    )


def test_memorized_text_scores_better_than_held_out_and_bigram_beats_unigram():
    vocab_size = 20
    train = structured_text(5000, vocab_size, seed=10)
    held_out = structured_text(5000, vocab_size, seed=11)
    trigram = NGramLM.fit(train, order=3, vocab_size=vocab_size, k=0.01)
    assert trigram.loss(train) < trigram.loss(held_out)
    unigram = NGramLM.fit(train, order=1, vocab_size=vocab_size, k=0.01)
    bigram = NGramLM.fit(train, order=2, vocab_size=vocab_size, k=0.01)
    assert bigram.loss(held_out) < unigram.loss(held_out) - 1.0
    assert unigram.loss(held_out) == pytest.approx(math.log(vocab_size), abs=0.05)


def test_log_probs_of_arrays_shorter_than_the_order():
    model = NGramLM.fit(structured_text(200, 4, seed=0), order=5, vocab_size=4)
    assert model.log_probs([]).shape == (0,)
    assert model.log_probs([2, 3]).shape == (2,)


@pytest.mark.parametrize(
    "tokens, order, vocab_size, k, message",
    [
        ([0, 1], 0, 2, 1.0, "order must be >= 1"),
        ([0, 1], 2, 2, 0.0, "k must be > 0"),
        ([0, 1], 2, 2, -1.0, "k must be > 0"),
        ([0, 2], 2, 2, 1.0, r"token ids must lie in \[0, vocab_size=2\)"),
        ([-1, 1], 2, 2, 1.0, "token ids must lie"),
        ([], 2, 2, 1.0, "tokens is empty"),
        ([0.5, 1.0], 2, 2, 1.0, "integer ids"),
        ([0, 1], 11, 65, 1.0, r"exceeds the int64 limit 2\*\*63 - 1"),
    ],
)
def test_fit_rejects_bad_arguments(tokens, order, vocab_size, k, message):
    with pytest.raises(ValueError, match=message):
        NGramLM.fit(tokens, order, vocab_size, k=k)


def test_evaluation_rejects_out_of_range_tokens_and_empty_loss():
    model = NGramLM.fit([0, 1, 2], order=2, vocab_size=3)
    with pytest.raises(ValueError, match="token ids must lie"):
        model.log_probs([0, 3])
    with pytest.raises(ValueError, match="token ids must lie"):
        model.next_token_probs([5])
    with pytest.raises(ValueError, match="tokens is empty"):
        model.loss([])


def test_fits_a_million_tokens_at_order_8_quickly():
    tokens = structured_text(1_000_000, 65, seed=0)
    model = NGramLM.fit(tokens, order=8, vocab_size=65, k=0.1)
    assert model.counts[0].context_counts.tolist() == [1_000_000]
    assert model.counts[7].joint_counts.sum() == 1_000_000 - 7
    assert np.isfinite(model.loss(tokens[:10_000]))
