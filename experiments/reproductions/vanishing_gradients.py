"""Vanishing gradients: ``||dh_T / dh_k||`` against ``T - k`` (Pascanu et al. 2013).

    python -m experiments.reproductions.vanishing_gradients --workdir=runs/vanishing [--budget=...]

Top left: at initialization, the Elman cell with its recurrent matrix rescaled to largest
singular values 0.5, 1 and 1.5, and the LSTM and GRU as initialized (orthogonal ``W_h``,
forget bias 1). Top right and bottom left: ``||dh_T / dh_k||`` and the loss gradient
``||dL_T / dh_k||`` of the Elman RNN, LSTM and GRU trained on the adding problem at
``T = 100`` (the runs of :mod:`experiments.reproductions.adding`'s budget), beside an Elman
RNN trained at a shorter ``T`` where it beats the baseline (also measured on the ``T = 100``
inputs): a gradient that vanished is not mistaken for a model that never learned, and each
model is labelled with its held-out MSE against the baseline 1/6. Bottom right: the trained
LSTM's hidden-state path beside its cell-state path (``||dc_T / dc_k||``, ``||dL_T / dc_k||``),
the constant error carousel. Inputs are adding-problem sequences; every curve is the mean over
a batch of them.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments.reproductions import long_range_memory as memory
from experiments.reproductions.command import main
from seqjax import diagnostics
from seqjax.recurrent.cells import get_cell
from seqjax.training import train_and_evaluate
from seqjax.training.metrics_log import read_metrics
from seqjax.training.sequence_tasks import load_task_run
from seqjax.tasks.memory import adding

CELLS = ("elman", "lstm", "gru")
TITLES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU"}
COLORS = {"Elman": "C0", "LSTM": "C1", "GRU": "C2"}
SIGMAS = (0.5, 1.0, 1.5)
BUDGETS = {  # short_length: where the Elman RNN is also trained, to see one that learned
    "tiny": {**memory.TINY, "length": 8, "short_length": 4, "num_sequences": 2},
    "cpu": {**memory.CPU, "length": 100, "short_length": 30, "num_sequences": 16},
    "gpu": {**memory.GPU, "length": 100, "short_length": 50, "num_sequences": 64},
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


def run_losses(run_dir):
    """Held-out MSE of a finished run: ``final``, and ``best`` with its ``best_step`` (the
    checkpoint that :func:`load_task_run` restores and the diagnostics read)."""
    evaluations = [(r["step"], r["val_loss"]) for r in read_metrics(run_dir) if "val_loss" in r]
    best_step, best = min(evaluations, key=lambda point: point[1])
    return {"final_val_loss": evaluations[-1][1], "best_val_loss": best, "best_step": best_step}


def trained_cell(run_dir):
    """``(cell, cell_params, embed, head)`` of a one-layer adding-problem run's best checkpoint:
    ``embed(inputs [B, T, 2]) -> [B, T, H]``, ``head(h_T [B, H]) -> [B]``."""
    config, _, _, params = load_task_run(run_dir)
    if config.model.num_layers != 1:
        raise ValueError(f"{run_dir} holds a {config.model.num_layers}-layer model; the "
                         "diagnostics here read a one-layer encoder")
    encoder, head = params["encoder"], params["head"]
    projection = encoder["input"]["project"]
    embed = lambda inputs: inputs @ projection["kernel"] + projection["bias"]
    predict = lambda h_T: h_T @ head["kernel"][:, 0] + head["bias"][0]
    return get_cell(config.model.kind), encoder["layer_0"]["cell"], embed, predict


def mean_tanh_derivative(cell_params, xs):
    """Mean ``1 - h_t^2`` over the Elman states of a batch ``xs [B, T, H]`` (from ``h_0 = 0``):
    the ``tanh'`` in each step's Jacobian ``dh_t/dh_{t-1} = diag(1 - h_t^2) W_h``."""
    h_0 = jnp.zeros(cell_params["W_h"].shape[1])
    states = jax.vmap(lambda x: diagnostics.elman_hidden_states(cell_params, x, h_0))(xs)
    return float(jnp.mean(1.0 - states[:, 1:] ** 2))


def trained_norms(run_dir, inputs, targets):
    """``{name: [T]}`` batch-mean norms of a trained adding-problem model on ``inputs [B, T, 2]``:
    ``||dh_T/dh_k||`` and ``||dL_T/dh_k||`` (``L`` its squared error), and for the LSTM also
    ``||dc_T/dc_k||`` and ``||dL_T/dc_k||``; with ``sigma_max_W_h``, the largest over its
    per-gate ``W_h`` blocks, and for the Elman cell its ``mean_tanh_derivative``."""
    cell, cell_params, embed, predict = trained_cell(run_dir)
    xs = embed(inputs)
    loss = lambda h_T: jnp.mean((predict(h_T) - targets) ** 2)
    batch_mean = lambda norms: np.asarray(norms).mean(0).tolist()
    sigma_max = diagnostics.largest_gate_singular_value(cell_params["W_h"])
    measured = {
        "jacobian_norms": batch_mean(diagnostics.jacobian_norms(cell, cell_params, xs)),
        "loss_gradient_norms":
            batch_mean(diagnostics.loss_gradient_norms(cell, cell_params, xs, loss)),
        "sigma_max_W_h": float(sigma_max),
    }
    if cell is get_cell("lstm"):
        measured["cell_state_jacobian_norms"] = batch_mean(
            diagnostics.cell_state_jacobian_norms(cell, cell_params, xs))
        measured["cell_state_loss_gradient_norms"] = batch_mean(
            diagnostics.cell_state_loss_gradient_norms(cell, cell_params, xs, loss))
    if cell is get_cell("elman"):
        measured["mean_tanh_derivative"] = mean_tanh_derivative(cell_params, xs)
    return measured


def plot_against_distance(axis, norms, *args, **kwargs):
    """Plot ``norms`` (``k = 1..T``) against ``T - k``, leaving out exact zeros (log axis)."""
    norms = np.asarray(norms)[::-1]
    distance = np.arange(len(norms))
    axis.plot(distance[norms > 0], norms[norms > 0], *args, **kwargs)


def trained_curves(results):
    """``(label, color, style, measured)`` of each trained model: those at ``length``, the Elman
    RNN trained at ``short_length``, and the same Elman RNN on the ``length``-step inputs."""
    mse = lambda model: f"MSE {model['best_val_loss']:.3g}"
    short, long_length = results["short_elman"], results["trained"]["elman"]["length"]
    elman, lstm, gru = (results["trained"][name] for name in CELLS)
    return [(f"Elman, T = {long_length}, {mse(elman)}", COLORS["Elman"], "-", elman),
            (f"Elman, T = {short['length']}, {mse(short)}", "C4", "-", short),
            (f"  the same on T = {long_length} inputs", "C4", ":", short["on_long_inputs"]),
            (f"LSTM, T = {long_length}, {mse(lstm)}", COLORS["LSTM"], "-", lstm),
            (f"GRU, T = {long_length}, {mse(gru)}", COLORS["GRU"], "-", gru)]


def plot_trained(axes, results):
    """Panels ``axes = (jacobians, loss gradients)``: every trained model's ``||dh_T/dh_k||``
    and ``||dL_T/dh_k||``, labelled with the held-out MSE of the checkpoint measured."""
    for label, color, style, measured in trained_curves(results):
        plot_against_distance(axes[0], measured["jacobian_norms"], style, color=color,
                              label=f"{label}, sigma_max {measured['sigma_max_W_h']:.2f}")
        plot_against_distance(axes[1], measured["loss_gradient_norms"], style, color=color,
                              label=label)
    for axis, ylabel in zip(axes, ("||dh_T / dh_k||", "||dL_T / dh_k||")):
        axis.set(ylabel=ylabel, title="trained on adding: vanished, or never learned?")
        axis.legend(fontsize=6.5, title=f"held-out MSE (baseline {results['baseline']:.3f})",
                    title_fontsize=7)


def plot_lstm_paths(axis, lstm):
    """The trained LSTM's hidden-state and cell-state paths: Jacobians and loss gradients."""
    paths = (("jacobian_norms", "-", "C1", "||dh_T / dh_k||"),
             ("cell_state_jacobian_norms", "-", "C3", "||dc_T / dc_k||"),
             ("loss_gradient_norms", "--", "C1", "||dL_T / dh_k||"),
             ("cell_state_loss_gradient_norms", "--", "C3", "||dL_T / dc_k||  (0 at k = T)"))
    for key, style, color, label in paths:
        plot_against_distance(axis, lstm[key], style, color=color, label=label)
    axis.set(ylabel="norm", title=f"trained LSTM (MSE {lstm['best_val_loss']:.3g}): h and c paths")
    axis.legend(fontsize=7, loc="center right", bbox_to_anchor=(1, 0.7))


def plot(results):
    """Four panels against ``T - k``: ``||dh_T/dh_k||`` at initialization; trained models'
    ``||dh_T/dh_k||`` and ``||dL_T/dh_k||``; the trained LSTM's ``h`` and ``c`` paths."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 8.4))
    elman_styles = iter(["-", "--", ":"])
    for label, norms in results["at_init"].items():
        style = next(elman_styles) if label.startswith("Elman") else "-"
        plot_against_distance(axes[0, 0], norms, style, color=COLORS[label.split(",")[0]],
                              label=label)
    axes[0, 0].set(ylabel="||dh_T / dh_k||", title="at initialization")
    axes[0, 0].legend(fontsize=7)
    plot_trained((axes[0, 1], axes[1, 0]), results)
    plot_lstm_paths(axes[1, 1], results["trained"]["lstm"])
    for axis in axes.flat:
        axis.set(yscale="log", xlabel="T - k (steps back from the end)")
    figure.tight_layout()
    return figure


def trained_run(workdir, settings, kind, length):
    """Train (or resume) ``kind`` on the adding problem at ``length``; its run folder."""
    run_dir = workdir / f"adding_T{length}" / kind
    train_and_evaluate(memory.memory_task_config("adding", kind, length, settings), run_dir)
    return run_dir


def short_elman_norms(workdir, settings, long_inputs, long_targets):
    """The Elman RNN trained at ``short_length``: its norms on its own length's inputs, and on
    the ``length``-step inputs of the other models (``on_long_inputs``)."""
    short = {**settings, "length": settings["short_length"]}
    run_dir = trained_run(workdir, short, "elman", short["length"])
    short_inputs, short_targets = adding_inputs(short)
    return {"length": short["length"], **run_losses(run_dir),
            **trained_norms(run_dir, short_inputs, short_targets),
            "on_long_inputs": trained_norms(run_dir, long_inputs, long_targets)}


def run(workdir, settings):
    """Norms at initialization, of the cells trained on ``adding`` (reusing its runs), and of
    an Elman RNN trained at ``short_length``."""
    inputs, targets = adding_inputs(settings)
    init_curves = norms_at_init(inputs, settings["hidden_size"])
    trained = {}
    for name in CELLS:
        run_dir = trained_run(workdir, settings, name, settings["length"])
        trained[name] = {"length": settings["length"], **run_losses(run_dir),
                         **trained_norms(run_dir, inputs, targets)}
    return {
        "at_init": {label: norms.tolist() for label, norms in init_curves.items()},
        "trained": trained,
        "short_elman": short_elman_norms(workdir, settings, inputs, targets),
        "baseline": memory.baseline("adding", settings["length"]),
        "note": "entry k-1 of each list is k = 1..T; the last entry is k = T (T - k = 0); "
                "the norms are of each run's best checkpoint (best_step, best_val_loss); "
                "dL_T/dc_T = 0 (the loss reads h_T); sigma_max_W_h is the largest of the "
                "per-gate blocks' sigma_max; mean_tanh_derivative is the mean 1 - h_t^2 of an "
                "Elman cell's states",
    }


if __name__ == "__main__":
    main(sys.modules[__name__])
