"""A trained language model's loss at each position of its context window.

.. math::

    \\ell(t) = \\frac{1}{N} \\sum_{n=1}^{N} -\\log p(y^{(n)}_{t+1} \\mid y^{(n)}_1 \\ldots y^{(n)}_t),
    \\qquad t = 1 \\ldots T,

over the ``N`` validation windows that :func:`seqjax.training.language_modeling.evaluate` reads, each started
afresh: a recurrent model from the zero state, a Transformer with nothing before the window.
So ``ell(t)`` shows how much a model gains from ``t`` tokens of context (the per-token
loss of Kaplan et al. 2020), and ``mean_t ell(t)`` is the validation loss with
the state reset at every window.

To compare curves, :func:`window_position_losses` keeps each window's own ``ell_n(t)``,
:func:`binned_losses` averages it over bins of doubling width, and
:func:`bootstrap_interval` resamples the windows for a 95% interval of each bin's mean (of a
difference of two models too, paired on the same windows).
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.data import num_stream_windows, stream_windows
from seqjax.losses import token_cross_entropy


@partial(jax.jit, static_argnums=0)
def _position_losses(model, params, inputs, targets):
    """``[B, T]``: the loss at each position of each row of ``inputs [B, T]``, started afresh."""
    logits, _ = model.apply({"params": params}, inputs, model.initial_carry(inputs.shape[0]))
    return token_cross_entropy(logits, targets)


def _window_position_losses(model, params, inputs, targets):
    """``[T]`` summed over the batch: the loss at each position of ``inputs [B, T]``."""
    return jnp.sum(_position_losses(model, params, inputs, targets), axis=0)


def window_position_losses(model, params, windows, *, batch_size):
    """``[N, T]`` float32: ``ell_n(t)``, the loss at each position of each window ``[N, T + 1]``
    (inputs ``windows[:, :-1]``, targets ``windows[:, 1:]``), ``batch_size`` windows at a time
    (the last batch padded with copies of the first window, whose rows are dropped)."""
    windows = np.asarray(windows, np.int32)
    rows = []
    for start in range(0, len(windows), batch_size):
        batch = windows[start: start + batch_size]
        padded = np.concatenate([batch, np.repeat(windows[:1], batch_size - len(batch), 0)])
        losses = _position_losses(model, params, padded[:, :-1], padded[:, 1:])
        rows.append(np.asarray(losses, np.float32)[: len(batch)])
    return np.concatenate(rows)


def doubling_bins(seq_len):
    """``[(first, last)]``: positions ``1..seq_len`` in bins 1, 2, 3-4, 5-8, 9-16, ... (each
    twice as wide as the one before: evenly spaced on a log axis), the last cut at ``seq_len``."""
    bins, first = [], 1
    while first <= seq_len:
        last = min(seq_len, max(first, 2 * (first - 1)))
        bins.append((first, last))
        first = last + 1
    return bins


def binned_losses(position_losses, bins):
    """``[N, len(bins)]``: each window's mean loss over the positions of each bin."""
    position_losses = np.asarray(position_losses, np.float64)
    return np.stack([position_losses[:, first - 1: last].mean(axis=1) for first, last in bins], 1)


def bootstrap_interval(per_window, *, num_resamples=2000, level=0.95, seed=0):
    """``(mean, low, high)``, each ``[...]``: the mean over windows of ``per_window [N, ...]``
    and its percentile bootstrap interval, the windows resampled with replacement.

    Pass a difference of two models' ``per_window`` on the same windows for a paired interval.
    """
    per_window = np.asarray(per_window, np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_window), size=(num_resamples, len(per_window)))
    means = np.stack([per_window[rows].mean(axis=0) for rows in draws])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return per_window.mean(axis=0), low, high


def per_position_loss(model, params, tokens, *, batch_size, seq_len, max_windows=0,
                      num_offsets=1):
    """``[seq_len]`` float64: mean nats/token at positions ``1..seq_len`` of the windows.

    The windows are those of :func:`seqjax.training.language_modeling.evaluate` (``batch_size`` contiguous
    streams cut into ``seq_len`` windows; ``max_windows > 0`` keeps the first ones).
    ``num_offsets > 1`` adds the windows cut the same way from ``tokens[o * seq_len //
    num_offsets:]``, ``o = 1 .. num_offsets - 1``: every position then averages about
    ``num_offsets`` times as many windows of the same text.
    """
    if not 1 <= num_offsets <= seq_len:
        raise ValueError(f"num_offsets must be in [1, seq_len={seq_len}], got {num_offsets}")
    total, count = np.zeros(seq_len), 0
    for offset in (o * seq_len // num_offsets for o in range(num_offsets)):
        shifted = tokens[offset:]
        num_windows = num_stream_windows(len(shifted), batch_size, seq_len)
        if max_windows:
            num_windows = min(num_windows, max_windows)
        for k in range(num_windows):
            inputs, targets, _ = stream_windows(shifted, batch_size=batch_size, seq_len=seq_len,
                                                step=k)
            total += np.asarray(_window_position_losses(model, params, inputs, targets), np.float64)
        count += num_windows * batch_size
    if not count:
        raise ValueError(f"{len(tokens)} tokens hold no window of {batch_size} x {seq_len + 1}")
    return total / count
