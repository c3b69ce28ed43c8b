"""Sequence-to-sequence ("translation-like") tasks with variable input and output lengths.

Targets are output-vocabulary ids followed by ``EOS`` and padding, ``[N, max_output + 1]``;
a decoder reads ``BOS`` first (see :mod:`seqjax.tasks.vocabulary`). Chance for the
exact-match sequence accuracy is the share of the most frequent target, about 0 here.
"""

import numpy as np

from seqjax.tasks.task import Task, TaskBatch, check_lengths, pad_id_sequences, random_lengths
from seqjax.tasks.vocabulary import EOS, OUTPUT_SPECIALS, Vocabulary

ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS = tuple(ONES + TENS[2:] + ["hundred", "thousand", "and"])
MAX_SPELLED = 999_999


def spell_number(n):
    """British English words for ``0 <= n <= 999999``: 304 -> ``"three hundred and four"``."""
    if not 0 <= n <= MAX_SPELLED:
        raise ValueError(f"spell_number covers 0..{MAX_SPELLED}, got {n}")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + (f"-{ONES[n % 10]}" if n % 10 else "")
    if n < 1000:
        rest = n % 100
        return f"{ONES[n // 100]} hundred" + (f" and {spell_number(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    joint = "" if rest == 0 else (" and " if rest < 100 else " ")
    return f"{spell_number(thousands)} thousand" + (joint + spell_number(rest) if rest else "")


def number_tokens(n):
    """The input symbols of ``n``: its spelling split at spaces and hyphens."""
    return spell_number(n).replace("-", " ").split()


def is_held_out(numbers, fraction):
    """Whether each number belongs to the held-out split: numbers from 100 up whose Knuth
    multiplicative hash, as a fraction of ``2^32``, falls below ``fraction``. Numbers below 100
    always train, so every word is seen in training; held-out numbers are new compositions."""
    numbers = np.asarray(numbers, np.uint64)
    hashed = (numbers * np.uint64(2654435761)) % np.uint64(2**32)
    return (numbers >= 100) & (hashed / 2.0**32 < fraction)


def _translation_batch(input_vocabulary, output_vocabulary, sources, targets, max_input,
                       max_output):
    inputs, input_lengths = pad_id_sequences([input_vocabulary.encode(s) for s in sources], max_input)
    target_ids, target_lengths = pad_id_sequences(
        [output_vocabulary.encode(t) + [EOS] for t in targets], max_output + 1
    )
    return TaskBatch(inputs, input_lengths, target_ids, target_lengths)


def _string_task(name, transform, min_length, max_length, alphabet, description):
    check_lengths(min_length, max_length)
    input_vocabulary = Vocabulary(alphabet)
    output_vocabulary = Vocabulary(alphabet, OUTPUT_SPECIALS)

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        symbols = rng.integers(0, len(alphabet), (count, max_length))
        sources = ["".join(alphabet[i] for i in row[:n]) for row, n in zip(symbols, lengths)]
        return _translation_batch(input_vocabulary, output_vocabulary, sources,
                                  [transform(s) for s in sources], max_length, max_length)

    return Task(name, "seq2seq", generate, input_vocabulary, num_outputs=len(output_vocabulary),
                max_input_length=max_length, chance=description,
                output_vocabulary=output_vocabulary, max_target_length=max_length + 1)


def reverse_string(string):
    return string[::-1]


def sort_string(string):
    return "".join(sorted(string))


def reverse(min_length=1, max_length=16, alphabet="abcdefgh"):
    """Reverse a string of uniform symbols: ``"abc"`` -> ``"cba"``. Chance: ~0 exact match."""
    return _string_task("reverse", reverse_string, min_length, max_length, alphabet,
                        "most frequent target (~0)")


def sort(min_length=1, max_length=16, alphabet="0123456789"):
    """Sort a string of digits: ``"3141"`` -> ``"1134"``. Chance: ~0 exact match."""
    return _string_task("sort", sort_string, min_length, max_length, alphabet,
                        "most frequent target (~0)")


def _sample_numbers(rng, count, max_value, held_out_fraction, split):
    """``count`` numbers from one side of the fixed split: a digit count uniform in
    ``1 .. len(str(max_value))``, then a number uniform among those with that many digits
    (rejection sampling keeps the side of the split)."""
    max_digits = len(str(max_value))
    numbers = np.zeros(0, np.int64)
    while len(numbers) < count:
        digits = rng.integers(1, max_digits + 1, 2 * count + 16)
        low = np.where(digits == 1, 0, 10 ** (digits - 1))
        high = np.minimum(10**digits - 1, max_value)
        candidates = low + (rng.random(len(digits)) * (high - low + 1)).astype(np.int64)
        keep = is_held_out(candidates, held_out_fraction) == (split == "held_out")
        numbers = np.concatenate([numbers, candidates[keep]])
    return numbers[:count]


def number_words(max_value=999_999, held_out_fraction=0.1):
    """Spelled-out numbers to digits: ``"three hundred and four"`` -> ``"304"``.

    Numbers in ``0..max_value`` have a uniform number of digits (see :func:`_sample_numbers`).
    A fixed ``held_out_fraction`` of the numbers from 100 up (:func:`is_held_out`) is used only
    for evaluation, so the score measures generalisation to numbers never seen in training.
    Chance: ~0 exact match.
    """
    if not 999 <= max_value <= MAX_SPELLED:
        raise ValueError(f"max_value must be in 999..{MAX_SPELLED}, got {max_value}")
    if not 0 < held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction}")
    input_vocabulary = Vocabulary(NUMBER_WORDS)
    output_vocabulary = Vocabulary("0123456789", OUTPUT_SPECIALS)
    words_below_1000 = max(len(number_tokens(n)) for n in range(1000))
    max_input = words_below_1000 if max_value < 1000 else 2 * words_below_1000 + 2
    max_output = len(str(max_value))

    def generate(rng, count, split="train"):
        numbers = _sample_numbers(rng, count, max_value, held_out_fraction, split)
        return _translation_batch(input_vocabulary, output_vocabulary,
                                  [number_tokens(n) for n in numbers],
                                  [str(n) for n in numbers], max_input, max_output)

    return Task("number_words", "seq2seq", generate, input_vocabulary,
                num_outputs=len(output_vocabulary), max_input_length=max_input,
                chance="most frequent target (~0)", output_vocabulary=output_vocabulary,
                max_target_length=max_output + 1)
