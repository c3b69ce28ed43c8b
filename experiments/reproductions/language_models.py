"""What the language-model reproductions share: configs, parameter counts, the n-gram floor.

``gated_vs_plain.py``, ``long_context.py`` and ``sliding_window.py`` train language models
through :func:`seqjax.training.train_and_evaluate` (each run in its own sub-folder, resumable),
and compare them with the count n-gram model of :mod:`seqjax.models.ngram`.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from experiments.configs.defaults import base_config, transformer_model
from seqjax.language_data import prepare_language_data
from seqjax.training.metrics_log import read_metrics
from seqjax.models import build_model
from seqjax.models.ngram import NGramLM
from seqjax.training import train_and_evaluate

# Top-level parameter groups that are (un)embeddings: the token table, positions, the
# vocabulary-sized read-out (tied to the token table in the Transformer).
EMBEDDING_GROUPS = ("embed", "head", "token_embedding", "position_embedding")
NGRAM_GRID = {"orders": (1, 2, 3, 4, 5, 6), "ks": (1.0, 0.1, 0.01)}


def lm_config(settings, model):
    """A character-level LM config: the budget's data and schedule, the given ``model`` section."""
    config = base_config()
    config.data.corpus = settings["corpus"]
    config.data.batching = "random"  # the same windows for every model, state reset per window
    for key in ("num_steps", "batch_size", "seq_len", "eval_every"):
        config[key] = settings[key]
    config.log_every = config.eval_every
    config.checkpoint_every = config.eval_every
    config.eval_batches = settings.get("eval_batches", 0)
    config.optim.warmup_steps = min(100, config.num_steps // 10)
    config.progress_bar = False
    config.model = model
    return config


def recurrent_model(kind, hidden_size, embed_size, num_layers=1, block="none"):
    """The ``model`` section of a recurrent LM (one plain layer unless told otherwise;
    ``block="residual"``: ``num_layers`` of the papers' residual blocks)."""
    model = base_config().model
    model.kind, model.hidden_size, model.embed_size = kind, hidden_size, embed_size
    model.num_layers, model.block = num_layers, block
    return model


def transformer(num_layers, width):
    """The ``model`` section of a Transformer LM with heads of width 32."""
    return transformer_model(num_layers=num_layers, num_heads=max(1, width // 32), width=width)


def parameter_counts(config, vocab_size):
    """``(total, non_embedding)`` parameter counts of ``config.model`` (no compilation)."""
    model = build_model(config.model, vocab_size, config.seq_len)
    tokens = jnp.zeros((1, config.seq_len), jnp.int32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens, model.initial_carry(1))
    sizes = {group: sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))
             for group, tree in shapes["params"].items()}
    return sum(sizes.values()), sum(n for g, n in sizes.items() if g not in EMBEDDING_GROUPS)


def matched_hidden_size(settings, kind, target_total, vocab_size, non_embedding=False,
                        **model_options):
    """The recurrent width whose total parameter count (``non_embedding``: its count without
    the token table and read-out) is closest to ``target_total``.

    A recurrent LM's count is a quadratic ``a H^2 + b H + c`` in its width ``H`` (gates x
    ``H (H + E + 1)``, the read-out ``H V``, the rest constant; linear, ``a = 0``, for a single
    minGRU or minLSTM layer): read it off three widths, solve for the target, and keep the
    better of the two neighbouring integers. ``model_options``: ``num_layers``, ``block``.
    """
    def count(hidden_size):
        model = recurrent_model(kind, hidden_size, settings["embed_size"], **model_options)
        return parameter_counts(lm_config(settings, model), vocab_size)[int(non_embedding)]

    c1, c2, c3 = count(1), count(2), count(3)
    a = (c3 - 2 * c2 + c1) / 2
    b = c2 - c1 - 3 * a
    c = c1 - a - b
    if a == 0:
        root = (target_total - c) / b
    else:
        root = (-b + math.sqrt(b * b - 4 * a * (c - target_total))) / (2 * a)
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(candidates, key=lambda hidden_size: abs(count(hidden_size) - target_total))


def train_lm(config, run_dir):
    """Train (or resume, or reuse) ``config`` in ``run_dir``; its validation records."""
    train_and_evaluate(config, run_dir)
    return [r for r in read_metrics(run_dir) if "val_loss" in r]


def language_data(settings, run_dir, tokenizer="char", vocab_size=None):
    """The token splits and tokenizer of a run (the same for every model of a reproduction)."""
    config = lm_config(settings, recurrent_model("lstm", 8, 8))
    config.data.tokenizer = tokenizer
    config.data.vocab_size = vocab_size or config.data.vocab_size
    return prepare_language_data(config.data, run_dir, config.batch_size * config.seq_len + 1)


def ngram_floor(data, orders=NGRAM_GRID["orders"], ks=NGRAM_GRID["ks"]):
    """``{"order", "k", "val_loss", "table"}``: the best add-k n-gram of the grid ``orders``
    x ``ks`` on the validation split (chosen on it, so a floor that flatters the count model)."""
    table = []
    for order in orders:  # counted once per order; k only changes the smoothing
        counted = NGramLM.fit(data.train_tokens, order, data.tokenizer.vocab_size)
        table += [{"order": order, "k": k,
                   "val_loss": dataclasses.replace(counted, k=k).loss(data.val_tokens)}
                  for k in ks]
    return {**min(table, key=lambda row: row["val_loss"]), "table": table}
