"""Copy memory: recall 10 symbols after ``T`` blanks (tagging, ``T + 20`` steps).

Model preset after a colon, e.g. ``--config=experiments/configs/tasks/copy_memory.py:gru``;
the delay as ``--config.task_options.delay=200``. The reproduction over several delays and
models is ``python -m experiments.reproductions.copy_memory``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="lstm"):
    return task_config("copy_memory", preset)
