"""Reverse a string (sequence-to-sequence).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/reverse.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru_additive"):
    return task_config("reverse", preset)
