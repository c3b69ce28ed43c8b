"""Writes ``05_rnn_vs_transformer.ipynb`` next to this file, outputs stripped.

The notebook's cells live here as plain text, so a change to the notebook is a readable diff
of this file; ``tests/test_notebooks.py`` checks the committed ``.ipynb`` is this script's
output. Run ``python notebooks/build_05_rnn_vs_transformer.py`` after editing a cell.
"""

from pathlib import Path

import notebook_format  # notebooks/notebook_format.py, beside this file

NOTEBOOK_PATH = Path(__file__).with_name("05_rnn_vs_transformer.ipynb")

CELLS = [
    ("markdown", r"""
    # RNN vs Transformer: loss per parameter, and loss along the context

    Kaplan et al. (2020, *Scaling Laws for Neural Language Models*, Fig. 7) compared LSTMs and
    Transformers trained on web text (WebText2, 1024-token contexts) and reported two things:

    - at the same number of **non-embedding parameters**, Transformers reach a lower loss, and
      the gap grows with size;
    - an LSTM's loss stops improving after the first ~100 tokens of its context, while a
      Transformer's **per-position loss** keeps falling along the whole context.

    This notebook runs the same two measurements on characters with models of $10^4$ to $10^5$
    parameters trained for a few hundred steps. At this scale the result may well differ from the
    paper's; the full reproduction and its measured outcome are in
    [docs/reproductions.md](../docs/reproductions.md)
    (`python -m experiments.reproductions.rnn_vs_transformer`).
    """),
    ("code", r"""
    import os
    import tempfile
    from pathlib import Path

    NUM_STEPS = int(os.environ.get("SEQJAX_NOTEBOOK_STEPS", 300))
    BATCH_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_BATCH_SIZE", 16))
    SEQ_LEN = int(os.environ.get("SEQJAX_NOTEBOOK_SEQ_LEN", 128))  # context length
    EMBED_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_EMBED_SIZE", 32))  # LSTM token embedding
    HIDDEN_SIZE = int(os.environ.get("SEQJAX_NOTEBOOK_HIDDEN_SIZE", 128))  # the largest LSTM
    SIZES_PER_FAMILY = int(os.environ.get("SEQJAX_NOTEBOOK_SIZES_PER_FAMILY", 2))
    halvings = range(SIZES_PER_FAMILY - 1, -1, -1)  # e.g. 1, 0: half size, then full size
    LSTM_SIZES = [HIDDEN_SIZE // 2**i for i in halvings]  # hidden sizes H
    TRANSFORMER_SIZES = [(2, HIDDEN_SIZE // 2**(i + 1)) for i in halvings]  # (layers, width W)
    EVAL_WINDOWS, EVAL_OFFSETS = 8, 4  # validation: 8 batches of windows at 4 offsets
    SEED = 0
    OUTPUT_DIR = Path(os.environ.get("SEQJAX_NOTEBOOK_OUTPUT_DIR",
                                     Path(tempfile.gettempdir()) / "seqjax_notebooks"))
    """),
    ("code", r"""
    import functools
    import time

    import matplotlib

    matplotlib.use("Agg")  # write PNG files; works with or without a display
    import jax
    import jax.numpy as jnp
    import matplotlib.pyplot as plt
    import numpy as np
    from IPython.display import Image, display

    from experiments.reproductions import language_models as lm
    from experiments.reproductions.rnn_vs_transformer import LEARNING_RATES, log_bins
    from seqjax.data import resolve_data_dir
    from seqjax.evaluation import per_position_loss
    from seqjax.models import build_model
    from seqjax.models.ngram import NGramLM
    from seqjax.training.language_modeling import language_model_loss, training_batch
    from seqjax.training.optimizer import make_optimizer
    from seqjax.training.step import init_train_state, train_step

    OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
    """),
    ("markdown", r"""
    ## 1. Data

    Tiny Shakespeare when it is in the data folder (`$SEQJAX_DATA_DIR`), otherwise the source code
    of Python's standard library; characters, the first 90% for training.
    """),
    ("code", r"""
    has_shakespeare = (resolve_data_dir() / "tinyshakespeare.txt").is_file()
    settings = {"corpus": "tiny_shakespeare" if has_shakespeare else "python_stdlib",
                "num_steps": NUM_STEPS, "batch_size": BATCH_SIZE, "seq_len": SEQ_LEN,
                "eval_every": NUM_STEPS}
    with tempfile.TemporaryDirectory() as folder:  # holds the tokenizer file; data stays in memory
        data = lm.language_data(settings, folder)
    vocab_size = data.tokenizer.vocab_size
    print(f"{settings['corpus']}: {len(data.train_tokens):,} training / "
          f"{len(data.val_tokens):,} validation characters, vocabulary of {vocab_size}")
    """),
    ("markdown", r"""
    ## 2. Counting parameters without the embeddings

    Kaplan et al. count **non-embedding** parameters $N$: the token table, the position table and
    the vocabulary read-out are left out, because they scale with the vocabulary and the context
    rather than with the model's capacity to compute. For a one-layer LSTM with embedding size
    $E$ and hidden size $H$ (four gates, each with $W_h$, $W_x$ and a bias):

    $$N_\text{LSTM} = 4H(H + E + 1).$$

    A pre-LN Transformer layer of width $W$ has $W^Q, W^K, W^V, W^O$ ($4W^2 + 4W$), an MLP of
    hidden width $4W$ ($8W^2 + 5W$) and two LayerNorms ($4W$); with $L$ layers and the final
    LayerNorm,

    $$N_\text{Transformer} = L(12W^2 + 13W) + 2W \approx 12 L W^2 .$$

    `parameter_counts` reads the counts from the model's parameter shapes (no compilation); the
    formulas must agree.
    """),
    ("code", r"""
    # (family, label, model section, the formula's non-embedding count)
    models = [("lstm", f"LSTM H={h}", lm.recurrent_model("lstm", h, EMBED_SIZE),
               4 * h * (h + EMBED_SIZE + 1)) for h in LSTM_SIZES]
    models += [("transformer", f"Transformer {n}x{w}", lm.transformer(n, w),
                n * (12 * w**2 + 13 * w) + 2 * w) for n, w in TRANSFORMER_SIZES]

    print(f"{'model':18s} {'total':>9s} {'non-embedding':>14s}")
    non_embedding = {}
    for family, label, model, formula in models:
        total, non_embedding[label] = lm.parameter_counts(lm.lm_config(settings, model), vocab_size)
        assert non_embedding[label] == formula, (label, non_embedding[label], formula)
        print(f"{label:18s} {total:9,d} {non_embedding[label]:14,d}")
    """),
    ("markdown", r"""
    ## 3. Training every model on the same tokens

    `lm_config` is the reproduction's config: random windows of `SEQ_LEN + 1` characters that are
    a pure function of `(seed, step)`, so every model sees the same batches; AdamW with warmup
    and cosine decay, at the reproduction's learning rate for each family. The loop below is the
    core of `seqjax.training.train_and_evaluate` with its logging, evaluation and checkpoints left
    out (the reproduction calls `train_and_evaluate` itself).
    """),
    ("code", r"""
    def train(family, model_section):
        config = lm.lm_config(settings, model_section)
        config.optim.learning_rate = LEARNING_RATES[family]
        config.optim.end_learning_rate = LEARNING_RATES[family] / 10
        model = build_model(config.model, vocab_size, config.seq_len)
        optimizer, _ = make_optimizer(config.optim, config.num_steps)
        tokens = jnp.zeros((config.batch_size, config.seq_len), jnp.int32)
        params = model.init(jax.random.PRNGKey(config.seed), tokens)["params"]
        state = init_train_state(params, optimizer, model.initial_carry(config.batch_size))
        loss_fn = functools.partial(language_model_loss, model)
        step_fn = jax.jit(functools.partial(train_step, loss_fn, optimizer, config.seed))
        losses, diverged_at = [], jnp.zeros((), jnp.int32)
        for step in range(config.num_steps):
            batch = training_batch(config, data.train_tokens, step)
            state, loss, diverged_at = step_fn(state, diverged_at, batch)
            losses.append(loss)
        return model, state.params, [float(loss) for loss in losses]


    trained = {}
    for family, label, model_section, _ in models:
        start = time.perf_counter()
        trained[label] = train(family, model_section)
        losses = trained[label][2]
        print(f"{label:18s} training loss {losses[0]:.3f} -> {np.mean(losses[-10:]):.3f} "
              f"nats/char ({time.perf_counter() - start:.1f} s)")
    """),
    ("markdown", r"""
    ## 4. Loss against non-embedding parameters

    Every model is evaluated on the same validation windows, each one started afresh (the LSTM
    from the zero state, the Transformer with nothing before the window). For scale, the
    **n-gram floor**: the best add-$k$ count model $p(w \mid c) = (\mathrm{count}(c, w) + k) /
    (\mathrm{count}(c) + kV)$ over the previous $n - 1$ characters, its order chosen on the
    validation split itself (which flatters it).
    """),
    ("code", r"""
    position_losses = {
        label: per_position_loss(model, params, data.val_tokens, batch_size=BATCH_SIZE,
                                 seq_len=SEQ_LEN, max_windows=EVAL_WINDOWS,
                                 num_offsets=EVAL_OFFSETS)
        for label, (model, params, _) in trained.items()
    }
    val_loss = {label: float(losses.mean()) for label, losses in position_losses.items()}

    ngram_losses = {
        order: NGramLM.fit(data.train_tokens, order, vocab_size, k=0.1).loss(data.val_tokens)
        for order in (1, 2, 3, 4, 5)
    }
    best_order = min(ngram_losses, key=ngram_losses.get)
    ngram_floor = ngram_losses[best_order]
    for label, loss in val_loss.items():
        print(f"{label:18s} N = {non_embedding[label]:7,d}   validation {loss:.3f} nats/char")
    print(f"{best_order}-gram (k = 0.1){'':6s}validation {ngram_floor:.3f} nats/char")
    """),
    ("code", r"""
    COLORS = {"lstm": "C0", "transformer": "C3"}
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for family, title in (("lstm", "LSTM"), ("transformer", "Transformer")):
        labels = [label for kind, label, _, _ in models if kind == family]
        axis.plot([non_embedding[label] for label in labels], [val_loss[label] for label in labels],
                  "o-", color=COLORS[family], label=title)
    axis.axhline(ngram_floor, color="gray", linestyle="--", label=f"{best_order}-gram")
    axis.set(xscale="log", xlabel="non-embedding parameters",
             ylabel="validation loss (nats/char)",
             title=f"the same {NUM_STEPS} batches of {BATCH_SIZE} x {SEQ_LEN} characters")
    axis.legend()
    figure.tight_layout()
    scaling_path = OUTPUT_DIR / "05_loss_vs_parameters.png"
    figure.savefig(scaling_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(scaling_path)))
    """),
    ("markdown", r"""
    ## 5. Loss along the context

    The per-position loss of the largest LSTM and the largest Transformer,

    $$\ell(t) = \frac{1}{N} \sum_{n=1}^{N} -\log p\big(y^{(n)}_{t+1} \mid y^{(n)}_1 \ldots
    y^{(n)}_t\big), \qquad t = 1 \ldots T,$$

    averaged over the $N$ validation windows, shows how much each model gains from $t$
    characters of context. On a log-$x$ axis the paper's Transformer curve keeps sloping down to
    the end of the context while the LSTM's flattens. The points are averages over bins of
    doubling width (1, 2, 3-4, 5-8, ...), so each rests on many windows.
    """),
    ("code", r"""
    largest = {family: max((label for kind, label, _, _ in models if kind == family),
                           key=non_embedding.get) for family in COLORS}
    figure, axis = plt.subplots(figsize=(6.5, 4))
    for family, label in largest.items():
        positions, losses = log_bins(position_losses[label])
        axis.plot(positions, losses, "o-", ms=3, color=COLORS[family],
                  label=f"{label} (N = {non_embedding[label]:,})")
    axis.axhline(ngram_floor, color="gray", linestyle="--", label=f"{best_order}-gram")
    axis.set(xscale="log", xlabel="position in the context (characters)",
             ylabel="loss at that position (nats/char)", title="per-position validation loss")
    axis.legend()
    figure.tight_layout()
    position_path = OUTPUT_DIR / "05_per_position_loss.png"
    figure.savefig(position_path, dpi=100)
    plt.close(figure)
    display(Image(filename=str(position_path)))

    for label in largest.values():
        losses = position_losses[label]
        print(f"{label:18s} loss at position 1: {losses[0]:.3f}, mean over the last quarter: "
              f"{losses[-SEQ_LEN // 4:].mean():.3f} nats/char")
    """),
    ("markdown", r"""
    ## What to read from this

    Two sizes per family, one seed, a few hundred steps and $10^4$-$10^5$ parameters: neither
    family is near convergence, so these plots compare early training as much as architectures,
    and the paper's claim is about a trend over several orders of magnitude of size. Train
    longer (`SEQJAX_NOTEBOOK_STEPS`) and larger (`SEQJAX_NOTEBOOK_HIDDEN_SIZE`), or run the
    reproduction ([docs/reproductions.md](../docs/reproductions.md) has its measured outcome),
    before drawing a conclusion.
    """),
]


def notebook_text():
    """The ``.ipynb`` file's exact contents."""
    return notebook_format.notebook_text(CELLS)


if __name__ == "__main__":
    notebook_format.write_notebook(NOTEBOOK_PATH, CELLS)
