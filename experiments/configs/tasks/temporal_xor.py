"""Elman's temporal XOR: predict the next bit of a stream of ``(a, b, a XOR b)`` (tagging).

Model preset after a colon, e.g. ``--config=experiments/configs/tasks/temporal_xor.py:elman``.
Elman's own network (2 hidden units) and his per-position error figure are
``python -m experiments.reproductions.elman_xor``.
"""

from experiments.configs.tasks import task_config


def get_config(preset="elman"):
    return task_config("temporal_xor", preset)
