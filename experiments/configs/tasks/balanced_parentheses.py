"""Is a string of parentheses balanced? (many-to-one classification).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/balanced_parentheses.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru"):
    return task_config("balanced_parentheses", preset)
