"""The adding problem: the sum of the two marked values of a ``T``-step sequence (regression).

Model preset after a colon, e.g. ``--config=experiments/configs/tasks/adding.py:lstm``; the
delay as ``--config.task_options.length=200``. The reproduction of the lecture's claim, over
several lengths and models, is ``python -m experiments.reproductions.adding``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="lstm"):
    return task_config("adding", preset)
