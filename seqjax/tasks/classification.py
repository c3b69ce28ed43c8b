"""Many-to-one classification tasks on variable-length symbol strings.

Each builder returns a :class:`~seqjax.tasks.task.Task`; the ``*_label`` functions are the
rules that define the labels, one example at a time (the generators compute the same labels
in bulk, and the tests check the two agree).
"""

import numpy as np

from seqjax.tasks.task import Task, TaskBatch, check_lengths, random_lengths, valid_steps
from seqjax.tasks.vocabulary import PAD, Vocabulary


def parity_label(bits):
    """1 if the string of ``"0"``/``"1"`` holds an odd number of ones, else 0."""
    return bits.count("1") % 2


def count_label(string, counted="a"):
    """How many times ``counted`` occurs in ``string``."""
    return string.count(counted)


def is_balanced(parentheses):
    """Whether every ``")"`` closes an earlier ``"("`` and every ``"("`` is closed."""
    depth = 0
    for symbol in parentheses:
        depth += 1 if symbol == "(" else -1
        if depth < 0:
            return False
    return depth == 0


def _symbol_batch(vocabulary, symbol_indices, lengths, labels):
    """Symbol indices ``[N, T]`` (0-based) -> a batch of ids, padded past ``lengths``."""
    valid = valid_steps(lengths, symbol_indices.shape[1])
    inputs = np.where(valid, symbol_indices + vocabulary.num_specials, PAD).astype(np.int32)
    return TaskBatch(inputs, lengths, np.asarray(labels, np.int32), np.ones_like(lengths))


def parity(min_length=1, max_length=20):
    """Is the number of ones odd? Bit strings of uniform length in ``[min_length, max_length]``.

    Chance: 0.5 (the label is a fair coin whatever the length).
    """
    check_lengths(min_length, max_length)
    vocabulary = Vocabulary("01")

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        bits = rng.integers(0, 2, (count, max_length)) * valid_steps(lengths, max_length)
        return _symbol_batch(vocabulary, bits, lengths, bits.sum(axis=1) % 2)

    return Task("parity", "classification", generate, vocabulary, num_outputs=2,
                max_input_length=max_length, chance="0.5 (majority class)")


def counting(min_length=1, max_length=20, alphabet="abcd", counted="a"):
    """How many ``counted`` symbols? Uniform symbols of ``alphabet``, one class per count.

    Classes ``0 .. max_length``. Chance: the most frequent count (about 0.3 with the defaults:
    with 4 symbols and lengths 1..10, one or two ``a`` are the commonest answers).
    """
    check_lengths(min_length, max_length)
    if counted not in alphabet:
        raise ValueError(f"counted symbol {counted!r} must be in the alphabet {alphabet!r}")
    vocabulary = Vocabulary(alphabet)

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        symbols = rng.integers(0, len(alphabet), (count, max_length))
        is_counted = (symbols == alphabet.index(counted)) & valid_steps(lengths, max_length)
        return _symbol_batch(vocabulary, symbols, lengths, is_counted.sum(axis=1))

    return Task("counting", "classification", generate, vocabulary, num_outputs=max_length + 1,
                max_input_length=max_length, chance="the most frequent count (~0.3)")


def random_balanced(rng, length):
    """A random balanced string of even ``length``: a walk that opens at depth 0 and closes
    when the remaining steps equal the depth, else opens or closes with probability 1/2."""
    depth, symbols = 0, []
    for remaining in range(length, 0, -1):
        opens = depth == 0 or (depth < remaining and rng.random() < 0.5)
        depth += 1 if opens else -1
        symbols.append("(" if opens else ")")
    return "".join(symbols)


def random_unbalanced(rng, balanced):
    """An unbalanced string of the same length: one symbol flipped (counts differ), or, as
    often, the same symbols shuffled until out of order (counts equal: order must be read)."""
    if rng.random() < 0.5:
        position = rng.integers(len(balanced))
        flipped = ")" if balanced[position] == "(" else "("
        return balanced[:position] + flipped + balanced[position + 1:]
    while True:  # a shuffle is balanced with probability 1 / (length / 2 + 1) <= 1/2
        shuffled = "".join(rng.permutation(list(balanced)))
        if not is_balanced(shuffled):
            return shuffled


def balanced_parentheses(min_length=2, max_length=24):
    """Is the string of parentheses balanced? Even lengths in ``[min_length, max_length]``,
    half balanced, half not (:func:`random_unbalanced`: half of those have equal counts).

    Chance: 0.5 (balanced and unbalanced strings are drawn equally often).
    """
    check_lengths(min_length, max_length, smallest=2)
    vocabulary = Vocabulary("()")
    half_lengths = ((min_length + 1) // 2, max_length // 2)

    def generate(rng, count, split="train"):
        lengths = 2 * random_lengths(rng, count, *half_lengths)
        labels = rng.integers(0, 2, count)
        strings = []
        for length, label in zip(lengths, labels):
            balanced = random_balanced(rng, length)
            strings.append(balanced if label else random_unbalanced(rng, balanced))
        symbols = np.zeros((count, max_length), np.int64)
        for row, string in enumerate(strings):
            symbols[row, : len(string)] = ["()".index(s) for s in string]
        return _symbol_batch(vocabulary, symbols, lengths, labels)

    return Task("balanced_parentheses", "classification", generate, vocabulary, num_outputs=2,
                max_input_length=max_length, chance="0.5 (majority class)")
