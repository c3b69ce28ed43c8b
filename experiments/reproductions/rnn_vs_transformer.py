"""RNN vs Transformer (Kaplan et al. 2020, Fig. 7, at small scale).

    python -m experiments.reproductions.rnn_vs_transformer --workdir=runs/rnn_vs_transformer

(a) Validation loss against non-embedding parameter count for one-layer LSTMs and
Transformers of four sizes each, every model trained on the same token budget (the same
batches of 256-character windows); (b) the loss at each position 1..256 of the context
(:func:`seqjax.evaluation.per_position_loss`, state reset at every window) of the largest
LSTM and the largest Transformer, whose non-embedding counts are matched. Non-embedding
parameters leave out the token table, the positions and the vocabulary read-out.
"""

import sys

import numpy as np

from experiments.reproductions import language_models as lm
from experiments.reproductions.command import main
from seqjax.evaluation import per_position_loss
from seqjax.text_generation import load_run

BUDGETS = {
    "tiny": {"corpus": "python_stdlib", "num_steps": 4, "batch_size": 2, "seq_len": 16,
             "eval_every": 4, "eval_batches": 2, "embed_size": 8, "lstm_sizes": [8],
             "transformer_sizes": [[1, 8]], "per_position_windows": 2,
             "per_position_offsets": 2},
    "cpu": {"corpus": "tiny_shakespeare", "num_steps": 500, "batch_size": 8, "seq_len": 256,
            "eval_every": 250, "embed_size": 64, "lstm_sizes": [32, 128, 256, 416],
            "transformer_sizes": [[1, 32], [2, 64], [3, 96], [4, 128]],
            "per_position_windows": 0, "per_position_offsets": 8},
    "gpu": {"corpus": "tiny_shakespeare", "num_steps": 2000, "batch_size": 32, "seq_len": 256,
            "eval_every": 500, "embed_size": 64, "lstm_sizes": [64, 256, 512, 1024],
            "transformer_sizes": [[2, 64], [4, 128], [4, 256], [6, 256]],
            "per_position_windows": 0, "per_position_offsets": 8},
}
LEARNING_RATES = {"lstm": 2e-3, "transformer": 1e-3}
FAMILY_TITLES = {"lstm": "LSTM", "transformer": "Transformer"}
CLAIM = ("Transformers use parameters better than LSTMs, and their per-token loss keeps falling "
         "along the context while the LSTM's stops after a short one (Kaplan et al. 2020, Fig. 7).")


def model_sections(settings):
    """``[(family, label, model section)]``: the LSTMs, then the Transformers."""
    lstms = [("lstm", f"LSTM H={h}", lm.recurrent_model("lstm", h, settings["embed_size"]))
             for h in settings["lstm_sizes"]]
    transformers = [("transformer", f"Transformer {n}x{w}", lm.transformer(n, w))
                    for n, w in settings["transformer_sizes"]]
    return lstms + transformers


def train_family_member(settings, family, model, run_dir, vocab_size):
    """Train one model at its family's learning rate; its parameter count and losses."""
    config = lm.lm_config(settings, model)
    config.optim.learning_rate = LEARNING_RATES[family]
    config.optim.end_learning_rate = LEARNING_RATES[family] / 10
    records = lm.train_lm(config, run_dir)
    return {"non_embedding_parameters": lm.parameter_counts(config, vocab_size)[1],
            "val_loss": records[-1]["val_loss"], "best_val_loss": min(r["val_loss"] for r in records)}


def position_losses(settings, run_dir, val_tokens):
    """``[seq_len]`` per-position validation loss of the best checkpoint in ``run_dir``."""
    run = load_run(run_dir)
    return per_position_loss(run.model, run.params, val_tokens, batch_size=settings["batch_size"],
                             seq_len=settings["seq_len"], max_windows=settings["per_position_windows"],
                             num_offsets=settings["per_position_offsets"])


def log_bins(losses):
    """``(centers, means)``: the per-position losses averaged over bins 1, 2, 3-4, 5-8, ...
    (doubling widths), so each point of the log-x plot rests on many windows."""
    losses = np.asarray(losses)
    edges = [1, 2]  # bins [1, 2), [2, 3), [3, 5), [5, 9), ...
    while edges[-1] <= len(losses):
        edges.append(2 * edges[-1] - 1)
    bins = [(a, min(b, len(losses) + 1)) for a, b in zip(edges, edges[1:]) if a <= len(losses)]
    centers = [np.sqrt(a * (b - 1)) for a, b in bins]
    return centers, [losses[a - 1: b - 1].mean() for a, b in bins]


def plot(results):
    """(a) best validation loss against non-embedding parameters; (b) per-position loss."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 3.9))
    for family, color in (("lstm", "C0"), ("transformer", "C3")):
        points = sorted((r["non_embedding_parameters"], r["best_val_loss"])
                        for r in results["runs"].values() if r["family"] == family)
        left.plot(*zip(*points), "o-", color=color, label=FAMILY_TITLES[family])
    left.set(xscale="log", xlabel="non-embedding parameters",
             ylabel="best validation loss (nats/char)", title="(a) loss vs parameters, same tokens")
    left.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
    for (label, losses), color in zip(results["per_position_loss"].items(), ("C0", "C3")):
        right.plot(*log_bins(losses), "o-", ms=3, color=color, label=label)
    right.set(xscale="log", xlabel="position in the context (characters)",
              ylabel="loss at that position (nats/char)", title="(b) per-position loss")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    figure.tight_layout()
    return figure


def run(workdir, settings):
    """Every size of both families trained, then the largest pair's per-position loss."""
    data = lm.language_data(settings, workdir / "data")
    runs = {}
    for family, label, model in model_sections(settings):
        run_name = label.replace(" ", "_").replace("=", "")
        runs[label] = {"family": family, "run_dir": run_name,  # relative to the workdir
                       **train_family_member(settings, family, model, workdir / run_name,
                                             data.tokenizer.vocab_size)}
    largest = [max((item for item in runs.items() if item[1]["family"] == family),
                   key=lambda item: item[1]["non_embedding_parameters"])
               for family in FAMILY_TITLES]
    positions = {label: position_losses(settings, workdir / run["run_dir"], data.val_tokens).tolist()
                 for label, run in largest}
    return {"runs": runs, "per_position_loss": positions}


if __name__ == "__main__":
    main(sys.modules[__name__])
