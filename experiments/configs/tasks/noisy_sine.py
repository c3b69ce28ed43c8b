"""Next clean value of a noisy sine wave (many-to-one regression).

Model preset after a colon (see experiments/configs/tasks/__init__.py), e.g.
``--config=experiments/configs/tasks/noisy_sine.py:transformer``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="gru"):
    config = task_config("noisy_sine", preset)
    config.model.pooling = "last"  # the next value depends on where the wave ends, not its mean
    return config
