"""Gated vs plain recurrent cells at equal parameter counts (Chung et al. 2014), with the
n-gram floor beside them.

    python -m experiments.reproductions.gated_vs_plain --workdir=runs/gated_vs_plain [--budget=...]

A tanh (Elman) RNN, a GRU and an LSTM character language model on Tiny Shakespeare, each
with one layer whose width gives the same total parameter count as the LSTM of the budget
(searched by :func:`language_models.matched_hidden_size`), trained on the same batches;
validation loss (nats/char, the whole validation split) against training steps, and the
best add-k n-gram model (:mod:`seqjax.models.ngram`) as a horizontal line.
"""

import sys

from experiments.reproductions import language_models as lm
from experiments.reproductions.command import main

CELLS = ("elman", "gru", "lstm")
TITLES = {"elman": "tanh RNN", "gru": "GRU", "lstm": "LSTM"}
BUDGETS = {
    "tiny": {"corpus": "python_stdlib", "num_steps": 4, "batch_size": 4, "seq_len": 16,
             "eval_every": 2, "eval_batches": 2, "embed_size": 8, "lstm_hidden_size": 16,
             "ngram_orders": [1, 2]},
    "cpu": {"corpus": "tiny_shakespeare", "num_steps": 1500, "batch_size": 32, "seq_len": 128,
            "eval_every": 250, "embed_size": 64, "lstm_hidden_size": 128,
            "ngram_orders": [1, 2, 3, 4, 5, 6]},
    "gpu": {"corpus": "tiny_shakespeare", "num_steps": 5000, "batch_size": 64, "seq_len": 128,
            "eval_every": 500, "embed_size": 64, "lstm_hidden_size": 512,
            "ngram_orders": [1, 2, 3, 4, 5, 6]},
}
CLAIM = ("At the same number of parameters the gated cells (GRU, LSTM) beat the tanh RNN, and GRU "
         "and LSTM are close (Chung et al. 2014, Fig. 2-3).")


def matched_models(settings, vocab_size):
    """``{cell: model section}`` of equal total parameter count (the LSTM's)."""
    reference = lm.lm_config(settings, lm.recurrent_model(
        "lstm", settings["lstm_hidden_size"], settings["embed_size"]))
    target = lm.parameter_counts(reference, vocab_size)[0]
    return {cell: lm.recurrent_model(
                cell, lm.matched_hidden_size(settings, cell, target, vocab_size),
                settings["embed_size"]) for cell in CELLS}


def plot(results):
    """Validation loss against steps per cell, and the n-gram floor (from the JSON)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.8, 3.8))
    for cell in CELLS:
        run = results[cell]
        steps, losses = zip(*run["curve"])
        axis.plot(steps, losses, "o-", ms=3,
                  label=f"{TITLES[cell]} (H={run['hidden_size']}, {run['parameters']:,} params)")
    floor = results["ngram_floor"]
    axis.axhline(floor["val_loss"], color="k", ls="--", lw=1,
                 label=f"{floor['order']}-gram, add-{floor['k']:g} (best count model)")
    axis.set(xlabel="training step", ylabel="validation loss (nats/char)",
             title="Equal parameter counts, Tiny Shakespeare")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def run(workdir, settings):
    """The three matched cells trained on the same batches, and the n-gram floor."""
    data = lm.language_data(settings, workdir / "data")
    results = {}
    for cell, model in matched_models(settings, data.tokenizer.vocab_size).items():
        config = lm.lm_config(settings, model)
        curve = [(r["step"], r["val_loss"]) for r in lm.train_lm(config, workdir / cell)]
        results[cell] = {"hidden_size": model.hidden_size,
                         "parameters": lm.parameter_counts(config, data.tokenizer.vocab_size)[0],
                         "final_val_loss": curve[-1][1], "best_val_loss": min(l for _, l in curve),
                         "curve": curve}
    results["ngram_floor"] = lm.ngram_floor(data, settings["ngram_orders"])
    results["ranking_by_best_val_loss"] = sorted(CELLS, key=lambda c: results[c]["best_val_loss"])
    return results


if __name__ == "__main__":
    main(sys.modules[__name__])
