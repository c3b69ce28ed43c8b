"""Character language models of every family at matched parameters and tokens: the recurrences
linear in the state beside the LSTM, the GRU and the Transformer (docs/parallel_recurrences.md).

    python -m experiments.char_lm_table --workdir=runs/char_lm_table [--budget=cpu]

Every model sees the same random windows of Tiny Shakespeare for the same number of steps and
is scored on the whole validation split (nats/char). Widths are chosen so that each model's
non-embedding parameter count is the Transformer's within 2% (the classic cells as one layer,
the linear recurrences in as many residual blocks as the Transformer has). Each model trains in
``WORKDIR/KIND`` (finished runs are reused on a rerun); the table goes to stdout and
``WORKDIR/char_lm_table.json``.
"""

import json
import sys
import time
from pathlib import Path

from absl import app, flags, logging

from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from experiments.freed_memory import keep_freed_memory
from experiments.reproductions import language_models as lm
from experiments.reproductions.command import describe_environment
from seqjax.errors import ConfigError

KINDS = ("transformer", "lstm", "gru", "min_gru", "min_lstm", "lru", "rg_lru")
BLOCK_KINDS = ("min_gru", "min_lstm", "lru", "rg_lru")  # in residual blocks, as their papers
TITLES = {"transformer": "Transformer", "lstm": "LSTM", "gru": "GRU", "min_gru": "minGRU",
          "min_lstm": "minLSTM", "lru": "LRU", "rg_lru": "Hawk (RG-LRU)"}
BUDGETS = {
    "tiny": {"corpus": "python_stdlib", "num_steps": 4, "batch_size": 4, "seq_len": 16,
             "eval_every": 4, "eval_batches": 2, "embed_size": 8, "transformer": [1, 16],
             "learning_rate": 3e-3},
    "cpu": {"corpus": "tiny_shakespeare", "num_steps": 1000, "batch_size": 32, "seq_len": 128,
            "eval_every": 500, "eval_batches": 0, "embed_size": 64, "transformer": [4, 96],
            "learning_rate": 3e-3},
}


def define_flags():
    """The command's flags (defined when it runs, so importing the module defines none)."""
    flags.DEFINE_string("workdir", "runs/char_lm_table", "Root folder of the runs, one per model.")
    flags.DEFINE_enum("budget", "cpu", list(BUDGETS), "Size of every run.")
    flags.DEFINE_list("kinds", list(KINDS), "Model kinds to train.")


def model_sections(settings, vocab_size, kinds=KINDS):
    """``{kind: model section}``, each matched to the Transformer's non-embedding count."""
    num_layers, width = settings["transformer"]
    transformer = lm.transformer(num_layers, width)
    target = lm.parameter_counts(lm.lm_config(settings, transformer), vocab_size)[1]
    sections = {"transformer": transformer}
    for kind in kinds:
        if kind == "transformer":
            continue
        layout = {"num_layers": num_layers, "block": "residual"} if kind in BLOCK_KINDS else {}
        hidden = lm.matched_hidden_size(settings, kind, target, vocab_size, non_embedding=True,
                                        **layout)
        sections[kind] = lm.recurrent_model(kind, hidden, settings["embed_size"], **layout)
    return {kind: sections[kind] for kind in kinds}


def describe(kind, model):
    if kind == "transformer":
        return f"{model.num_layers} x {model.width}, {model.num_heads} heads"
    if model.get("block", "none") == "residual":
        return f"{model.num_layers} residual blocks x {model.hidden_size}"
    return f"1 layer x {model.hidden_size}"


def run_table(workdir, settings, kinds=KINDS):
    """Train (or reuse) every kind; returns the report."""
    workdir = Path(workdir)
    data = lm.language_data(settings, workdir / "data")
    vocab_size = data.tokenizer.vocab_size
    rows = []
    for kind, model in model_sections(settings, vocab_size, kinds).items():
        config = lm.lm_config(settings, model)
        config.optim.learning_rate = settings["learning_rate"]
        config.optim.end_learning_rate = settings["learning_rate"] / 10
        start = time.time()
        records = lm.train_lm(config, workdir / kind)
        timing_path = workdir / kind / "timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
        rows.append({"kind": kind, "title": TITLES[kind], "layout": describe(kind, model),
                     "non_embedding_parameters": lm.parameter_counts(config, vocab_size)[1],
                     "val_loss": records[-1]["val_loss"],
                     "best_val_loss": min(r["val_loss"] for r in records),
                     "curve": [[r["step"], r["val_loss"]] for r in records],
                     "tokens": config.num_steps * config.batch_size * config.seq_len,
                     "wall_time_s": round(time.time() - start, 1), "timing": timing})
    return {"settings": settings, "environment": describe_environment(),
            "vocab_size": vocab_size, "rows": rows}


def markdown_table(report):
    lines = ["| model | layout | non-embedding params | val loss (nats/char) | wall time |",
             "|---|---|---|---|---|"]
    for row in report["rows"]:
        lines.append(f"| {row['title']} | {row['layout']} | {row['non_embedding_parameters']:,}"
                     f" | {row['val_loss']:.3f} | {row['wall_time_s']:.0f} s |")
    return "\n".join(lines)


def main(argv):
    del argv
    keep_freed_memory()
    logging.set_verbosity(logging.WARNING)
    enable_compilation_cache(flags.FLAGS.compilation_cache)
    with user_errors_as_messages("char_lm_table"):
        unknown = set(flags.FLAGS.kinds) - set(KINDS)
        if unknown:
            raise ConfigError(f"unknown --kinds {sorted(unknown)}: choose from {', '.join(KINDS)}")
        report = run_table(flags.FLAGS.workdir, BUDGETS[flags.FLAGS.budget], flags.FLAGS.kinds)
        path = Path(flags.FLAGS.workdir) / "char_lm_table.json"
        path.write_text(json.dumps(report, indent=1) + "\n")
        print(markdown_table(report))
        print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=flags_parser("char_lm_table"))
