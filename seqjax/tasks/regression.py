"""Many-to-one regression tasks on real-valued sequences (inputs ``[N, T, 1]``, zero-padded).

Chance is the mean squared error of the best constant prediction, the variance of the target;
:func:`seqjax.tasks.baselines.chance_baseline` measures it on the held-out set.
"""

import numpy as np

from seqjax.tasks.task import Task, TaskBatch, check_lengths, random_lengths, valid_steps


def _value_batch(values, lengths, targets):
    """Values ``[N, T]`` -> a batch with inputs ``[N, T, 1]`` zeroed past ``lengths``."""
    inputs = np.where(valid_steps(lengths, values.shape[1]), values, 0.0)
    return TaskBatch(inputs[..., None].astype(np.float32), lengths,
                     np.asarray(targets, np.float32), np.ones_like(lengths))


def sine_wave(amplitude, frequency, phase, times):
    """``amplitude * sin(frequency * t + phase)`` at ``times`` (parameters broadcast)."""
    return amplitude * np.sin(frequency * times + phase)


def noisy_sine(min_length=4, max_length=16, noise=0.1):
    """Predict the next clean value of a noisy sine wave.

    Each example draws ``A ~ U[0.5, 1.5]``, ``w ~ U[0.3, 1.2]``, ``phi ~ U[0, 2 pi]`` and a
    length ``L``; the inputs are ``x_t = A sin(w t + phi) + noise * e_t`` for
    ``t = 0 .. L-1`` (``e_t`` standard normal), the target ``A sin(w L + phi)``.
    Chance: the target variance, ``E[A^2] / 2 = 13/24 ~ 0.54``.
    """
    check_lengths(min_length, max_length)

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        amplitude, frequency, phase = (
            rng.uniform(low, high, (count, 1))
            for low, high in ((0.5, 1.5), (0.3, 1.2), (0.0, 2 * np.pi))
        )
        times = np.arange(max_length)[None, :]
        values = sine_wave(amplitude, frequency, phase, times)
        values = values + noise * rng.standard_normal((count, max_length))
        targets = sine_wave(amplitude, frequency, phase, lengths[:, None])[:, 0]
        return _value_batch(values, lengths, targets)

    return Task("noisy_sine", "regression", generate, None, num_outputs=1, input_features=1,
                max_input_length=max_length, chance="target variance (~0.54)")


def sequence_sum(min_length=1, max_length=20):
    """Predict the sum of a sequence of values drawn uniformly from ``[-1, 1]``.

    Chance: the target variance, ``E[L] / 3`` (= 11/6 ~ 1.83 with the default lengths 1..10).
    """
    check_lengths(min_length, max_length)

    def generate(rng, count, split="train"):
        lengths = random_lengths(rng, count, min_length, max_length)
        values = rng.uniform(-1.0, 1.0, (count, max_length)) * valid_steps(lengths, max_length)
        return _value_batch(values, lengths, values.sum(axis=1))

    return Task("sequence_sum", "regression", generate, None, num_outputs=1, input_features=1,
                max_input_length=max_length, chance="target variance (~1.83)")
