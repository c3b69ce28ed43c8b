"""Training and evaluation windows over a token array, as pure functions of ``(seed, step)``.

Batches are computed on the host with NumPy from the whole token array and the step number
alone, so a training run resumed at step ``s`` sees exactly the batches it would have seen.
Every window holds ``seq_len + 1`` consecutive tokens: ``inputs = window[:-1]``,
``targets = window[1:]`` (next-token prediction).
"""

import numpy as np


def _check_tokens(tokens):
    """``tokens`` as a 1-D array; anything else is a ``ValueError``."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be a 1-D array of token ids, got shape {tokens.shape}")
    return tokens


def _check_shape(batch_size, seq_len):
    if batch_size < 1 or seq_len < 1:
        raise ValueError(f"batch_size and seq_len must be positive, got {batch_size} and {seq_len}")


def _split_window(windows):
    """``(inputs, targets)`` int32 ``[B, T]`` from windows ``[B, T + 1]``."""
    windows = windows.astype(np.int32, copy=False)
    return windows[:, :-1], windows[:, 1:]


def random_windows(tokens, *, batch_size, seq_len, seed, step, rows=slice(None)):
    """``(inputs, targets)`` int32 ``[B, T]`` from ``B`` windows at uniformly random starts.

    Starts are drawn from ``np.random.default_rng([seed, step])`` uniformly over all
    ``len(tokens) - seq_len`` valid starts, so the batch is a pure function of ``(seed, step)``.
    ``rows`` (a slice) keeps only those rows of the batch, e.g. one process's share.
    """
    tokens = _check_tokens(tokens)
    _check_shape(batch_size, seq_len)
    num_starts = tokens.shape[0] - seq_len
    if num_starts < 1:
        raise ValueError(
            f"corpus of {tokens.shape[0]} tokens is too small for one window of seq_len="
            f"{seq_len} (needs seq_len + 1 = {seq_len + 1} tokens): use a smaller seq_len")
    starts = np.random.default_rng([seed, step]).integers(0, num_starts, size=batch_size)[rows]
    return _split_window(tokens[starts[:, None] + np.arange(seq_len + 1)])


def num_stream_windows(num_tokens, batch_size, seq_len):
    """Windows per stream when ``num_tokens`` are cut into ``batch_size`` contiguous streams.

    Each stream holds ``L = num_tokens // batch_size`` tokens and gives ``(L - 1) // seq_len``
    windows (a window's targets reach one token past its inputs). Raises ``ValueError`` when
    that is zero.
    """
    _check_shape(batch_size, seq_len)
    stream_len = num_tokens // batch_size
    num_windows = max(stream_len - 1, 0) // seq_len
    if num_windows < 1:
        raise ValueError(
            f"corpus of {num_tokens} tokens is too small for stream batches of batch_size="
            f"{batch_size} x seq_len={seq_len} (needs batch_size * (seq_len + 1) = "
            f"{batch_size * (seq_len + 1)} tokens): use a smaller seq_len or batch_size")
    return num_windows


def stream_windows(tokens, *, batch_size, seq_len, step, rows=slice(None)):
    """``(inputs, targets, reset)``: window ``k = step % num_windows`` of ``B`` contiguous streams.

    For stateful truncated BPTT (as char-rnn): the tokens are cut into ``batch_size`` equal
    contiguous streams (the remainder at the end is dropped); row ``b`` of step ``s + 1``
    continues row ``b`` of step ``s``, so a carried hidden state stays meaningful. ``reset``
    is True at ``k == 0``, where the streams restart and the carry must be zeroed. ``rows``
    (a slice) keeps only those streams, e.g. one process's share.
    """
    k = step % num_stream_windows(_check_tokens(tokens).shape[0], batch_size, seq_len)
    inputs, targets = stream_window_block(tokens, batch_size=batch_size, seq_len=seq_len,
                                          start=k, count=1, rows=rows)
    return inputs[:, 0], targets[:, 0], k == 0


def stream_window_block(tokens, *, batch_size, seq_len, start, count, pad_to=None,
                        rows=slice(None)):
    """``(inputs, targets)`` int32 ``[b, pad_to, T]``: windows ``start .. start + count - 1`` of
    :func:`stream_windows`, window ``k`` of stream ``b`` at ``[b, k - start]``.

    Only ``rows`` of the ``batch_size`` streams are read (one process's share); ``pad_to``
    windows (default ``count``) are returned, the ones past ``count`` holding inputs 0 and
    targets -1, which weigh nothing in a masked loss.
    """
    tokens = _check_tokens(tokens)
    num_windows = num_stream_windows(tokens.shape[0], batch_size, seq_len)
    pad_to = count if pad_to is None else pad_to
    if not (0 <= start and 1 <= count <= pad_to and start + count <= num_windows):
        raise ValueError(f"windows {start}..{start + count - 1} (padded to {pad_to}) are not "
                         f"within the {num_windows} windows of these streams")
    stream_len = tokens.shape[0] // batch_size
    streams = tokens[: batch_size * stream_len].reshape(batch_size, stream_len)[rows]
    block = np.asarray(streams[:, start * seq_len : (start + count) * seq_len + 1], np.int32)
    inputs = np.zeros((len(block), pad_to, seq_len), np.int32)
    targets = np.full((len(block), pad_to, seq_len), -1, np.int32)
    inputs[:, :count] = block[:, :-1].reshape(len(block), count, seq_len)
    targets[:, :count] = block[:, 1:].reshape(len(block), count, seq_len)
    return inputs, targets


def eval_windows(tokens, *, batch_size, seq_len, max_batches=None, drop_remainder=False):
    """List of ``(inputs, targets)`` int32 ``[B, T]`` covering ``tokens`` in order, deterministic.

    Window ``i`` is ``tokens[i T : i T + T + 1]``, so windows do not overlap in their targets
    and every token after the first is a target exactly once, except the last
    ``(len(tokens) - 1) % T`` tokens, which do not fill a window. Windows are grouped into
    batches of ``batch_size`` in order; the last batch is smaller unless ``drop_remainder``
    (average losses weighted by ``inputs.size``). ``max_batches`` keeps only the first ones.
    """
    tokens = _check_tokens(tokens)
    _check_shape(batch_size, seq_len)
    num_windows = max(tokens.shape[0] - 1, 0) // seq_len
    if num_windows < 1 or (drop_remainder and num_windows < batch_size):
        needed = seq_len + 1 if not drop_remainder else batch_size * seq_len + 1
        raise ValueError(
            f"validation set of {tokens.shape[0]} tokens is too small for one evaluation batch "
            f"of batch_size={batch_size} x seq_len={seq_len} (needs {needed} tokens): use a "
            f"smaller seq_len or batch_size, or a larger validation fraction")
    starts = np.arange(num_windows) * seq_len
    batch_starts = [starts[i : i + batch_size] for i in range(0, num_windows, batch_size)]
    if drop_remainder and len(batch_starts[-1]) < batch_size:
        batch_starts.pop()
    if max_batches is not None:
        batch_starts = batch_starts[:max_batches]
    return [_split_window(tokens[s[:, None] + np.arange(seq_len + 1)]) for s in batch_starts]
