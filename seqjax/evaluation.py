"""A trained language model's loss at each position of its context window.

.. math::

    \\ell(t) = \\frac{1}{N} \\sum_{n=1}^{N} -\\log p(y^{(n)}_{t+1} \\mid y^{(n)}_1 \\ldots y^{(n)}_t),
    \\qquad t = 1 \\ldots T,

over the ``N`` validation windows that :func:`seqjax.training.language_modeling.evaluate` reads, each started
afresh: a recurrent model from the zero state, a Transformer with nothing before the window.
So ``ell(t)`` shows how much a model gains from ``t`` tokens of context (the per-token
loss of Kaplan et al. 2020), and ``mean_t ell(t)`` is the validation loss with
the state reset at every window.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.data import num_stream_windows, stream_windows
from seqjax.losses import token_cross_entropy


@partial(jax.jit, static_argnums=0)
def _window_position_losses(model, params, inputs, targets):
    """``[T]`` summed over the batch: the loss at each position of ``inputs [B, T]``."""
    logits, _ = model.apply({"params": params}, inputs, model.initial_carry(inputs.shape[0]))
    return jnp.sum(token_cross_entropy(logits, targets), axis=0)


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
