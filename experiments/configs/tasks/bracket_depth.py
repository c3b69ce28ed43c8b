"""Tag each parenthesis with the nesting depth after it (many-to-many tagging).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/bracket_depth.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru"):
    return task_config("bracket_depth", preset)
