"""Vanishing gradients: ``||dh_T / dh_k||`` against ``T - k`` (Pascanu et al. 2013).

    python -m experiments.reproductions.vanishing_gradients --workdir=runs/vanishing [--budget=...]

Left: at initialization, the Elman cell with its recurrent matrix rescaled to largest
singular values 0.5, 1 and 1.5, and the LSTM and GRU as initialized (orthogonal ``W_h``,
forget bias 1). Middle and right: the Elman RNN, LSTM and GRU after training on the adding
problem at ``T = 100`` (the runs of :mod:`experiments.reproductions.adding`'s budget), with
the loss-gradient norm ``||dL_T / dh_k||`` of the trained read-out on the right. Inputs are
adding-problem sequences; every curve is the mean over a batch of them.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments.reproductions import long_range_memory as memory
from experiments.reproductions.command import main
from seqjax import diagnostics
from seqjax.cells import get_cell
from seqjax.training import train_and_evaluate
from seqjax.training.sequence_tasks import load_task_run
from seqjax.tasks.memory import adding

CELLS = ("elman", "lstm", "gru")
TITLES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU"}
COLORS = {"Elman": "C0", "LSTM": "C1", "GRU": "C2"}
SIGMAS = (0.5, 1.0, 1.5)
BUDGETS = {
    "tiny": {**memory.TINY, "length": 8, "num_sequences": 2},
    "cpu": {**memory.CPU, "length": 100, "num_sequences": 16},
    "gpu": {**memory.GPU, "length": 100, "num_sequences": 64},
}
CLAIM = ("With sigma_max(W_h) < 1 the plain RNN's dh_T/dh_k decays exponentially in T - k; "
         "gated cells keep it alive far longer (Pascanu et al. 2013; Hochreiter 1991).")


def adding_inputs(settings, seed=7):
    """``(inputs [B, T, 2], targets [B])`` of the adding problem at the budget's length."""
    batch = adding(settings["length"]).generate(np.random.default_rng(seed), settings["num_sequences"])
    return jnp.asarray(batch.inputs), jnp.asarray(batch.targets)


def norms_at_init(inputs, hidden_size):
    """``{label: [T]}`` mean ``||dh_T/dh_k||`` of freshly initialized cells on ``inputs``."""
    curves, key = {}, jax.random.PRNGKey(0)
    elman = get_cell("elman")
    for sigma in SIGMAS:
        params = diagnostics.with_recurrent_spectral_norm(elman.init(key, 2, hidden_size), sigma)
        curves[f"Elman, sigma_max(W_h) = {sigma:g}"] = diagnostics.jacobian_norms(elman, params, inputs)
    for name in ("lstm", "gru"):
        cell = get_cell(name)
        curves[name.upper()] = diagnostics.jacobian_norms(cell, cell.init(key, 2, hidden_size), inputs)
    return {label: np.asarray(norms).mean(0) for label, norms in curves.items()}


def trained_norms(run_dir, inputs, targets):
    """``(||dh_T/dh_k||, ||dL_T/dh_k||, sigma_max)`` of a trained adding-problem model;
    ``sigma_max`` is the largest over its per-gate ``W_h`` blocks."""
    config, _, _, params = load_task_run(run_dir)
    if config.model.num_layers != 1:
        raise ValueError(f"{run_dir} holds a {config.model.num_layers}-layer model; the "
                         "diagnostics here read a one-layer encoder")
    cell, encoder = get_cell(config.model.kind), params["encoder"]
    projection = encoder["input"]["project"]
    xs = inputs @ projection["kernel"] + projection["bias"]  # the model's embedding of the inputs
    cell_params, head = encoder["layer_0"]["cell"], params["head"]
    loss = lambda h_T: jnp.mean((h_T @ head["kernel"][:, 0] + head["bias"][0] - targets) ** 2)
    return (np.asarray(diagnostics.jacobian_norms(cell, cell_params, xs)).mean(0),
            np.asarray(diagnostics.loss_gradient_norms(cell, cell_params, xs, loss)).mean(0),
            float(diagnostics.largest_gate_singular_value(cell_params["W_h"])))


def plot(results):
    """Three panels, against ``T - k``: at init, trained ``||dh_T/dh_k||``, trained ``||dL/dh_k||``."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    elman_styles = iter(["-", "--", ":"])
    for label, norms in results["at_init"].items():
        style = next(elman_styles) if label.startswith("Elman") else "-"
        axes[0].plot(norms[::-1], style, color=COLORS[label.split(",")[0]], label=label)
    for name, trained in results["trained"].items():
        label = f"{TITLES[name]} (largest gate sigma_max(W_h) = {trained['sigma_max_W_h']:.2f})"
        axes[1].plot(trained["jacobian_norms"][::-1], color=COLORS[TITLES[name]], label=label)
        axes[2].plot(trained["loss_gradient_norms"][::-1], color=COLORS[TITLES[name]],
                     label=TITLES[name])
    titles = ("at initialization", "trained on adding", "trained on adding")
    ylabels = ("||dh_T / dh_k||", "||dh_T / dh_k||", "||dL_T / dh_k||")
    for axis, title, ylabel in zip(axes, titles, ylabels):
        axis.set(yscale="log", xlabel="T - k (steps back from the end)", ylabel=ylabel, title=title)
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def run(workdir, settings):
    """Norms at initialization and of the cells trained on ``adding`` (reusing its runs)."""
    inputs, targets = adding_inputs(settings)
    init_curves = norms_at_init(inputs, settings["hidden_size"])
    trained = {}
    for name in CELLS:
        run_dir = workdir / f"adding_T{settings['length']}" / name
        train_and_evaluate(memory.memory_task_config("adding", name, settings["length"], settings), run_dir)
        trained[name] = trained_norms(run_dir, inputs, targets)
    results = {
        "at_init": {label: norms.tolist() for label, norms in init_curves.items()},
        "trained": {name: {"jacobian_norms": j.tolist(), "loss_gradient_norms": g.tolist(),
                           "sigma_max_W_h": s} for name, (j, g, s) in trained.items()},
        "note": "entry k-1 of each list is k = 1..T; the last entry is k = T (T - k = 0); "
                "sigma_max_W_h is the largest of the per-gate blocks' sigma_max",
    }
    return results


if __name__ == "__main__":
    main(sys.modules[__name__])
