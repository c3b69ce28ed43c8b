"""Many-to-many tagging tasks: one label per input symbol, each needing left context.

Tags are int32 ``[N, T]`` aligned with the inputs; tags past a sequence's length are 0 and
are masked out of losses and metrics by ``target_lengths`` (= the input lengths).
"""

import numpy as np

from seqjax.tasks.task import Task, TaskBatch, check_lengths, random_lengths, valid_steps
from seqjax.tasks.vocabulary import PAD, Vocabulary


def seen_before_tags(string):
    """``1`` at each symbol that already occurred earlier in ``string``, else ``0``."""
    return [int(symbol in string[:t]) for t, symbol in enumerate(string)]


def bracket_depth_tags(parentheses):
    """The nesting depth after each symbol: ``"(()"`` -> ``[1, 2, 1]``."""
    depths, depth = [], 0
    for symbol in parentheses:
        depth += 1 if symbol == "(" else -1
        depths.append(depth)
    return depths


def _tag_batch(vocabulary, symbol_indices, lengths, tags):
    valid = valid_steps(lengths, symbol_indices.shape[1])
    inputs = np.where(valid, symbol_indices + vocabulary.num_specials, PAD).astype(np.int32)
    return TaskBatch(inputs, lengths, np.where(valid, tags, 0).astype(np.int32), lengths)


def seen_before(min_length=1, max_length=24, alphabet="abcdefghijklmnop"):
    """Tag each symbol 1 if it occurred earlier in the sequence (uniform symbols of ``alphabet``).

    Chance: the majority tag over valid positions (~0.65 with the defaults: early symbols
    are mostly new, late ones mostly repeats).
    """
    check_lengths(min_length, max_length)
    vocabulary = Vocabulary(alphabet)

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        symbols = rng.integers(0, len(alphabet), (count, max_length))
        same = symbols[:, :, None] == symbols[:, None, :]  # [N, t, s]
        earlier = np.tril(np.ones((max_length, max_length), bool), k=-1)  # s < t
        tags = (same & earlier).any(axis=2)
        return _tag_batch(vocabulary, symbols, lengths, tags)

    return Task("seen_before", "tagging", generate, vocabulary, num_outputs=2,
                max_input_length=max_length, chance="majority tag (~0.65)")


def bracket_depth(min_length=1, max_length=32, max_depth=8):
    """Tag each parenthesis with the nesting depth after it (a counter read out at every step).

    Strings are walks that open at depth 0, close at ``max_depth``, else open or close with
    probability 1/2, so the depth stays in ``0 .. max_depth`` (the classes).
    Chance: the majority depth over valid positions (~0.37 with the defaults).
    """
    check_lengths(min_length, max_length)
    vocabulary = Vocabulary("()")

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        coins = rng.random((count, max_length)) < 0.5
        opens = np.zeros((count, max_length), bool)
        depths = np.zeros((count, max_length), np.int64)
        depth = np.zeros(count, np.int64)
        for t in range(max_length):
            opens[:, t] = (depth == 0) | ((depth < max_depth) & coins[:, t])
            depth = depth + np.where(opens[:, t], 1, -1)
            depths[:, t] = depth
        return _tag_batch(vocabulary, (~opens).astype(np.int64), lengths, depths)

    return Task("bracket_depth", "tagging", generate, vocabulary, num_outputs=max_depth + 1,
                max_input_length=max_length, chance="majority depth (~0.37)")
