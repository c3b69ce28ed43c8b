"""The classic long-range memory benchmarks of recurrent networks: adding, copying, temporal XOR.

Every sequence has the task's full length (no padding), so a model's memory is tested over
exactly ``T`` steps. Each builder's docstring gives the memoryless baseline that the
reproductions in ``experiments/reproductions/`` draw beside the models.
"""

import math

import numpy as np

from seqjax.tasks.task import Task, TaskBatch
from seqjax.tasks.vocabulary import Vocabulary

COPY_SYMBOLS = 8  # symbols to remember in the copy-memory task
COPY_LENGTH = 10  # how many of them


def _full_lengths(count, length):
    return np.full(count, length, np.int32)


def adding_markers(rng, count, length):
    """Float32 ``[N, T]`` with exactly two ones per row: one uniform in the first half
    ``[0, T/2)``, one uniform in the second half ``[T/2, T)``."""
    half = length // 2
    first = rng.integers(0, half, count)
    second = rng.integers(half, length, count)
    markers = np.zeros((count, length), np.float32)
    markers[np.arange(count), first] = 1.0
    markers[np.arange(count), second] = 1.0
    return markers


def adding(length=100):
    """The adding problem (Hochreiter & Schmidhuber 1997; the formulation of Arjovsky et al. 2016).

    Input ``[T, 2]``: a value ``v_t ~ U[0, 1]`` and a marker ``m_t``, 1 at one step of the
    first half and one of the second half, else 0. Target: ``sum_t m_t v_t``, the sum of
    the two marked values. Predicting 1 whatever the input gives MSE ``Var = 2/12 = 1/6``,
    the memoryless baseline a model must beat.
    """
    if length < 2:
        raise ValueError(f"the adding problem needs length >= 2, got {length}")

    def generate(rng, count, split="train"):
        values = rng.random((count, length)).astype(np.float32)
        markers = adding_markers(rng, count, length)
        inputs = np.stack([values, markers], axis=-1)
        targets = (values * markers).sum(axis=1).astype(np.float32)
        lengths = _full_lengths(count, length)
        return TaskBatch(inputs, lengths, targets, np.ones_like(lengths))

    return Task("adding", "regression", generate, None, num_outputs=1, input_features=2,
                max_input_length=length, chance="predict 1: MSE 1/6 ~ 0.167", full_length=True)


def copy_memory_baseline_loss(delay):
    """Cross-entropy (nats/step) of the memoryless strategy on :func:`copy_memory`:
    certain ``blank`` for the first ``delay + 10`` outputs, uniform over the 8 symbols for
    the last 10, averaged over all ``delay + 20`` steps: ``10 ln 8 / (delay + 20)``."""
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (delay + 2 * COPY_LENGTH)


def copy_memory(delay=100):
    """Copy memory (Hochreiter & Schmidhuber 1997; the formulation of Arjovsky et al. 2016).

    Input, ``T + 20`` steps: 10 symbols drawn from 8, ``T - 1`` blanks, a delimiter, 10
    blanks. Target, one class per step: ``blank`` for the first ``T + 10`` steps, then the
    10 symbols in order. Input ids: 0 padding (unused), 1 blank, 2 delimiter, 3..10 the
    symbols; output classes: 0 blank, 1..8 the symbols. Memoryless baseline cross-entropy:
    :func:`copy_memory_baseline_loss` ``= 10 ln 8 / (T + 20)``.
    """
    if delay < 1:
        raise ValueError(f"copy_memory needs delay >= 1, got {delay}")
    vocabulary = Vocabulary(["_", ":"] + [str(s) for s in range(1, COPY_SYMBOLS + 1)])
    blank, delimiter = vocabulary.encode(["_", ":"])
    length = delay + 2 * COPY_LENGTH

    def generate(rng, count, split="train"):
        symbols = rng.integers(1, COPY_SYMBOLS + 1, (count, COPY_LENGTH))  # output classes
        inputs = np.full((count, length), blank, np.int32)
        inputs[:, :COPY_LENGTH] = symbols + delimiter  # class s -> input id s + 2
        inputs[:, delay + COPY_LENGTH - 1] = delimiter
        targets = np.zeros((count, length), np.int32)
        targets[:, -COPY_LENGTH:] = symbols
        lengths = _full_lengths(count, length)
        return TaskBatch(inputs, lengths, targets, lengths)

    return Task("copy_memory", "tagging", generate, vocabulary, num_outputs=COPY_SYMBOLS + 1,
                max_input_length=length,
                chance=f"memoryless cross-entropy 10 ln 8 / (T + 20) = "
                       f"{copy_memory_baseline_loss(delay):.4f}", full_length=True)


def xor_stream(rng, count, num_bits, phase=None):
    """Float32 ``[N, num_bits]`` streams of triples ``(a, b, a XOR b)`` of random bits.

    Row ``n`` starts at position ``phase`` (0, 1 or 2) of its first triple: random per row
    when ``phase`` is None, else the same for all (0: bits ``2, 5, 8, ...`` are the XORs).
    """
    num_triples = num_bits // 3 + 2
    pairs = rng.integers(0, 2, (count, num_triples, 2))
    triples = np.concatenate([pairs, pairs[..., :1] ^ pairs[..., 1:]], axis=-1)
    streams = triples.reshape(count, -1)
    phase = rng.integers(0, 3, count) if phase is None else np.full(count, phase)
    columns = phase[:, None] + np.arange(num_bits)[None, :]
    return np.take_along_axis(streams, columns, axis=1).astype(np.float32)


def temporal_xor(length=36, aligned=False):
    """Elman's (1990) temporal XOR: predict the next bit of a stream of triples
    ``(a, b, a XOR b)``.

    Input ``[T, 1]``: the bits; target at step ``t``: bit ``t + 1`` (two classes). Only
    every third bit (the XOR of the two before it) is predictable; the others are fair coins.
    Each sequence starts at a random phase of its first triple, or, with ``aligned``, at
    the triple's first bit (as Elman's single stream does); aligned windows reset at a fixed
    phase give a network a phase clock that Elman's unbroken stream did not
    (``experiments/reproductions/elman_xor.py`` runs his protocol).
    The best predictor that knows the phase scores accuracy ``2/3`` and cross-entropy
    ``(2/3) ln 2 ~ 0.462``; the best that ignores the input, ``1/2`` and ``ln 2``.
    """
    if length < 3:
        raise ValueError(f"temporal_xor needs length >= 3, got {length}")

    def generate(rng, count, split="train"):
        bits = xor_stream(rng, count, length + 1, phase=0 if aligned else None)
        lengths = _full_lengths(count, length)
        return TaskBatch(bits[:, :-1, None], lengths, bits[:, 1:].astype(np.int32), lengths)

    return Task("temporal_xor", "tagging", generate, None, num_outputs=2, input_features=1,
                max_input_length=length, chance="majority next bit (~0.5)", full_length=True,
                causal=True)
