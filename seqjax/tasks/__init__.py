"""Generated sequence tasks: everything runs offline, and every example is a function of a seed.

=====================  ==============  ===================================================
task                   kind            predict
=====================  ==============  ===================================================
parity                 classification  whether a bit string holds an odd number of ones
counting               classification  how many ``a`` a string of ``abcd`` holds
balanced_parentheses   classification  whether a string of parentheses is balanced
noisy_sine             regression      the next clean value of a noisy sine wave
sequence_sum           regression      the sum of values drawn from ``U[-1, 1]``
seen_before            tagging         per symbol: did it occur earlier?
bracket_depth          tagging         per parenthesis: the nesting depth after it
reverse                seq2seq         the string reversed
sort                   seq2seq         the digits sorted
number_words           seq2seq         the digits of a spelled-out number
adding                 regression      the sum of the two marked values of a long sequence
copy_memory            tagging         10 symbols, recalled after a delay of ``T`` blanks
temporal_xor           tagging         the next bit of a stream of ``(a, b, a XOR b)``
=====================  ==============  ===================================================

The last three are the long-range memory benchmarks (:mod:`seqjax.tasks.memory`); they are
not in the small-budget task table (``LONG_RANGE_TASKS``).

``get_task(name, **options)`` builds one; each builder's docstring gives its options and
its chance-level baseline (measured by :func:`seqjax.tasks.baselines.chance_baseline`).
"""

import inspect

from seqjax.errors import ConfigError
from seqjax.tasks import classification, memory, regression, tagging, translation
from seqjax.tasks.task import KINDS, Task, TaskBatch

TASKS = {
    "parity": classification.parity,
    "counting": classification.counting,
    "balanced_parentheses": classification.balanced_parentheses,
    "noisy_sine": regression.noisy_sine,
    "sequence_sum": regression.sequence_sum,
    "seen_before": tagging.seen_before,
    "bracket_depth": tagging.bracket_depth,
    "reverse": translation.reverse,
    "sort": translation.sort,
    "number_words": translation.number_words,
    "adding": memory.adding,
    "copy_memory": memory.copy_memory,
    "temporal_xor": memory.temporal_xor,
}
LONG_RANGE_TASKS = ("adding", "copy_memory", "temporal_xor")


def get_task(name, **options):
    """The task ``name`` built with ``options``; :class:`ConfigError` names the valid choices."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    builder = TASKS[name]
    valid = list(inspect.signature(builder).parameters)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(
            f"task {name!r} has no option {', '.join(map(repr, unknown))}: "
            f"its options are {', '.join(valid)}"
        )
    try:
        return builder(**options)
    except ValueError as error:
        raise ConfigError(f"task {name!r}: {error}") from None


__all__ = ["KINDS", "LONG_RANGE_TASKS", "TASKS", "Task", "TaskBatch", "get_task"]
