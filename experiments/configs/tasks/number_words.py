"""Spelled-out numbers to digits, "three hundred and four" -> "304" (seq2seq).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/number_words.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru_additive"):
    return task_config("number_words", preset)
