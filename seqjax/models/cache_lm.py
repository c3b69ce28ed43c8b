"""Count language models with a cache over the context window (Kuhn & De Mori 1990; Tu et al. 2014).

Text repeats itself locally: a name defined near the top of a source file comes back below it.
A cache model predicts from counts over the tokens already seen in the window, so its loss
falls along the window exactly as far as the data holds such repetition. That is evidence of
long-range structure which needs no neural network.

For a window ``x_0 .. x_T``, token ``x_t`` (``t = 1 .. T``) is predicted from ``x_0 .. x_{t-1}``.

Unigram cache (Kuhn & De Mori 1990), the frequency of ``w`` so far in the window:

.. math::

    p_1(w \\mid x_{<t}) = \\frac{\\#\\{s < t : x_s = w\\}}{t}

n-gram cache of order ``m`` (Tu et al. 2014): what followed the last ``m - 1`` tokens where
they occurred earlier in the window,

.. math::

    p_m(w \\mid x_{<t}) = \\frac{\\#\\{s < t : x_{s-m+1..s-1} = x_{t-m+1..t-1},\\ x_s = w\\}}
                              {\\#\\{s < t : x_{s-m+1..s-1} = x_{t-m+1..t-1}\\}}

backed off to the highest order whose context occurred before (down to ``p_1``, defined from
``t = 1`` on). Either cache is mixed with a static n-gram ``p_static``
(:class:`seqjax.models.ngram.NGramLM`, fit on the training split):

.. math::

    p(x_t \\mid x_{<t}) = \\lambda\\, p_{static}(x_t \\mid x_{t-n+1..t-1})
                          + (1 - \\lambda)\\, p_{cache}(x_t \\mid x_{<t})

All functions take windows ``[N, T + 1]`` of token ids and return ``[N, T]``: the value for
each target ``x_1 .. x_T``. Pure NumPy; the counts are dense ``[N, T + 1, T + 1]`` position
comparisons, so pass a few dozen windows at a time.
"""

import numpy as np

# Sentinels for positions before the window's start: the earlier side and the current side
# get different ones, so a context that reaches before the window never matches.
_BEFORE_EARLIER, _BEFORE_CURRENT = -1, -2


def _shifted(windows, lag, fill):
    """``[N, P]`` with ``out[:, p] = windows[:, p - lag]`` (``fill`` where ``p < lag``)."""
    out = np.full_like(windows, fill)
    out[:, lag:] = windows[:, : windows.shape[1] - lag]
    return out


def cache_counts(windows, order):
    """``(joint, context)``, each ``[N, T]`` int: the numerator and denominator of ``p_order``.

    For ``order = 1`` the context is empty, so ``context = t``.
    """
    windows = np.asarray(windows, np.int64)
    positions = windows.shape[1]
    earlier = np.tri(positions, k=-1, dtype=bool)  # [t, s]: s < t
    matches = np.broadcast_to(earlier, (len(windows), positions, positions))
    for lag in range(1, order):  # the context x_{t-lag} = x_{s-lag}, lag = 1 .. m - 1
        current = _shifted(windows, lag, _BEFORE_CURRENT)
        previous = _shifted(windows, lag, _BEFORE_EARLIER)
        matches = matches & (current[:, :, None] == previous[:, None, :])
    same_token = windows[:, :, None] == windows[:, None, :]
    joint = (matches & same_token).sum(axis=2)[:, 1:]
    context = matches.sum(axis=2)[:, 1:]
    return joint, context


def unigram_cache_probs(windows):
    """``[N, T]``: ``p_1(x_t | x_<t)``, the share of ``x_t`` among the ``t`` tokens before it."""
    joint, context = cache_counts(windows, 1)
    return joint / context


def ngram_cache_probs(windows, order=3):
    """``[N, T]``: ``p_m(x_t | x_<t)`` at the highest ``m <= order`` whose context occurred
    earlier in the window (the n-gram cache backed off to the unigram cache)."""
    probs = unigram_cache_probs(windows)
    for m in range(2, order + 1):  # each higher order overrides where its context was seen
        joint, context = cache_counts(windows, m)
        probs = np.where(context > 0, joint / np.maximum(context, 1), probs)
    return probs


def static_log_probs(ngram, windows):
    """``[N, T]``: ``log p_static(x_t | ...)`` of each window on its own (the n-gram's context is
    cut at the window's start, like the neural models')."""
    return np.stack([ngram.log_probs(window)[1:] for window in np.asarray(windows)])


def mixture_log_probs(static_log_prob, cache_prob, weight):
    """``log(weight p_static + (1 - weight) p_cache)``, elementwise."""
    return np.logaddexp(np.log(weight) + static_log_prob,
                        np.log1p(-weight) + np.log(np.maximum(cache_prob, 1e-300)))
