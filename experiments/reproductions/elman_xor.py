"""Elman (1990), "Finding Structure in Time", section Exclusive-OR, rerun as his paper ran it.

    python -m experiments.reproductions.elman_xor --workdir=runs/elman_xor [--budget=cpu|tiny|gpu]

His protocol (:data:`ELMAN`): 1 input, 2 hidden and 1 output logistic units, 2 context units
that copy the hidden units (weight 1) and start at 0.5, squared error, back-propagation one
step at a time (the context is an input: the gradient stops at ``h_{t-1}``), one weight
update per bit, on one unbroken stream of 3,000 bits (1,000 triples ``a, b, a XOR b``)
presented 600 times. What the paper leaves open we take from tlearn, his simulator: learning
rate 0.1, no momentum, initial weights and biases uniform in ``[-1, 1]``. Each seed draws its
own stream and weights.

Scored as his Fig. 3: on a fresh unbroken stream, the network's state carried throughout,
the RMS error of the prediction at each of 12 consecutive bits, over 1,200 cycles of 12
(after 36 bits of burn-in); bits 3, 6, 9, 12 are the predictable XORs. Beside it: the mean
hidden activation after a run (two equal bits) and after an alternation, his analysis.

Ablations switch one thing at a time to the choice of our previous reproduction (tanh hidden
units; Adam, :func:`seqjax.training.optimizer.make_optimizer` with that run's settings;
BPTT through 36-bit windows of the stream, one update per window; the context reset
to the start state every 36 bits, at a triple; cross-entropy), then all five at once. Same
seeds, same scoring. Beyond his setting: every protocol with 4 and 8 hidden units, all five
changes but one and two of them (:data:`COMBINATIONS`) at 4, and his protocol at other
learning rates. A run is one jitted ``lax.scan`` over the 1.8 M bits, ``vmap``-ped over
seeds: seconds on a CPU (the ``gpu`` budget only adds seeds and sizes; it runs on a CPU too).
"""

import functools
import sys
import time
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.reproductions.command import main
from seqjax import simple_recurrent_network as srn
from seqjax.tasks.memory import xor_stream
from seqjax.training.optimizer import make_optimizer

WINDOW, CYCLE = 36, 12  # WINDOW: the BPTT and reset windows, and the test's burn-in
ELMAN = {"activation": "logistic", "loss": "squared", "optimizer": "sgd",
         "gradient": "one step", "stream": "unbroken"}
MODERN = {"activation": "tanh", "loss": "cross_entropy", "optimizer": "adam",
          "gradient": "bptt", "stream": "36-bit windows"}
PROTOCOLS = {
    "Elman 1990": ELMAN,
    "tanh hidden units": {**ELMAN, "activation": "tanh"},
    "Adam": {**ELMAN, "optimizer": "adam"},
    "BPTT in 36-bit windows": {**ELMAN, "gradient": "bptt"},
    "reset every 36 bits": {**ELMAN, "stream": "36-bit windows"},
    "cross-entropy": {**ELMAN, "loss": "cross_entropy"},
    "all five (our previous run)": MODERN,
}
COMBINATIONS = {  # all five changes but one (each of his choices in turn), then two of them
    **{f"all five but {label}": {**MODERN, key: ELMAN[key]} for key, label in (
        ("activation", "logistic units"), ("optimizer", "SGD"), ("gradient", "one-step gradient"),
        ("stream", "the unbroken stream"), ("loss", "squared error"))},
    "BPTT and Adam only": {**ELMAN, "gradient": "bptt", "optimizer": "adam"},
}
ADAM = {"learning_rate": 1e-2, "end_learning_rate": 1e-3, "warmup_steps": 20, "b1": 0.9,
        "b2": 0.99, "weight_decay": 0.0, "grad_clip": 1.0}  # our previous run's AdamW
COMMON = {"hidden_size": 2, "stream_bits": 3000, "learning_rate": 0.1, "weight_range": 1.0,
          "adam": ADAM}
BUDGETS = {  # passes * stream_bits and 36 + 12 * test_cycles: multiples of 36
    "tiny": {**COMMON, "seeds": [0], "passes": 3, "test_cycles": 120, "more_hidden_units": [],
             "combinations_hidden_units": [3], "other_learning_rates": [0.3]},
    "cpu": {**COMMON, "seeds": list(range(10)), "passes": 600, "test_cycles": 1200,
            "more_hidden_units": [4, 8], "combinations_hidden_units": [4],
            "other_learning_rates": [0.03, 0.3, 1.0]},
    "gpu": {**COMMON, "seeds": list(range(50)), "passes": 600, "test_cycles": 1200,
            "more_hidden_units": [3, 4, 8, 16], "combinations_hidden_units": [4, 8],
            "other_learning_rates": [0.01, 0.03, 0.3, 1.0]},
}
CLAIM = ("Trained on temporal XOR, Elman's 2-hidden-unit network predicts the XOR bits better "
         "than the others: its RMS error over 12 consecutive bits dips at bits 3, 6, 9, 12 "
         "(Elman 1990, Fig. 3), with hidden units that code runs and alternations, not the "
         "phase.")


# ----- training ---------------------------------------------------------------------------

def training_stream(seed, settings):
    """Elman's one stream: ``stream_bits`` bits of triples ``a, b, a XOR b``, ``[L]``."""
    return xor_stream(np.random.default_rng(seed), 1, settings["stream_bits"], phase=0)[0]


def window_bits(stream, index):
    """``(inputs [W, 1], targets [W, 1])`` of window ``index`` of the circular ``stream``: bits
    ``W * index ...`` and the bit after each (the stream repeats, as over passes)."""
    positions = (index * WINDOW + jnp.arange(WINDOW)) % stream.shape[0]
    return stream[positions, None], stream[(positions + 1) % stream.shape[0], None]


def make_update_rule(protocol, settings, num_updates):
    """Elman's plain SGD (``w -= learning_rate * grad``) or our runs' AdamW schedule."""
    if protocol["optimizer"] == "sgd":
        return optax.sgd(settings["learning_rate"])
    return make_optimizer(SimpleNamespace(**settings["adam"]), num_updates)[0]


def one_step_window(protocol, rule, carry, xs, targets):
    """One update per bit over a window, each from the step's own error (gradient stopped at
    the context): ``carry = (params, rule_state, context)``; returns it and the window's error."""
    grad = jax.value_and_grad(srn.step_loss, has_aux=True)
    choices = (protocol["activation"], protocol["loss"])

    def step(carry, inputs):
        params, rule_state, context = carry
        (loss, h), grads = grad(params, context, *inputs, *choices)
        updates, rule_state = rule.update(grads, rule_state, params)
        return (optax.apply_updates(params, updates), rule_state, h), loss

    carry, losses = jax.lax.scan(step, carry, (xs, targets))
    return carry, losses.sum()


def bptt_window(protocol, rule, carry, xs, targets):
    """One update per window from its summed error, back-propagated through the window."""
    params, rule_state, context = carry
    grad = jax.value_and_grad(srn.window_loss, has_aux=True)
    choices = (protocol["activation"], protocol["loss"])
    (loss, last), grads = grad(params, context, xs, targets, *choices)
    updates, rule_state = rule.update(grads, rule_state, params)
    return (optax.apply_updates(params, updates), rule_state, last), loss


def train_network(protocol, settings, stream, key):
    """``(params, per-window error [N])`` after ``passes`` passes over ``stream [L]``, as
    ``N = passes * L / 36`` windows of 36 bits (each starts at a triple)."""
    num_windows, leftover = divmod(settings["passes"] * settings["stream_bits"], WINDOW)
    assert leftover == 0 and settings["stream_bits"] % 3 == 0, "windows must tile the passes"
    bptt = protocol["gradient"] == "bptt"
    rule = make_update_rule(protocol, settings, num_windows * (1 if bptt else WINDOW))
    update = functools.partial(bptt_window if bptt else one_step_window, protocol, rule)
    start = srn.start_state(settings["hidden_size"], protocol["activation"])
    params = srn.init(key, 1, settings["hidden_size"], 1, settings["weight_range"])

    def window(carry, index):
        if protocol["stream"] == "36-bit windows":
            carry = (carry[0], carry[1], start)
        return update(carry, *window_bits(stream, index))

    carry = (params, rule.init(params), start)
    (params, _, _), losses = jax.lax.scan(window, carry, jnp.arange(num_windows))
    return params, losses


def train_seeds(protocol, settings):
    """Every seed's network, trained under ``protocol`` in one jitted ``vmap``; with the
    training error of 20 equal stretches of the run, mean over seeds and bits."""
    streams = jnp.asarray(np.stack([training_stream(s, settings) for s in settings["seeds"]]))
    keys = jnp.stack([jax.random.PRNGKey(s) for s in settings["seeds"]])
    train = jax.jit(jax.vmap(functools.partial(train_network, protocol, settings)))
    params, losses = train(streams, keys)
    per_window = np.asarray(losses).mean(0) / WINDOW
    return params, [float(stretch.mean()) for stretch in np.array_split(per_window, 20)]


# ----- scoring as his Fig. 3 --------------------------------------------------------------

XOR_BITS = np.arange(CYCLE) % 3 == 2  # bits 3, 6, 9, 12 of a 12-bit cycle


def fresh_stream(seed, cycles):
    """A fresh unbroken stream (not the training one), ``[36 + 12 cycles + 1]``, at a triple."""
    length = WINDOW + CYCLE * cycles + 1
    return xor_stream(np.random.default_rng([seed, 1990]), 1, length, phase=0)[0]


@functools.partial(jax.jit, static_argnames=("activation", "reset_every"))
def network_run(params, bits, activation, reset_every=None):
    """``(hiddens [T, H], predictions [T])`` over the inputs ``bits[:-1]``: prediction ``t``
    is ``p(bit t+1 = 1)``; the state is carried throughout, or reset every ``reset_every``
    bits."""
    xs, hidden_size = bits[:-1, None], params["W_c"].shape[0]
    start = srn.start_state(hidden_size, activation)
    if reset_every is None:
        hiddens, predictions = srn.run(params, start, xs, activation)
    else:
        windows = xs.reshape(-1, reset_every, 1)
        hiddens, predictions = jax.vmap(lambda w: srn.run(params, start, w, activation))(windows)
    return hiddens.reshape(-1, hidden_size), predictions.reshape(-1)


def scored_steps(cycles, burn_in=WINDOW):
    """The steps ``t`` whose predictions count: those of bits ``burn_in`` to
    ``burn_in + 12 cycles - 1``."""
    return np.arange(burn_in - 1, burn_in - 1 + CYCLE * cycles)


def rms_error_by_position(predictions, bits, cycles, burn_in=WINDOW):
    """``[12]``: entry ``k - 1`` is the RMS error of the predictions of bit ``k`` of the 12-bit
    cycles after ``burn_in`` bits (a multiple of 12, so bits 3, 6, 9, 12 are the XORs)."""
    steps = scored_steps(cycles, burn_in)
    errors = np.asarray(predictions)[steps] - np.asarray(bits)[steps + 1]
    return np.sqrt(np.mean(errors.reshape(cycles, CYCLE) ** 2, axis=0))


def error_summary(by_position):
    """The 12 errors, the RMS error at the XOR bits and at the others, and their ratio."""
    xor = float(np.sqrt(np.mean(by_position[XOR_BITS] ** 2)))
    other = float(np.sqrt(np.mean(by_position[~XOR_BITS] ** 2)))
    return {"rms_error_by_position": by_position.tolist(), "xor_bits": xor, "other_bits": other,
            "ratio": xor / other}


def phase_aware_predictions(bits):
    """The best predictor that knows the phase: the XOR of the last two bits before an XOR
    bit, 0.5 before the others; ``[T]``, indexed as a network's predictions."""
    t = np.arange(len(bits) - 1)
    xor = np.logical_xor(bits[t], bits[np.maximum(t - 1, 0)])
    return np.where((t + 1) % 3 == 2, xor, 0.5)


def two_bit_predictions(bits):
    """The best predictor that sees the last two bits but not the phase: ``p(1) = 1/3`` after
    a run (the next bit is their XOR, 0, one time in three), ``2/3`` after an alternation."""
    t = np.arange(len(bits) - 1)
    alternation = bits[t] != bits[np.maximum(t - 1, 0)]
    return np.where(t == 0, 0.5, np.where(alternation, 2 / 3, 1 / 3))


def history_analysis(hiddens, predictions, bits, cycles, burn_in=WINDOW):
    """Elman's analysis, over the scored steps: each hidden unit's mean activation after a run
    (input bit equal to the one before) and after an alternation, and by the input bit's
    place in its triple; the mean prediction after each before XOR bits and before others;
    and ``phase_blindness``: the mean ``|p - 0.5|`` before the other bits over that before the
    XOR bits (1: the same confidence everywhere, the phase unused; 0: confident only at XORs)."""
    steps = scored_steps(cycles, burn_in)
    hiddens, p, bits = np.asarray(hiddens)[steps], np.asarray(predictions)[steps], np.asarray(bits)
    run, before_xor = bits[steps] == bits[steps - 1], (steps + 1) % 3 == 2
    by_place = lambda where: {"xor_bits": float(p[where & before_xor].mean()),
                              "other_bits": float(p[where & ~before_xor].mean())}
    confidence = np.abs(p - 0.5)
    return {
        "hidden_after_run": hiddens[run].mean(0).tolist(),
        "hidden_after_alternation": hiddens[~run].mean(0).tolist(),
        "hidden_by_place_in_triple": [hiddens[steps % 3 == k].mean(0).tolist() for k in range(3)],
        "prediction_after_run": by_place(run),
        "prediction_after_alternation": by_place(~run),
        "phase_blindness": float(confidence[~before_xor].mean() / confidence[before_xor].mean()),
    }


def score_network(params, bits, activation, cycles, reset_every=None):
    """Fig. 3's errors and the history analysis of one network on one test stream."""
    hiddens, predictions = network_run(params, jnp.asarray(bits), activation, reset_every)
    errors = rms_error_by_position(predictions, bits, cycles)
    return {**error_summary(errors), **history_analysis(hiddens, predictions, bits, cycles)}


def codes_runs_and_alternations(score, margin=0.1):
    """One hidden unit more active after runs, another after alternations, each by > margin."""
    difference = np.subtract(score["hidden_after_run"], score["hidden_after_alternation"])
    return bool(difference.max() > margin and difference.min() < -margin)


def spread(values):
    """Mean, standard deviation, minimum and maximum over seeds."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std()),
            "min": float(values.min()), "max": float(values.max())}


def summarize(by_seed):
    """Over seeds: the mean 12-bit curve, the spread of each error and of phase_blindness, and
    how many seeds have a run unit and an alternation unit."""
    scores = list(by_seed.values())
    return {
        "rms_error_by_position": np.mean([s["rms_error_by_position"] for s in scores], 0).tolist(),
        **{key: spread([s[key] for s in scores])
           for key in ("xor_bits", "other_bits", "ratio", "phase_blindness")},
        "seeds_with_a_run_and_an_alternation_unit": sum(map(codes_runs_and_alternations, scores)),
    }


def paired_difference(scores, baseline, key="xor_bits", resamples=10_000):
    """Seed by seed, ``scores[key] - baseline[key]``: the mean, a 95% bootstrap interval of the
    mean, and how many seeds are lower than the baseline."""
    differences = np.array([scores[seed][key] - baseline[seed][key] for seed in baseline])
    rng = np.random.default_rng(0)
    means = rng.choice(differences, (resamples, len(differences))).mean(1)
    return {"mean": float(differences.mean()),
            "interval_95": np.percentile(means, [2.5, 97.5]).tolist(),
            "seeds_lower": int((differences < 0).sum()), "seeds": len(differences)}


def reference_predictors(settings):
    """Fig. 3's errors of the two ideal predictors on the first seed's test stream."""
    bits = fresh_stream(settings["seeds"][0], settings["test_cycles"])
    return {name: error_summary(rms_error_by_position(predict(bits), bits, settings["test_cycles"]))
            for name, predict in (("knows the phase", phase_aware_predictions),
                                  ("last two bits, no phase", two_bit_predictions))}


def score_trained(params, activation, settings, reset_every=None):
    """``{seed: score}`` of the trained networks (``params`` stacked over seeds), each on its
    seed's fresh stream, the state carried throughout or reset every ``reset_every`` bits."""
    cycles = settings["test_cycles"]
    return {str(seed): score_network(jax.tree.map(lambda leaf: leaf[index], params),
                                     fresh_stream(seed, cycles), activation, cycles, reset_every)
            for index, seed in enumerate(settings["seeds"])}


def score_protocol(protocol, settings):
    """Every seed trained under ``protocol`` and scored as Fig. 3; networks trained with resets
    are also scored with the same resets."""
    start = time.time()
    params, training_error = train_seeds(protocol, settings)
    scores = score_trained(params, protocol["activation"], settings)
    result = {"protocol": protocol, "summary": summarize(scores), "by_seed": scores,
              "training_error_per_bit": training_error}
    if protocol["stream"] == "36-bit windows":
        with_resets = score_trained(params, protocol["activation"], settings, WINDOW)
        result["scored_with_resets_every_36_bits"] = summarize(with_resets)
    result["seconds"] = round(time.time() - start, 1)
    return result


def score_briefly(protocol, settings):
    """The summary and each seed's errors and phase_blindness only (for the sweeps)."""
    params, _ = train_seeds(protocol, settings)
    scores = score_trained(params, protocol["activation"], settings)
    keys = ("xor_bits", "other_bits", "phase_blindness")
    return {"summary": summarize(scores),
            "by_seed": {seed: {key: score[key] for key in keys} for seed, score in scores.items()}}


def sweeps(settings):
    """Beyond his setting: every protocol with more hidden units; the :data:`COMBINATIONS` of
    changes; his protocol at other learning rates (the paper gives none)."""
    more_units = lambda size: {**settings, "hidden_size": size}
    briefly = lambda protocols, size: {name: score_briefly(protocol, more_units(size))
                                       for name, protocol in protocols.items()}
    return {
        "hidden_units": {str(size): briefly(PROTOCOLS, size)
                         for size in settings["more_hidden_units"]},
        "combinations": {str(size): briefly(COMBINATIONS, size)
                         for size in settings["combinations_hidden_units"]},
        "learning_rates": {str(rate): score_briefly(ELMAN, {**settings, "learning_rate": rate})
                           for rate in settings["other_learning_rates"]},
    }


# ----- figure and command -----------------------------------------------------------------

def mark_xor_bits(axis):
    """Dotted lines at bits 3, 6, 9, 12 and the axis labels of a 12-bit cycle."""
    for bit in range(3, CYCLE + 1, 3):
        axis.axvline(bit, color="0.6", lw=0.8, ls=":")
    axis.set(xticks=range(1, CYCLE + 1), xlabel="bit of the 12-bit cycle (dotted: the XORs)",
             ylabel="RMS error of the prediction", ylim=(0, 0.75))


def plot_references(axis, references):
    """The two ideal predictors' curves, thin and dashed."""
    for (name, reference), style in zip(references.items(), ("--", "-.")):
        axis.plot(range(1, CYCLE + 1), reference["rms_error_by_position"], style, color="0.3",
                  lw=0.9, label=f"ideal: {name}")


def plot_elman(axis, result, references):
    """His protocol: each seed's 12-bit curve (grey) and their mean."""
    positions = range(1, CYCLE + 1)
    for score in result["by_seed"].values():
        axis.plot(positions, score["rms_error_by_position"], color="0.75", lw=1)
    axis.plot(positions, result["summary"]["rms_error_by_position"], "o-", color="C0",
              label=f"mean of {len(result['by_seed'])} seeds (grey: each)")
    plot_references(axis, references)
    mark_xor_bits(axis)
    axis.set_title("(a) Elman's protocol: 2 logistic units, one-step SGD, one stream",
                   fontsize=9)
    axis.legend(fontsize=7, loc="lower left")


def plot_ablations(axis, protocols, references):
    """Every protocol's mean 12-bit curve."""
    for index, (name, result) in enumerate(protocols.items()):
        axis.plot(range(1, CYCLE + 1), result["summary"]["rms_error_by_position"], "o-",
                  ms=3, color=f"C{index}", lw=2.2 if index == 0 else 1.2, label=name)
    plot_references(axis, references)
    mark_xor_bits(axis)
    axis.set_title("(b) One change at a time (mean over seeds)", fontsize=9)
    axis.legend(fontsize=6.5, loc="lower left", ncol=2)


def plot_seed_errors(axis, runs, colors, title):
    """Per run, each seed's RMS error at the XOR bits (filled) and at the others (open)."""
    for index, (result, color) in enumerate(zip(runs.values(), colors)):
        scores = list(result["by_seed"].values())
        jitter = np.linspace(-0.2, 0.2, len(scores))
        axis.plot(index + jitter, [s["xor_bits"] for s in scores], "o", color=color, ms=4)
        axis.plot(index + jitter, [s["other_bits"] for s in scores], "o", color=color, ms=4,
                  mfc="none")
    axis.set_xticks(range(len(runs)), list(runs), rotation=25, ha="right", fontsize=7)
    axis.set(ylabel="RMS error, one dot per seed", ylim=(-0.02, 0.75))
    axis.set_title(title, fontsize=9)


def plot_hidden_units(axis, result):
    """His analysis, per seed: each hidden unit's mean activation after a run minus after an
    alternation; one unit for runs and one for alternations puts a seed in quadrant II or IV."""
    differences = np.array([np.subtract(s["hidden_after_run"], s["hidden_after_alternation"])
                            for s in result["by_seed"].values()])
    axis.axhline(0, color="0.6", lw=0.8)
    axis.axvline(0, color="0.6", lw=0.8)
    axis.plot(differences[:, 0], differences[:, 1], "o", color="C0")
    for seed, (x, y) in zip(result["by_seed"], differences):
        axis.annotate(seed, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axis.set(xlabel="hidden unit 1: mean after a run - after an alternation",
             ylabel="hidden unit 2: the same", xlim=(-0.5, 0.5), ylim=(-0.5, 0.5))
    both = result["summary"]["seeds_with_a_run_and_an_alternation_unit"]
    axis.set_title(f"(d) Elman's protocol, hidden units: {both} of {len(differences)} seeds have "
                   "a run unit and an alternation unit", fontsize=9)


def plot_more_units(axis, results):
    """Every protocol's error at the XOR bits against the number of hidden units: per seed
    (dots) and the mean (line)."""
    sizes = [2] + [int(size) for size in results["hidden_units"]]
    for index, name in enumerate(PROTOCOLS):
        runs = [results["protocols"][name]]
        runs += [by_name[name] for by_name in results["hidden_units"].values()]
        errors = np.array([[s["xor_bits"] for s in run["by_seed"].values()] for run in runs])
        positions = np.arange(len(sizes)) + (index - (len(PROTOCOLS) - 1) / 2) * 0.09
        for position, seed_errors in zip(positions, errors):
            axis.plot(np.full(len(seed_errors), position), seed_errors, ".", color=f"C{index}",
                      ms=3, alpha=0.6)
        axis.plot(positions, errors.mean(1), "o-", color=f"C{index}", ms=4, lw=1, label=name)
    for (name, reference), style in zip(results["references"].items(), ("--", "-.")):
        axis.axhline(reference["xor_bits"], color="0.3", lw=0.9, ls=style, label=f"ideal: {name}")
    axis.set_xticks(range(len(sizes)), sizes)
    axis.set(xlabel="hidden units", ylabel="RMS error at the XOR bits", ylim=(-0.02, 0.6))
    axis.set_title("(e) More hidden units (dots: seeds; line: mean)", fontsize=9)
    axis.legend(fontsize=6, loc="upper right", ncol=2)


def plot_combinations(axis, results):
    """All five changes, all five but one (coloured as that change in (b)), and two of them, at
    the first size of the combination runs."""
    size, runs = next(iter(results["combinations"].items()), (None, {}))
    colors = [f"C{index + 1}" if name.startswith("all five but") else "C8"
              for index, name in enumerate(runs)]
    runs = {name.replace("all five but ", "but "): run for name, run in runs.items()}
    if size in results["hidden_units"]:
        runs = {"all five": results["hidden_units"][size]["all five (our previous run)"], **runs}
        colors = [f"C{len(PROTOCOLS) - 1}"] + colors
    plot_seed_errors(axis, runs, colors, f"(f) {size} hidden units: all five changes, all but "
                     "one, two (filled: XOR bits)")


def plot(results):
    """His protocol beside the ablations; per-seed errors; the hidden units; the sweeps."""
    import matplotlib.pyplot as plt

    protocols, references = results["protocols"], results["references"]
    figure, axes = plt.subplots(2, 3, figsize=(17, 9))
    plot_elman(axes[0, 0], protocols["Elman 1990"], references)
    plot_ablations(axes[0, 1], protocols, references)
    plot_seed_errors(axes[0, 2], protocols, [f"C{index}" for index in range(len(protocols))],
                     "(c) 2 hidden units; filled: at the XOR bits; open: at the other bits")
    plot_hidden_units(axes[1, 0], protocols["Elman 1990"])
    plot_more_units(axes[1, 1], results)
    plot_combinations(axes[1, 2], results)
    figure.tight_layout()
    return figure


def run(workdir, settings):
    """Every protocol trained and scored, each ablation against his protocol seed by seed; the
    sweeps; the ideal predictors for reference."""
    del workdir  # seconds of training: nothing to resume
    protocols = {name: score_protocol(protocol, settings) for name, protocol in PROTOCOLS.items()}
    elman = protocols["Elman 1990"]["by_seed"]
    for result in list(protocols.values())[1:]:
        result["xor_bits_minus_elman"] = paired_difference(result["by_seed"], elman)
    return {"references": reference_predictors(settings), "protocols": protocols,
            **sweeps(settings)}


if __name__ == "__main__":
    main(sys.modules[__name__])
