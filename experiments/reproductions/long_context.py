"""The long-context study: Transformers against RNNs along a long context (Kaplan et al. 2020).

    python -m experiments.reproductions.long_context --workdir=runs/long_context [--budget=cpu|gpu]

Kaplan et al. (2020, Figs. 7 and 20) find that an LSTM's per-token loss stops improving after
fewer than 100 tokens of context while a Transformer's keeps falling through its 1,024
tokens, and that Transformers use parameters better. This study asks both on data that has
long-range structure, at a scale that fits the budget:

- **Data.** Python source: every ``.py`` file the interpreter ships, tests included
  (``"python_stdlib_full"``), split into training and validation *by file*; byte-level BPE
  trained on the training files only; windows of 512 tokens (CPU) or 1,024 (GPU).
- **Evidence from counts alone.** A static n-gram, and the n-gram mixed with a unigram cache
  (Kuhn & De Mori 1990) and with an n-gram cache (Tu et al. 2014) over the window
  (:mod:`seqjax.models.cache_lm`): the caches' loss falls along the window as far as the data
  repeats itself. Their hyperparameters (n-gram order, add-k, mixture weight) are chosen by
  2-fold cross-fitting over the evaluation windows: each half is scored with the setting best
  on the other half.
- **Models.** Transformers (rotary positions, so far positions are not under-trained) at
  several sizes, and an LSTM and a GRU matched to each size's non-embedding parameter count
  (token table, positions and read-out left out), all trained on the same batches (the same
  tokens, well under one pass over the training files, so none overfits).
- **Measured.** The loss at every position of the same validation windows for every model,
  averaged over bins of doubling width, each bin with a bootstrap 95% interval over windows;
  the paired Transformer-minus-recurrent difference per bin with its interval; the gain still
  to come after each bin (its loss minus the last bin's, paired), which reaches 0 where a
  model stops improving; the late gain, positions 65-128 minus the window's last bin (the
  "still improving after 100 tokens" test), with its interval; loss against non-embedding
  parameters. ``docs/reproductions.md`` reports what it shows.
"""

import dataclasses
import sys
import sysconfig
from pathlib import Path

import numpy as np

from experiments.reproductions import language_models as lm
from experiments.reproductions.command import main
from seqjax.data import file_corpus
from seqjax.evaluation import (
    binned_losses,
    bootstrap_interval,
    doubling_bins,
    window_position_losses,
)
from seqjax.models import cache_lm
from seqjax.models.ngram import NGramLM
from seqjax.text_generation import load_run

# The recurrences linear in the state run as their papers build them: as many pre-norm residual
# blocks as the Transformer has (Hawk's recurrent block for rg_lru; seqjax.recurrent.blocks).
BLOCK_KINDS = ("min_gru", "min_lstm", "lru", "rg_lru")
COUNT_MODELS = {"ngram_orders": [1, 2, 3, 4], "ngram_ks": [0.1, 0.01, 0.001],
                "mixture_weights": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "cache_order": 3,
                "bootstrap_resamples": 2000}
BUDGETS = {
    "tiny": {"corpus": str(Path(sysconfig.get_paths()["stdlib"]) / "json"), "vocab_size": 300,
             "num_steps": 4, "eval_every": 4, "batch_size": 2, "seq_len": 16, "eval_batches": 2,
             "embed_size": 8, "transformer_sizes": [[1, 16]],
             "recurrent_kinds": ["lstm", "gru", "rg_lru"],
             "learning_rate": 2e-3, "eval_windows": 6, "eval_batch_size": 4,
             **COUNT_MODELS, "ngram_orders": [1, 2], "ngram_ks": [0.1],
             "mixture_weights": [0.5, 0.9], "bootstrap_resamples": 50},
    "cpu": {"corpus": "python_stdlib_full", "vocab_size": 2048, "num_steps": 700,
            "eval_every": 700, "batch_size": 8, "seq_len": 512, "eval_batches": 16,
            "embed_size": 128, "transformer_sizes": [[2, 128], [4, 160]],
            "recurrent_kinds": ["lstm", "gru", *BLOCK_KINDS], "learning_rate": 2e-3,
            "eval_windows": 512,
            "eval_batch_size": 16, **COUNT_MODELS},
    # Sized by estimate for one H100 (not run yet): every model resumes in its own folder,
    # so a second call of the same command finishes what a first one did not.
    "gpu": {"corpus": "python_stdlib_full", "vocab_size": 4096, "num_steps": 1000,
            "eval_every": 1000, "batch_size": 16, "seq_len": 1024, "eval_batches": 16,
            "embed_size": 256, "transformer_sizes": [[2, 128], [4, 192], [4, 256], [6, 320]],
            "recurrent_kinds": ["lstm", "gru", *BLOCK_KINDS], "learning_rate": 2e-3,
            "eval_windows": 768,
            "eval_batch_size": 32, **COUNT_MODELS},
}
CLAIM = ("An LSTM's per-token loss stops improving after fewer than 100 tokens of context while "
         "a Transformer's keeps falling along the whole context; Transformers use parameters "
         "better (Kaplan et al. 2020, Figs. 7 and 20).")
FAMILY_TITLES = {"transformer": "Transformer", "lstm": "LSTM", "gru": "GRU", "min_gru": "minGRU",
                 "min_lstm": "minLSTM", "lru": "LRU", "rg_lru": "Hawk (RG-LRU)"}
EARLY_BIN, FAR_FROM = (65, 128), 257  # "after 100 tokens": 65-128 against the last bin
CACHE_WINDOWS_AT_ONCE = 32  # the cache counts compare every pair of positions of a window


def study_config(settings, model):
    """The training config of one model: BPE tokens of the corpus, the shared schedule."""
    config = lm.lm_config(settings, model)
    config.data.tokenizer, config.data.vocab_size = "bpe", settings["vocab_size"]
    config.optim.learning_rate = settings["learning_rate"]
    config.optim.end_learning_rate = settings["learning_rate"] / 10
    return config


def model_sections(settings, vocab_size):
    """``[(family, label, model section)]``: per Transformer size, the Transformer and each
    recurrent kind at the width whose non-embedding count is closest to the Transformer's
    (the classic cells as one layer, the linear recurrences in residual blocks)."""
    sections = []
    for num_layers, width in settings["transformer_sizes"]:
        transformer = lm.transformer(num_layers, width)
        transformer.positional = "rotary"
        target = lm.parameter_counts(study_config(settings, transformer), vocab_size)[1]
        sections.append(("transformer", f"Transformer {num_layers}x{width}", transformer))
        for kind in settings["recurrent_kinds"]:
            layout = ({"num_layers": num_layers, "block": "residual"} if kind in BLOCK_KINDS
                      else {})
            hidden = lm.matched_hidden_size(settings, kind, target, vocab_size,
                                            non_embedding=True, **layout)
            name = (f"{FAMILY_TITLES[kind]} {num_layers}x{hidden}" if layout
                    else f"{FAMILY_TITLES[kind]} H={hidden}")
            sections.append((kind, name, lm.recurrent_model(kind, hidden, settings["embed_size"],
                                                            **layout)))
    return sections


def evaluation_windows(tokens, settings):
    """``[N, T + 1]``: ``eval_windows`` windows spread evenly over the validation tokens,
    without overlap where the split is long enough."""
    length, count = settings["seq_len"] + 1, settings["eval_windows"]
    if len(tokens) < length:
        raise ValueError(f"validation split of {len(tokens)} tokens holds no {length}-token window")
    starts = np.linspace(0, len(tokens) - length, count).round().astype(np.int64)
    return np.stack([np.asarray(tokens[s: s + length], np.int64) for s in starts])


def count_model_losses(data, windows, settings):
    """``{name: [N, T] losses}`` of the static n-gram and its two cache mixtures, with the
    settings chosen by 2-fold cross-fitting (see the module docstring)."""
    vocab = data.tokenizer.vocab_size
    train = np.asarray(data.train_tokens, np.int64)
    static = {}
    for order in settings["ngram_orders"]:
        counted = NGramLM.fit(train, order, vocab)
        for k in settings["ngram_ks"]:
            static[(order, k)] = cache_lm.static_log_probs(dataclasses.replace(counted, k=k),
                                                           windows)
    chunks = np.array_split(windows, len(windows) // CACHE_WINDOWS_AT_ONCE + 1)
    caches = {"unigram cache": np.concatenate([cache_lm.unigram_cache_probs(w) for w in chunks]),
              "n-gram cache": np.concatenate([cache_lm.ngram_cache_probs(w, settings["cache_order"])
                                              for w in chunks])}
    candidates = {"static n-gram": {key: -log_probs for key, log_probs in static.items()}}
    for name, cache in caches.items():
        candidates[f"n-gram + {name}"] = {
            (*key, weight): -cache_lm.mixture_log_probs(log_probs, cache, weight)
            for key, log_probs in static.items() for weight in settings["mixture_weights"]}
    return {name: cross_fitted(options) for name, options in candidates.items()}


def cross_fitted(options):
    """``(losses [N, T], chosen)``: each half of the windows (even and odd rows) scored with the
    option whose mean loss is lowest on the other half; ``chosen`` names both picks."""
    losses, chosen = None, []
    even, odd = slice(0, None, 2), slice(1, None, 2)
    for scored, tuned in ((even, odd), (odd, even)):
        best = min(options, key=lambda key: options[key][tuned].mean())
        losses = np.array(options[best]) if losses is None else losses
        losses[scored] = options[best][scored]
        chosen.append(list(best))
    return losses, chosen


def train_and_score(settings, workdir, windows, vocab_size):
    """Every model trained (or resumed) in its own folder; ``(runs, {label: [N, T] losses})``."""
    runs, losses = {}, {}
    for family, label, model in model_sections(settings, vocab_size):
        run_name = label.replace(" ", "_").replace("=", "")
        config = study_config(settings, model)
        records = lm.train_lm(config, workdir / run_name)
        run = load_run(workdir / run_name)
        losses[label] = window_position_losses(run.model, run.params, windows,
                                               batch_size=settings["eval_batch_size"])
        runs[label] = {"family": family, "run_dir": run_name,
                       "non_embedding_parameters": lm.parameter_counts(config, vocab_size)[1],
                       "val_loss": records[-1]["val_loss"],
                       "trained_tokens": config.num_steps * config.batch_size * config.seq_len}
    return runs, losses


def interval(per_window, settings, seed=0):
    """``{"mean", "low", "high"}``: the mean over windows and its bootstrap 95% interval."""
    mean, low, high = bootstrap_interval(per_window, num_resamples=settings["bootstrap_resamples"],
                                         seed=seed)
    return {"mean": np.round(mean, 5).tolist(), "low": np.round(low, 5).tolist(),
            "high": np.round(high, 5).tolist()}


def late_gain(binned, bins):
    """``[N]``: each window's loss over positions 65-128 minus its mean over positions from
    257 on: above 0 where the model still gains from context past 100 tokens."""
    early = [i for i, b in enumerate(bins) if b == EARLY_BIN]
    far = [i for i, (first, _) in enumerate(bins) if first >= FAR_FROM]
    if not early or not far:
        return None
    return binned[:, early[0]] - binned[:, far].mean(axis=1)


def curve_summary(binned, window_loss, bins, settings):
    """A curve's binned mean with its interval, its whole-window loss, its late gain, and its
    gain still to come after each bin (``binned[:, k] - binned[:, -1]``, paired): where that
    reaches 0 the curve has stopped falling."""
    gain = late_gain(binned, bins)
    return {**interval(binned, settings), "window_loss": interval(window_loss, settings),
            "late_gain": None if gain is None else interval(gain, settings),
            "gain_to_last_bin": interval(binned - binned[:, -1:], settings)}


def matched_pairs(runs):
    """``[(transformer, recurrent)]``: each Transformer with the recurrent models matched to it
    (those listed after it, before the next Transformer)."""
    pairs, transformer = [], None
    for label, r in runs.items():
        if r["family"] == "transformer":
            transformer = label
        elif transformer is not None:
            pairs.append((transformer, label))
    return pairs


def summarize(curves, runs, bins, settings):
    """Every curve's summary, and the paired difference of each Transformer minus each recurrent
    model of its size (its late gain above 0: the Transformer gains more past 100 tokens)."""
    binned = {name: binned_losses(losses, bins) for name, losses in curves.items()}
    summary = {"per_position": {name: curve_summary(binned[name], curves[name].mean(1), bins,
                                                    settings) for name in curves},
               "difference": {}}
    for transformer, other in matched_pairs(runs):
        summary["difference"][f"{transformer} - {other}"] = curve_summary(
            binned[transformer] - binned[other],
            curves[transformer].mean(1) - curves[other].mean(1),
            bins, settings)
    return summary


def run(workdir, settings):
    """The corpus, the count models, every neural model, and the summary with intervals."""
    data = lm.language_data(settings, workdir / "data", tokenizer="bpe",
                            vocab_size=settings["vocab_size"])
    windows = evaluation_windows(data.val_tokens, settings)
    bins = doubling_bins(settings["seq_len"])
    counts = count_model_losses(data, windows, settings)
    runs, neural = train_and_score(settings, workdir, windows, data.tokenizer.vocab_size)
    curves = {**{name: losses for name, (losses, _) in counts.items()}, **neural}
    np.savez_compressed(workdir / "window_losses.npz", **curves)  # [N, T] each, for re-analysis
    return {"data": describe_data(data, settings, windows),
            "bins": [list(b) for b in bins], "runs": runs,
            "count_models": {name: {"chosen_by_half": chosen}
                             for name, (_, chosen) in counts.items()},
            **summarize(curves, runs, bins, settings)}


def describe_data(data, settings, windows):
    """The corpus's files, characters and tokens per split, and what the models trained on."""
    corpus = file_corpus(settings["corpus"])
    (train_files, val_files), root = corpus.split(), corpus.root
    trained = settings["num_steps"] * settings["batch_size"] * settings["seq_len"]
    return {"corpus": settings["corpus"], "vocab_size": data.tokenizer.vocab_size,
            "train_files": len(train_files), "val_files": len(val_files),
            "train_bytes": sum((root / f).stat().st_size for f in train_files),
            "val_bytes": sum((root / f).stat().st_size for f in val_files),
            "train_tokens": len(data.train_tokens), "val_tokens": len(data.val_tokens),
            "eval_windows": len(windows), "window_tokens": settings["seq_len"],
            "trained_tokens_per_model": trained,
            "passes_over_training_tokens": round(trained / len(data.train_tokens), 3)}

COUNT_STYLES = {"static n-gram": "0.55", "n-gram + unigram cache": "C2",
                "n-gram + n-gram cache": "C4"}
FAMILY_COLORS = {"transformer": "C3", "lstm": "C0", "gru": "C1", "min_gru": "C5",
                 "min_lstm": "C6", "lru": "C8", "rg_lru": "C9"}


def _band(axis, centers, curve, color, label, style="-"):
    axis.plot(centers, curve["mean"], style, marker="o", ms=3, color=color, label=label)
    axis.fill_between(centers, curve["low"], curve["high"], color=color, alpha=0.2, lw=0)


def _size_styles(runs):
    """Line style per run: solid for each family's largest, dashed, dotted... below it."""
    styles = {}
    for family in FAMILY_TITLES:
        members = sorted((r["non_embedding_parameters"], label) for label, r in runs.items()
                         if r["family"] == family)
        for rank, (_, label) in enumerate(reversed(members)):
            styles[label] = ("-", "--", ":", "-.")[rank % 4]
    return styles


def _largest(runs):
    """Each family's run with the most non-embedding parameters."""
    return [max((label for label, r in runs.items() if r["family"] == family),
                key=lambda label: runs[label]["non_embedding_parameters"])
            for family in FAMILY_TITLES if any(r["family"] == family for r in runs.values())]


def _plot_scaling(axis, curves, runs):
    for family in FAMILY_TITLES:
        points = sorted((r["non_embedding_parameters"], curves[label]["window_loss"])
                        for label, r in runs.items() if r["family"] == family)
        if points:
            x, y = zip(*points)
            mean = [p["mean"] for p in y]
            error = [[m - p["low"] for m, p in zip(mean, y)],
                     [p["high"] - m for m, p in zip(mean, y)]]
            axis.errorbar(x, mean, yerr=error, fmt="o-", capsize=3, color=FAMILY_COLORS[family],
                          label=FAMILY_TITLES[family])
    axis.set(xscale="log", xlabel="non-embedding parameters",
             ylabel="mean loss over the window (nats/token)",
             title="(e) loss vs parameters, same tokens")


def plot(results):
    """(a) count models and (b) neural models per position, (c) the gain still to come after
    each position, (d) paired differences, (e) loss against non-embedding parameters; bands
    and bars are bootstrap 95% intervals over the windows."""
    import matplotlib.pyplot as plt

    centers = [np.sqrt(first * last) for first, last in results["bins"]]
    curves, runs, styles = results["per_position"], results["runs"], _size_styles(results["runs"])
    figure, axes = plt.subplots(2, 3, figsize=(17, 8.4))
    (counts, neural, remaining), (difference, scaling, linear) = axes
    for name, color in COUNT_STYLES.items():
        _band(counts, centers, curves[name], color, name)
    for label, r in runs.items():
        axis = linear if r["family"] in BLOCK_KINDS else neural
        _band(axis, centers, curves[label], FAMILY_COLORS[r["family"]], label, styles[label])
    for label in _largest(runs)[:1]:  # the largest Transformer, as the reference
        _band(linear, centers, curves[label], FAMILY_COLORS["transformer"], label)
    for label in ["n-gram + n-gram cache"] + _largest(runs):
        color = COUNT_STYLES.get(label) or FAMILY_COLORS[runs[label]["family"]]
        to_come = {key: values[:-1] for key, values in curves[label]["gain_to_last_bin"].items()}
        _band(remaining, centers[:-1], to_come, color, label)
    for name, curve in results["difference"].items():
        other = name.split(" - ")[1]
        _band(difference, centers, curve, FAMILY_COLORS[runs[other]["family"]], name, styles[other])
    for axis in (remaining, difference):
        axis.axhline(0, color="k", lw=0.8)
    _plot_scaling(scaling, curves, runs)
    tokens, last = results["data"]["window_tokens"], results["bins"][-1]
    for axis, title, ylabel in (
            (counts, "(a) count models: does the data reward long context?", "loss (nats/token)"),
            (neural, "(b) Transformers and classic RNNs, same windows", "loss (nats/token)"),
            (linear, "(f) linear recurrences in residual blocks", "loss (nats/token)"),
            (remaining, f"(c) gain still to come: bin minus positions {last[0]}-{last[1]}",
             "loss difference (nats/token)"),
            (difference, "(d) Transformer minus recurrent, paired",
             "loss difference (nats/token)")):
        axis.set(xscale="log", xlabel=f"position in the {tokens}-token window", ylabel=ylabel,
                 title=title)
    for axis in (counts, neural, remaining, difference, scaling, linear):
        axis.legend(fontsize=7, handlelength=3)
    if not any(r["family"] in BLOCK_KINDS for r in runs.values()):
        figure.delaxes(linear)  # a report from before the linear recurrences joined
    figure.tight_layout()
    return figure


if __name__ == "__main__":
    main(sys.modules[__name__])
