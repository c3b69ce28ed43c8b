"""Tag each symbol: did it occur earlier? (many-to-many tagging).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/seen_before.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru"):
    return task_config("seen_before", preset)
