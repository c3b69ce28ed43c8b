"""Specification of the cache count models (seqjax.models.cache_lm) against a slow reference."""

from collections import Counter

import numpy as np
import pytest

from seqjax.models import cache_lm
from seqjax.models.ngram import NGramLM

VOCAB = 6


def repetitive_windows(count, length, seed):
    """Windows that repeat short phrases, so every cache order has something to find."""
    rng = np.random.default_rng(seed)
    phrases = rng.integers(0, VOCAB, (4, 3))
    rows = [np.concatenate([phrases[i] if rng.random() < 0.7 else rng.integers(0, VOCAB, 3)
                            for i in rng.integers(0, 4, length // 3 + 1)])[:length]
            for _ in range(count)]
    return np.stack(rows)


def reference_cache_distribution(history, order):
    """The backed-off cache's whole next-token distribution after ``history``, by counting."""
    for m in range(order, 0, -1):
        context = tuple(history[len(history) - m + 1:]) if m > 1 else ()
        if len(context) < m - 1:
            continue
        followers = Counter(history[s] for s in range(m - 1, len(history))
                            if tuple(history[s - m + 1: s]) == context)
        if followers:
            total = sum(followers.values())
            return np.array([followers[w] / total for w in range(VOCAB)])
    raise AssertionError("the unigram cache always has a count for t >= 1")


@pytest.mark.parametrize("order", [1, 2, 3])
def test_cache_probabilities_are_the_counted_distributions(order):
    windows = repetitive_windows(5, 40, seed=order)
    probs = cache_lm.ngram_cache_probs(windows, order)
    for n, window in enumerate(windows.tolist()):
        for t in range(1, len(window)):
            distribution = reference_cache_distribution(window[:t], order)
            assert distribution.sum() == pytest.approx(1.0)
            assert probs[n, t - 1] == pytest.approx(distribution[window[t]])


def test_the_unigram_cache_is_the_share_of_each_token_so_far():
    windows = np.array([[2, 2, 5, 2, 5, 1]])
    np.testing.assert_allclose(cache_lm.unigram_cache_probs(windows),
                               [[1 / 1, 0 / 2, 2 / 3, 1 / 4, 0 / 5]])


def test_contexts_do_not_reach_before_the_window():
    # Predicting x_1 = 3 after x_0 = 3: a bigram context (3) occurred nowhere before x_1.
    windows = np.array([[3, 3, 3]])
    joint, context = cache_lm.cache_counts(windows, 2)
    np.testing.assert_array_equal(context, [[0, 1]])
    np.testing.assert_array_equal(joint, [[0, 1]])


def test_the_mixture_is_a_distribution_and_static_losses_match_the_ngram_model():
    train = repetitive_windows(1, 300, seed=7)[0]
    ngram = NGramLM.fit(train, 2, VOCAB, k=0.5)
    windows = repetitive_windows(3, 20, seed=8)
    static = cache_lm.static_log_probs(ngram, windows)
    np.testing.assert_allclose(static[1], ngram.log_probs(windows[1])[1:])
    cache = cache_lm.ngram_cache_probs(windows, 2)
    for weight in (0.2, 0.9):
        mixed = cache_lm.mixture_log_probs(static, cache, weight)
        np.testing.assert_allclose(np.exp(mixed), weight * np.exp(static) + (1 - weight) * cache)
    # Summed over every possible next token, the mixture is 1 at each position.
    window = windows[0]
    for t in range(1, len(window)):
        total = 0.0
        for w in range(VOCAB):
            candidate = np.concatenate([window[:t], [w]])[None]
            static_w = cache_lm.static_log_probs(ngram, candidate)[0, -1]
            cache_w = cache_lm.ngram_cache_probs(candidate, 2)[0, -1]
            total += np.exp(cache_lm.mixture_log_probs(static_w, cache_w, 0.6))
        assert total == pytest.approx(1.0)
