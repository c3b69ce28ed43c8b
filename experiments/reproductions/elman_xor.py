"""Elman (1990), temporal XOR: a 1-input, 2-hidden, 1-output recurrent network.

    python -m experiments.reproductions.elman_xor --workdir=runs/elman_xor [--budget=cpu|tiny]

The input is a stream of bit pairs each followed by their XOR; the network predicts the
next bit. Elman's Fig. 3: the root-mean-squared error over 12 consecutive predictions,
averaged over 1,200 windows, is low only at every third bit (the predictable XOR). We train
Elman's size (2 hidden tanh units; the 2-class softmax head is a sigmoid output with one
redundant row) and, beside it, 4 hidden units, with back-propagation through time on
36-bit windows that start at a triple (as Elman's one stream does) from several seeds, then
measure his figure on 1,200 held-out 24-bit streams (12 bits of burn-in, 12 scored). Elman
trained one network with one-step back-propagation; BPTT, Adam and the seeds are ours.
"""

import importlib
import sys

import jax
import numpy as np

from experiments.reproductions.command import main
from seqjax.training import train_and_evaluate
from seqjax.training.sequence_tasks import load_task_run
from seqjax.tasks.memory import xor_stream

WINDOW, TRIALS = 12, 1200
BUDGETS = {
    "tiny": {"hidden_sizes": [2], "seeds": [0], "num_steps": 4, "batch_size": 8,
             "learning_rate": 1e-2},
    "cpu": {"hidden_sizes": [2, 4], "seeds": [0, 1, 2, 3, 4], "num_steps": 3000, "batch_size": 32,
            "learning_rate": 1e-2},
    "gpu": {"hidden_sizes": [2, 4], "seeds": list(range(10)), "num_steps": 6000,
            "batch_size": 32, "learning_rate": 1e-2},
}
CLAIM = ("The error of next-bit prediction is low only at every third bit, the XOR of the two "
         "before it (Elman 1990, Fig. 3).")


def elman_xor_config(seed, hidden_size, settings):
    """``experiments/configs/tasks/temporal_xor.py:elman`` with one input unit."""
    config = importlib.import_module("experiments.configs.tasks.temporal_xor").get_config("elman")
    config.seed = seed
    config.task_options.aligned = True
    config.model.hidden_size = hidden_size
    config.model.embed_size = 1  # one input unit: the bit, through a 1 x 1 affine map
    config.num_steps, config.batch_size = settings["num_steps"], settings["batch_size"]
    config.eval_every = config.checkpoint_every = max(1, settings["num_steps"] // 5)
    config.log_every = config.eval_every
    config.optim.learning_rate = settings["learning_rate"]
    config.optim.end_learning_rate = settings["learning_rate"] / 10
    config.progress_bar = False
    return config


def windowed_rms_error(model, params, seed=1990):
    """``[12]`` RMS error of ``p(next bit = 1)`` at each position of a 12-bit window.

    Streams start at a triple (phase 0) so positions 3, 6, 9, 12 of the scored window are
    the XOR bits; each stream runs 12 bits of burn-in from the zero state first.
    """
    bits = xor_stream(np.random.default_rng(seed), TRIALS, 2 * WINDOW + 1, phase=0)
    lengths = np.full(TRIALS, 2 * WINDOW, np.int32)
    logits = model.apply({"params": params}, bits[:, :-1, None], lengths)
    predicted = np.asarray(jax.nn.softmax(logits, axis=-1)[..., 1])
    errors = (predicted - bits[:, 1:])[:, WINDOW - 1: 2 * WINDOW - 1]  # predicting bits 12..23
    return np.sqrt(np.mean(errors ** 2, axis=0))


def plot(results):
    """Per hidden size: each seed's per-position RMS error (grey), their mean, XOR bits dotted."""
    import matplotlib.pyplot as plt

    by_size = results["by_hidden_size"]
    figure, axes = plt.subplots(1, len(by_size), figsize=(5.2 * len(by_size), 3.4), squeeze=False)
    positions = np.arange(1, WINDOW + 1)
    for axis, (hidden_size, result) in zip(axes[0], by_size.items()):
        for errors in result["rms_error_by_seed"].values():
            axis.plot(positions, errors, color="0.75", lw=1)
        axis.plot(positions, result["rms_error_by_position"], "o-", color="C0",
                  label=f"mean of {len(result['rms_error_by_seed'])} seeds (grey: each)")
        for xor_position in range(3, WINDOW + 1, 3):
            axis.axvline(xor_position, color="C1", lw=0.8, ls=":")
        axis.set(xticks=positions, xlabel="bit in the window (dotted: the XOR bits)",
                 ylabel="RMS error of the prediction", ylim=(0, 0.7),
                 title=f"Temporal XOR, {hidden_size} hidden units")
        axis.legend(fontsize=8, loc="lower left")
    figure.tight_layout()
    return figure


def errors_of_one_size(workdir, hidden_size, settings):
    """The per-position RMS errors of every seed's network of ``hidden_size`` units."""
    errors_by_seed = {}
    for seed in settings["seeds"]:
        run_dir = workdir / f"hidden_{hidden_size}" / f"seed_{seed}"
        train_and_evaluate(elman_xor_config(seed, hidden_size, settings), run_dir)
        _, _, model, params = load_task_run(run_dir)
        errors_by_seed[seed] = windowed_rms_error(model, params)
    mean = np.mean(list(errors_by_seed.values()), axis=0)
    xor_bits = np.arange(WINDOW) % 3 == 2
    return {
        "rms_error_by_position": mean.tolist(),
        "rms_error_by_seed": {str(s): e.tolist() for s, e in errors_by_seed.items()},
        "mean_at_xor_bits": float(mean[xor_bits].mean()),
        "mean_at_other_bits": float(mean[~xor_bits].mean()),
        "seeds_below_0.25_at_xor_bits": sum(
            bool(e[xor_bits].mean() < 0.25) for e in errors_by_seed.values()),
    }


def run(workdir, settings):
    """Per hidden size, every seed's network trained and scored as Elman's Fig. 3."""
    return {"by_hidden_size": {str(size): errors_of_one_size(workdir, size, settings)
                               for size in settings["hidden_sizes"]}}


if __name__ == "__main__":
    main(sys.modules[__name__])
