"""The adding problem at T = 100, 200, 400 for an Elman RNN, an LSTM, a GRU, a causal
(decoder-only) Transformer and a bidirectional Transformer encoder; and why our Elman RNN
beats the baseline at short ``T`` where Arjovsky et al.'s did not.

    python -m experiments.reproductions.adding --workdir=runs/adding [--budget=cpu|gpu|tiny]

Length panels: held-out MSE against training steps beside the memoryless baseline 1/6
(always predict 1); the models and their matched parameter counts are those of
:mod:`experiments.reproductions.long_range_memory`. Budgets: ``cpu`` 400 steps of batch 32,
recurrent hidden size 64; ``gpu`` 2,000 steps of batch 128, hidden size 128.

Last panel: the Elman RNN alone at ``T = 100`` (width 128), trained with seqjax's recipe and
with Arjovsky et al.'s (2016; their code, amarshah/complex_RNN), and with one of theirs
swapped into ours at a time (:data:`ELMAN_SETUPS`). seqjax: orthogonal ``W_h``,
LeCun-normal input and read-out matrices, AdamW (``3e-3`` warmed up, cosine-decayed to
``3e-4``) after global-norm clipping at 1, batch 128. Theirs: every matrix Glorot-uniform,
RMSProp (``1e-3``, decay 0.9, constant) after clipping each gradient entry to ``[-1, 1]``,
batch 20. Both read the two input features straight into the cell (seqjax's adding model
maps them through a 32-wide embedding first; at initialization the two maps compose to the
same scale, ``W_x`` entries of std ``1 / sqrt(2)``), start from ``h_0 = 0`` (theirs learned
``h_0``) and read the answer linearly off ``h_T``.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.configs.tasks.adding import get_config
from experiments.reproductions import long_range_memory as memory
from experiments.reproductions.command import main
from seqjax.recurrent.cells import elman
from seqjax.recurrent.fused_bptt import fused_unroll
from seqjax.tasks.memory import adding
from seqjax.training.optimizer import make_optimizer

LENGTHS = [100, 200, 400]
SEQJAX = {"recurrent_init": "orthogonal", "input_init": "lecun_normal", "optimizer": "adamw",
          "batch_size": 128}
ARJOVSKY = {"recurrent_init": "glorot_uniform", "input_init": "glorot_uniform",
            "optimizer": "rmsprop", "batch_size": 20}
ELMAN_SETUPS = {  # seqjax's recipe, theirs, and theirs swapped into ours one part at a time
    "seqjax": SEQJAX,
    "Arjovsky et al.": ARJOVSKY,
    "seqjax, their init": {**SEQJAX, "recurrent_init": "glorot_uniform",
                           "input_init": "glorot_uniform"},
    "seqjax, their input/read-out init": {**SEQJAX, "input_init": "glorot_uniform"},
    "seqjax, their W_h init": {**SEQJAX, "recurrent_init": "glorot_uniform"},
    "seqjax, their optimizer": {**SEQJAX, "optimizer": "rmsprop"},
    "seqjax, their batch of 20": {**SEQJAX, "batch_size": 20},
}
ELMAN_TINY = {"length": 8, "hidden_size": 8, "num_examples": 256, "evaluations": 2,
              "eval_examples": 16, "seeds": [0]}
ELMAN_CPU = {"length": 100, "hidden_size": 128, "num_examples": 256_000, "evaluations": 20,
             "eval_examples": 4096, "seeds": [0, 1, 2]}  # the gpu budget's 2,000 x 128
BUDGETS = {"tiny": {**memory.TINY, "lengths": [8], "elman_setups": ELMAN_TINY},
           "cpu": {**memory.CPU, "lengths": LENGTHS, "elman_setups": ELMAN_CPU},
           "gpu": {**memory.GPU, "lengths": LENGTHS,
                   "elman_setups": {**ELMAN_CPU, "seeds": [0, 1, 2, 3, 4]}}}
CLAIM = ("At long T the plain RNN does not beat the baseline MSE 1/6; LSTM and GRU do "
         "(Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016, Fig. 2).")


def glorot_uniform(key, shape):
    """``U[-r, r]`` with ``r = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    bound = np.sqrt(6.0 / sum(shape))
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


def elman_regressor_params(key, setup, hidden_size, input_size=2):
    """``{"cell": {"W_h", "W_x", "b"}, "readout": {"w" [H], "c"}}``. ``W_h``: ``orthogonal``
    (seqjax's) or ``glorot_uniform``; ``W_x`` and ``w``: ``lecun_normal`` (seqjax's cell and
    Flax ``Dense``'s default, std ``1 / sqrt(fan_in)``) or ``glorot_uniform``, as
    ``setup`` says. Biases start at zero."""
    cell_key, readout_key, recurrent_key, input_key = jax.random.split(key, 4)
    cell = elman.init(cell_key, input_size, hidden_size)  # orthogonal W_h, LeCun-normal W_x
    w = jax.nn.initializers.lecun_normal()(readout_key, (hidden_size, 1))[:, 0]
    if setup["recurrent_init"] == "glorot_uniform":
        cell["W_h"] = glorot_uniform(recurrent_key, (hidden_size, hidden_size))
    if setup["input_init"] == "glorot_uniform":
        cell["W_x"] = glorot_uniform(input_key, (hidden_size, input_size))
        w = glorot_uniform(readout_key, (hidden_size, 1))[:, 0]
    return {"cell": cell, "readout": {"w": w, "c": jnp.zeros(())}}


def elman_regression(params, inputs):
    """``h_t = tanh(W_h h_{t-1} + W_x x_t + b)`` from ``h_0 = 0`` over ``inputs [B, T, I]``
    (the fused BPTT path the adding runs take), then ``y = w . h_T + c``: ``[B]``."""
    initial = jnp.zeros((inputs.shape[0], params["cell"]["W_h"].shape[0]))
    final, _ = fused_unroll("elman", params["cell"], inputs, initial)
    return final @ params["readout"]["w"] + params["readout"]["c"]


def elman_mse(params, inputs, targets):
    """Mean squared error of :func:`elman_regression` on ``targets [B]``."""
    return jnp.mean((elman_regression(params, inputs) - targets) ** 2)


def elman_optimizer(name, num_steps):
    """``adamw``: seqjax's optimizer with the ``elman`` preset's settings (as the adding runs
    use them); ``rmsprop``: Arjovsky et al.'s, each gradient entry clipped to ``[-1, 1]``, then
    ``v <- 0.9 v + 0.1 g^2`` (from ``v = 1e-3``), ``theta <- theta - 1e-3 g / sqrt(v)``."""
    if name == "adamw":
        optim = get_config("elman").optim
        optim.warmup_steps = min(100, num_steps // 10)
        return make_optimizer(optim, num_steps)[0]
    return optax.chain(optax.clip(1.0),
                       optax.rmsprop(1e-3, decay=0.9, eps=1e-8, initial_scale=1e-3))


def adding_held_out(settings):
    """The held-out set of the setups' comparison, the adding task's own (seed 0):
    ``(inputs [N, T, 2], targets [N])``."""
    batch = adding(settings["length"]).held_out_set(0, settings["eval_examples"])
    return jnp.asarray(batch.inputs), jnp.asarray(batch.targets)


def train_elman_setup(setup, settings, seed=0):
    """``[(examples seen, held-out MSE)]`` of one Elman RNN trained with ``setup``
    (initializations, optimizer, batch size) on ``settings["num_examples"]`` fresh
    adding-problem examples (so a batch of 20 takes 6.4 times the steps of a batch of 128),
    evaluated ``settings["evaluations"]`` times. For one seed every setup starts from the same
    random keys and draws its batches as a seqjax run of that seed does
    (:meth:`seqjax.tasks.Task.training_batch`); every run is scored on the same
    :func:`adding_held_out` set."""
    task, held_out = adding(settings["length"]), adding_held_out(settings)
    num_steps = settings["num_examples"] // setup["batch_size"]
    eval_every = max(1, num_steps // settings["evaluations"])
    params = elman_regressor_params(jax.random.PRNGKey(seed), setup, settings["hidden_size"])
    optimizer = elman_optimizer(setup["optimizer"], num_steps)

    @jax.jit
    def update(params, opt_state, inputs, targets):
        grads = jax.grad(elman_mse)(params, inputs, targets)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    evaluate, opt_state = jax.jit(elman_mse), optimizer.init(params)
    curve = []
    for step in range(1, num_steps + 1):
        batch = task.training_batch(seed, step, setup["batch_size"])
        params, opt_state = update(params, opt_state, jnp.asarray(batch.inputs),
                                   jnp.asarray(batch.targets))
        if step % eval_every == 0:
            curve.append((step * setup["batch_size"], float(evaluate(params, *held_out))))
    return curve


def compare_elman_setups(settings):
    """``{"held_out_variance", "by_setup": {name: {**setup, "by_seed": {seed: {"curve",
    "final", "best"}}}}}``: every setup of :data:`ELMAN_SETUPS` from each of
    ``settings["seeds"]``. The held-out set's variance is the MSE of its best constant
    prediction, the memoryless baseline on that set (1/6 in expectation)."""
    by_setup = {}
    for name, setup in ELMAN_SETUPS.items():
        by_seed = {}
        for seed in settings["seeds"]:
            curve = train_elman_setup(setup, settings, seed)
            losses = [loss for _, loss in curve]
            by_seed[str(seed)] = {"curve": curve, "final": losses[-1], "best": min(losses)}
        by_setup[name] = {**setup, "by_seed": by_seed}
    variance = float(jnp.var(adding_held_out(settings)[1]))
    return {"settings": settings, "held_out_variance": variance, "by_setup": by_setup}


def run(workdir, settings):
    """The five models at every length, then the Elman RNN's setups at ``T = 100``."""
    results = memory.reproduce_memory_task("adding", workdir, settings)
    results["elman_setups"] = compare_elman_setups(settings["elman_setups"])
    return results


def plot(results):
    """The length panels (:func:`memory.plot_lengths`) and, where the report has them, each
    Elman setup's final held-out MSE, one dot per seed, beside the memoryless baseline."""
    if "elman_setups" not in results:
        return memory.plot(results)
    figure, (axis,) = memory.length_figure(results, extra_panels=1)
    comparison, settings = results["elman_setups"], results["elman_setups"]["settings"]
    names = list(comparison["by_setup"])
    for row, name in enumerate(names):
        finals = [run["final"] for run in comparison["by_setup"][name]["by_seed"].values()]
        axis.plot(finals, [row] * len(finals), "o", color=f"C{row}", alpha=0.7)
    axis.axvline(comparison["held_out_variance"], color="k", ls="--", lw=1,
                 label="memoryless baseline (this held-out set)")
    axis.set_yticks(range(len(names)), names, fontsize=7)
    axis.invert_yaxis()
    axis.set(title=f"Elman RNN, T = {settings['length']}, H = {settings['hidden_size']}: "
                   "whose setup",
             xlabel=f"held-out MSE after {settings['num_examples'] // 1000} K examples "
                    f"({len(settings['seeds'])} seeds)", xscale="log")
    axis.legend(fontsize=6)
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main(sys.modules[__name__])
