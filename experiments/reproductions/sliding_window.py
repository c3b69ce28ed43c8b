"""Generation past the context window: what each way of sliding it costs in loss.

    python -m experiments.reproductions.sliding_window --workdir=runs/sliding_window [--budget=...]

Two character GPTs of context ``C``, trained alike on Tiny Shakespeare, one with learned
positions and one with rotary positions. Each then reads validation texts of ``8 C + 1``
characters (``8 C`` predictions) through a decoding rule, by teacher forcing
(:func:`seqjax.generation.teacher_forced_losses`), and the loss at each position of the text
is averaged over the texts. The rules
(:meth:`seqjax.models.transformer_lm.TransformerLM.init_decode_state`):

- crop: nanoGPT's rule, the model run on the last ``C`` tokens at every step
  (``refill_length = C - 1``; with the KV cache, a rebuild at every step);
- rebuild from ``K``: when the cache is full it is rebuilt from the last ``K`` tokens, so the
  window shrinks to ``K + 1`` tokens and grows back to ``C`` (``K = C / 2`` is the default);
- ring buffer (rotary only, its default): every layer attends to the last ``C`` positions, at
  the cost of one token per token. For more than one layer this is not the crop: a cached key
  was computed from a window that reached further back.

Up to position ``C`` every rule is the model itself, so the curves start together. Beside
them the report keeps each model's loss at each position of its window over the validation
split (:func:`seqjax.evaluation.per_position_loss`): the crop always predicts from the last
position, rebuilding from ``K`` from positions ``K + 1 .. C``.
"""

import sys
from functools import partial

import jax
import numpy as np

from experiments.configs.defaults import transformer_model
from experiments.reproductions import language_models as lm
from experiments.reproductions.command import main
from seqjax.evaluation import per_position_loss
from seqjax.generation import model_step_fn, teacher_forced_losses
from seqjax.text_generation import load_run

BUDGETS = {
    "tiny": {"corpus": "python_stdlib", "num_steps": 4, "batch_size": 2, "seq_len": 16,
             "eval_every": 4, "eval_batches": 2, "num_layers": 1, "num_heads": 1, "width": 16,
             "num_texts": 2, "text_contexts": 3, "window_offsets": 1},
    "cpu": {"corpus": "tiny_shakespeare", "num_steps": 2000, "batch_size": 12, "seq_len": 64,
            "eval_every": 500, "num_layers": 4, "num_heads": 4, "width": 128,
            "num_texts": 128, "text_contexts": 8, "window_offsets": 4},
    "gpu": {"corpus": "tiny_shakespeare", "num_steps": 5000, "batch_size": 64, "seq_len": 256,
            "eval_every": 1000, "num_layers": 6, "num_heads": 6, "width": 384,
            "num_texts": 64, "text_contexts": 8, "window_offsets": 4},
}
POSITIONALS = ("learned", "rotary")
CROP = "crop (nanoGPT)"  # the rule every other one is compared with
CLAIM = ("Past its context a Transformer slides its window. nanoGPT's crop keeps the last C "
         "tokens but recomputes them at every step; rebuilding the KV cache from the last K "
         "tokens is cheaper but sees fewer tokens after each rebuild; with rotary positions a "
         "ring-buffer cache keeps C tokens at the cost of one but computes sliding-window "
         "attention, not the crop.")


def sliding_rules(positional, context_length):
    """``{name: refill_length}`` of the rules a model with ``positional`` positions slides by
    (``None``: the ring buffer)."""
    named = {CROP: context_length - 1,
             f"rebuild from K={context_length // 2}": context_length // 2,
             f"rebuild from K={context_length // 4}": context_length // 4}
    return {**named, "ring buffer": None} if positional == "rotary" else named


def train(settings, positional, run_dir):
    """Train (or resume) the GPT with ``positional`` positions; its validation records."""
    model = transformer_model(num_layers=settings["num_layers"], num_heads=settings["num_heads"],
                              width=settings["width"], dropout=0.0, use_bias=False)
    model.positional = positional
    config = lm.lm_config(settings, model)
    config.optim.learning_rate, config.optim.end_learning_rate = 1e-3, 1e-4
    config.optim.b2 = 0.99
    return lm.train_lm(config, run_dir)


def validation_texts(val_tokens, num_texts, length):
    """``int32 [num_texts, length]``: texts starting at evenly spaced places of the split."""
    if len(val_tokens) < length:
        raise ValueError(f"the validation split has {len(val_tokens)} tokens, fewer than one "
                         f"text of {length}: lower text_contexts")
    starts = np.linspace(0, len(val_tokens) - length, num_texts).astype(int)
    return np.stack([val_tokens[s:s + length] for s in starts]).astype(np.int32)


@partial(jax.jit, static_argnames=("model", "refill_length"))
def rule_losses(model, params, texts, refill_length):
    """``[B, T - 1]``: the next-token losses of ``texts [B, T]`` decoded by one rule."""
    state = model.init_decode_state(texts.shape[0], texts.shape[1] - 1, refill_length)
    return teacher_forced_losses(model_step_fn(model, {"params": params}), state, texts)


def position_losses_by_rule(run, texts):
    """``{rule: {refill_length, losses [T - 1], mean within / past the context, and past the
    context the mean difference to the crop over the texts with its standard error}}``."""
    context = run.model.context_length
    refill_lengths = sliding_rules(run.model.positional, context)
    by_rule = {name: np.asarray(rule_losses(run.model, run.params, texts, refill_length),
                                np.float64)
               for name, refill_length in refill_lengths.items()}
    crop_past = by_rule[CROP][:, context:].mean(1)  # [texts]
    results = {}
    for name, losses in by_rule.items():
        refill_length = refill_lengths[name]
        past = losses[:, context:].mean(1)
        difference = past - crop_past
        results[name] = {
            "refill_length": refill_length, "losses": losses.mean(0).tolist(),
            "mean_within_context": float(losses[:, :context].mean()),
            "mean_past_context": float(past.mean()),
            "past_context_minus_crop": float(difference.mean()),
            "standard_error": (float(difference.std(ddof=1) / np.sqrt(len(difference)))
                               if len(difference) > 1 else None),
        }
    return results


def plot(results):
    """Each rule's loss minus the crop's at each position of the text (the texts' own
    difficulty cancels), one panel per positional kind; then each model's loss at each
    position of its window."""
    import matplotlib.pyplot as plt

    context = results["context_length"]
    width = max(1, context // 16)  # positions per plotted point
    figure, axes = plt.subplots(1, len(POSITIONALS) + 1, figsize=(15, 3.9),
                                gridspec_kw={"width_ratios": [3, 3, 2]})
    for axis, positional in zip(axes, POSITIONALS):
        plot_rule_differences(axis, results["models"][positional], context, width)
        axis.set_title(f"{positional} positions (best val loss "
                       f"{results['models'][positional]['best_val_loss']:.3f})")
    axes[0].set_ylabel(f"loss minus the crop's (nats/char)\nmean over {results['num_texts']} "
                       f"texts, bins of {width}")
    axes[1].sharey(axes[0])
    for positional, color in zip(POSITIONALS, ("C0", "C3")):
        losses = results["models"][positional]["window_position_losses"]
        axes[2].plot(np.arange(1, len(losses) + 1), losses, "-", lw=1, color=color,
                     label=positional)
    axes[2].set(xlabel="position in the window (the crop predicts from the last)",
                ylabel="loss (nats/char), validation split",
                title="loss at each position of the window")
    axes[2].set_ylim(top=np.percentile(
        [x for m in results["models"].values() for x in m["window_position_losses"]], 95))
    axes[2].legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_rule_differences(axis, model_results, context, width):
    """One line per rule: its loss minus the crop's, averaged over bins of ``width``."""
    by_rule = model_results["rules"]
    crop = np.asarray(by_rule[CROP]["losses"])
    for name, rule in by_rule.items():
        difference = np.asarray(rule["losses"]) - crop
        usable = len(difference) // width * width
        means = difference[:usable].reshape(-1, width).mean(1)
        centers = np.arange(len(means)) * width + (width + 1) / 2
        error = rule["standard_error"] or 0.0
        axis.plot(centers, means, "-", lw=1.2,
                  label=f"{name}: {rule['mean_past_context']:.4f} "
                        f"({rule['past_context_minus_crop']:+.4f} ± {error:.4f})")
    axis.axvline(context, color="gray", ls=":", lw=1)
    axis.set(xlabel=f"position in the text (characters; context {context})")
    axis.legend(fontsize=7, title_fontsize=7,
                title="rule: mean loss past the context (minus the crop's ± s.e.)")


def run(workdir, settings):
    """Both models trained, then every rule's loss at each position of the validation texts."""
    data = lm.language_data(settings, workdir / "data")
    context = settings["seq_len"]
    texts = validation_texts(data.val_tokens, settings["num_texts"],
                             settings["text_contexts"] * context + 1)
    models = {}
    for positional in POSITIONALS:
        records = train(settings, positional, workdir / positional)
        trained = load_run(workdir / positional)  # its best checkpoint
        window_losses = per_position_loss(
            trained.model, trained.params, data.val_tokens, batch_size=settings["batch_size"],
            seq_len=context, max_windows=settings.get("eval_batches", 0),
            num_offsets=settings["window_offsets"])
        models[positional] = {"best_val_loss": min(r["val_loss"] for r in records),
                              "window_position_losses": window_losses.tolist(),
                              "rules": position_losses_by_rule(trained, texts)}
    return {"context_length": context, "num_texts": len(texts), "text_length": texts.shape[1],
            "models": models}


if __name__ == "__main__":
    main(sys.modules[__name__])
