"""Sum of a variable-length sequence of values (many-to-one regression).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/sequence_sum.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru"):
    return task_config("sequence_sum", preset)
