"""Count the 'a' in a string of abcd (many-to-one classification).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/counting.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru"):
    return task_config("counting", preset)
