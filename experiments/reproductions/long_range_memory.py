"""What the adding and copy-memory reproductions share (``adding.py``, ``copy_memory.py``).

Each trains five models on each length (adding: ``T = 100, 200, 400``; copy memory: delays
``T = 100, 200``) and plots the held-out loss (adding: MSE; copy: cross-entropy per step)
against training steps beside the memoryless baseline (1/6 and ``10 ln 8 / (T + 20)``): an
Elman RNN, an LSTM and a GRU, which read the sequence left to right; a causal decoder-only
Transformer (rotary positions), which reads it the same way and answers where they answer
(adding: at the last step; copy: at every step, from the past only); and, as a labelled
extra, the bidirectional Transformer encoder with learned positions, which sees the whole
sequence at once (adding: mean-pooled; copy: every output attends to every input).

Parameter counts: the recurrent models keep the budget's ``hidden_size`` (the runs that
:mod:`experiments.reproductions.vanishing_gradients` shares), and each Transformer's width is
chosen so that its parameter count is the LSTM's (:func:`matched_width`; within 10% at the
``cpu`` and ``gpu`` budgets). Claim: the plain RNN does not beat the baseline at long ``T``;
LSTM and GRU do. Each model is ``experiments.train`` on
``experiments/configs/tasks/{adding,copy_memory}.py:KIND`` with the budget's overrides.
"""

import copy
import importlib
import math

import jax

from seqjax.tasks.memory import copy_memory_baseline_loss
from seqjax.training import train_and_evaluate
from seqjax.training.metrics_log import read_metrics
from seqjax.training.sequence_tasks import SequenceTask

RECURRENT_KINDS = ("elman", "lstm", "gru")
TRANSFORMER_KINDS = ("causal_transformer", "transformer")
KINDS = RECURRENT_KINDS + TRANSFORMER_KINDS
MATCHED_TO = "lstm"  # the Transformers' widths give them this model's parameter count
TITLES = {"elman": "Elman RNN", "lstm": "LSTM", "gru": "GRU",
          "causal_transformer": "Transformer, causal (decoder-only)",
          "transformer": "Transformer encoder, bidirectional"}
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


def parameter_count(config):
    """The number of trainable parameters of a task config's model (shapes only, no compile)."""
    shapes = jax.eval_shape(SequenceTask(config).init_params, jax.random.PRNGKey(0))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))


def matched_width(config, target):
    """The Transformer width, a multiple of ``num_heads`` (of ``2 * num_heads`` with rotary
    positions, which rotate pairs: a head's size must be even), whose parameter count is
    nearest ``target``.

    At ``W = k * step`` the count is a quadratic ``a k^2 + b k + c`` (the blocks' matrices grow
    as ``W^2``; biases, norms, the input map, learned positions and the head as ``W``): read
    it off ``k = 1, 2, 3``, solve for ``target``, and keep the nearer neighbouring ``k``.
    """
    step = config.model.num_heads * (2 if config.model.positional == "rotary" else 1)

    def count(width):
        sized = copy.deepcopy(config)
        sized.model.hidden_size = width
        return parameter_count(sized)

    c1, c2, c3 = count(step), count(2 * step), count(3 * step)
    a = (c3 - 2 * c2 + c1) / 2
    b = c2 - c1 - 3 * a
    c = c1 - a - b
    root = (-b + math.sqrt(b * b - 4 * a * (c - target))) / (2 * a)
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    best = min(candidates, key=lambda k: abs(a * k * k + b * k + c - target))
    return best * step


def run_config(task, kind, length, settings):
    """:func:`memory_task_config`; a Transformer's width matched to :data:`MATCHED_TO`'s count."""
    config = memory_task_config(task, kind, length, settings)
    if kind in TRANSFORMER_KINDS:
        target = parameter_count(memory_task_config(task, MATCHED_TO, length, settings))
        config.model.hidden_size = matched_width(config, target)
    return config


def baseline(task, length):
    """The memoryless baseline: MSE 1/6 (adding), ``10 ln 8 / (T + 20)`` (copy memory)."""
    return 1.0 / 6.0 if task == "adding" else copy_memory_baseline_loss(length)


def train_memory_run(config, run_dir):
    """Train (or resume, or reuse) one run: ``{"curve": [(step, val_loss)], "parameters",
    "width"}``."""
    train_and_evaluate(config, run_dir)
    curve = [(r["step"], r["val_loss"]) for r in read_metrics(run_dir) if "val_loss" in r]
    return {"curve": curve, "parameters": parameter_count(config),
            "width": config.model.hidden_size}


def train_memory_runs(task, settings, workdir):
    """``{length: {kind: run}}`` (:func:`train_memory_run`): one run per length and model."""
    return {length: {kind: train_memory_run(run_config(task, kind, length, settings),
                                            workdir / f"{task}_T{length}" / kind)
                     for kind in KINDS}
            for length in settings["lengths"]}


def model_label(kind, run):
    """The legend entry of a model: its title and, where the report has it, its size."""
    if "parameters" not in run:  # a report from before the counts were recorded
        return TITLES[kind]
    width = f"{'H' if kind in RECURRENT_KINDS else 'W'} = {run['width']}"
    return f"{TITLES[kind]}, {width}: {run['parameters'] / 1000:.1f} K params"


def plot_lengths(axes, results):
    """One panel per length in ``axes``: held-out loss against steps, and the baseline."""
    task = results["task"]
    for axis, (length, by_kind) in zip(axes, results["by_length"].items()):
        for kind, run in by_kind.items():
            if kind == "baseline":
                continue
            steps, losses = zip(*run["curve"])
            style = ":" if kind == "transformer" else "-"  # the encoder sees the whole sequence
            axis.plot(steps, losses, style, label=model_label(kind, run))
        axis.axhline(by_kind["baseline"], color="k", ls="--", lw=1, label="memoryless baseline")
        axis.set(title=f"{task.replace('_', ' ')}, T = {length}", xlabel="training step",
                 ylabel="held-out MSE" if task == "adding" else "held-out cross-entropy (nats)",
                 yscale="log")
        axis.legend(fontsize=6)


def length_figure(results, extra_panels=0):
    """``(figure, extra_axes)``: :func:`plot_lengths`'s panels, then ``extra_panels`` empty ones."""
    import matplotlib.pyplot as plt

    num_lengths = len(results["by_length"])
    num_panels = num_lengths + extra_panels
    figure, axes = plt.subplots(1, num_panels, figsize=(4.6 * num_panels, 3.8), squeeze=False)
    plot_lengths(axes[0][:num_lengths], results)
    return figure, axes[0][num_lengths:]


def plot(results):
    """The figure of :func:`plot_lengths`, drawn from the JSON alone."""
    figure, _ = length_figure(results)
    figure.tight_layout()
    return figure


def reproduce_memory_task(task, workdir, settings):
    """The results of one problem: every length and model trained, with the baselines and
    each model's parameter count and width."""
    by_length = {}
    for length, by_kind in train_memory_runs(task, settings, workdir).items():
        by_length[str(length)] = {"baseline": baseline(task, length)}
        for kind, run in by_kind.items():
            losses = [loss for _, loss in run["curve"]]
            by_length[str(length)][kind] = {"final": losses[-1], "best": min(losses), **run}
    return {"task": task, "matched_to": MATCHED_TO, "titles": TITLES, "by_length": by_length}
