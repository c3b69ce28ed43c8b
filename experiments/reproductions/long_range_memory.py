"""What the adding and copy-memory reproductions share (``adding.py``, ``copy_memory.py``).

Each trains an Elman RNN, an LSTM, a GRU and a Transformer encoder on each length (adding:
``T = 100, 200, 400``; copy memory: delays ``T = 100, 200``) and plots the held-out loss
(adding: MSE; copy: cross-entropy per step) against training steps beside the memoryless
baseline (1/6 and ``10 ln 8 / (T + 20)``). Claim: the plain RNN does not beat the baseline
at long ``T``; LSTM and GRU do. Each model is ``experiments.train`` on
``experiments/configs/tasks/{adding,copy_memory}.py:KIND`` with the budget's overrides.
"""

import importlib

from seqjax.training.metrics_log import read_metrics
from seqjax.training import train_and_evaluate
from seqjax.tasks.memory import copy_memory_baseline_loss

KINDS = ("elman", "lstm", "gru", "transformer")
TITLES = {"elman": "Elman RNN", "lstm": "LSTM", "gru": "GRU", "transformer": "Transformer"}
LENGTH_OPTION = {"adding": "length", "copy_memory": "delay"}
TINY = {"num_steps": 4, "batch_size": 8, "hidden_size": 8, "eval_every": 2, "eval_examples": 16}
CPU = {"num_steps": 400, "batch_size": 32, "hidden_size": 64, "eval_every": 50,
       "eval_examples": 256}
GPU = {"num_steps": 2000, "batch_size": 128, "hidden_size": 128, "eval_every": 100,
       "eval_examples": 1024}


def memory_task_config(task, kind, length, settings):
    """``experiments/configs/tasks/TASK.py:KIND`` at ``length`` with the budget's sizes."""
    config = importlib.import_module(f"experiments.configs.tasks.{task}").get_config(kind)
    config.task_options[LENGTH_OPTION[task]] = length
    for key in ("num_steps", "batch_size", "eval_every", "eval_examples"):
        config[key] = settings[key]
    config.log_every = settings["eval_every"]
    config.checkpoint_every = settings["eval_every"] * 4
    config.model.hidden_size = settings["hidden_size"]
    config.optim.warmup_steps = min(100, settings["num_steps"] // 10)
    config.progress_bar = False
    return config


def baseline(task, length):
    """The memoryless baseline: MSE 1/6 (adding), ``10 ln 8 / (T + 20)`` (copy memory)."""
    return 1.0 / 6.0 if task == "adding" else copy_memory_baseline_loss(length)


def train_memory_runs(task, settings, workdir):
    """``{length: {kind: [(step, val_loss), ...]}}``: one training run per length and model."""
    curves = {}
    for length in settings["lengths"]:
        curves[length] = {}
        for kind in KINDS:
            run_dir = workdir / f"{task}_T{length}" / kind
            train_and_evaluate(memory_task_config(task, kind, length, settings), run_dir)
            curves[length][kind] = [(r["step"], r["val_loss"]) for r in read_metrics(run_dir)
                                    if "val_loss" in r]
    return curves


def plot(results):
    """One panel per length: held-out loss against steps, and the baseline (from the JSON)."""
    import matplotlib.pyplot as plt

    task, by_length = results["task"], results["by_length"]
    figure, axes = plt.subplots(1, len(by_length), figsize=(4.2 * len(by_length), 3.4),
                                squeeze=False)
    for axis, (length, by_kind) in zip(axes[0], by_length.items()):
        for kind in KINDS:
            steps, losses = zip(*by_kind[kind]["curve"])
            axis.plot(steps, losses, label=TITLES[kind])
        axis.axhline(by_kind["baseline"], color="k", ls="--", lw=1, label="memoryless baseline")
        axis.set(title=f"{task.replace('_', ' ')}, T = {length}", xlabel="training step",
                 ylabel="held-out MSE" if task == "adding" else "held-out cross-entropy (nats)",
                 yscale="log")
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    return figure


def reproduce_memory_task(task, workdir, settings):
    """The results of one problem: every length and model trained, with the baselines."""
    curves = train_memory_runs(task, settings, workdir)
    by_length = {str(length): {"baseline": baseline(task, length),
                               **{kind: {"final": points[-1][1], "best": min(p[1] for p in points),
                                         "curve": points} for kind, points in by_kind.items()}}
                 for length, by_kind in curves.items()}
    return {"task": task, "by_length": by_length}
