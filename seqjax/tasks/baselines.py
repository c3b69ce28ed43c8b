"""Chance-level baselines: the score of the best prediction that ignores the input.

Measured on a batch (the held-out set) with the metric the task is judged by
(:data:`seqjax.tasks.objectives.PRIMARY_METRIC`): the majority class or tag for accuracy,
the target variance (MSE of predicting the mean) for regression, and the share of the most
frequent target sequence for seq2seq exact match.
"""

import numpy as np

from seqjax.tasks.objectives import PRIMARY_METRIC


def majority_share(values):
    """The frequency of the most common value of a 1-D array (rows for a 2-D array)."""
    values = np.asarray(values)
    if values.ndim == 2:
        values = [row.tobytes() for row in values]
    _, counts = np.unique(values, return_counts=True)
    return counts.max() / counts.sum()


def chance_baseline(task, batch):
    """``(metric_name, value)`` of the best input-independent predictor on ``batch``."""
    targets = np.asarray(batch.targets)
    if task.kind == "regression":
        value = float(np.var(targets))
    elif task.kind == "tagging":
        valid = np.arange(targets.shape[1])[None, :] < np.asarray(batch.target_lengths)[:, None]
        value = float(majority_share(targets[valid]))
    else:  # classification: labels [N]; seq2seq: whole target rows [N, T_out]
        value = float(majority_share(targets))
    return PRIMARY_METRIC[task.kind], value
