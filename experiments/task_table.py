"""Train every generated task with every model family at the fixed small budget of its config,
and print the results tables of docs/tasks.md (chance baseline vs each model).

    python -m experiments.task_table --workdir=runs/task_table

Each cell is ``python -m experiments.train --config=experiments/configs/tasks/TASK.py:MODEL``
run in ``WORKDIR/TASK/MODEL`` (finished cells are reused on a rerun). The score is the last
evaluation on the task's fixed held-out set: accuracy, MSE (lower is better) or exact-match
sequence accuracy (greedy decoding).
"""

import importlib
import time

from absl import app, flags, logging

from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from experiments.freed_memory import keep_freed_memory
from seqjax.training import train_and_evaluate
from seqjax.training.sequence_tasks import task_from_config
from seqjax.tasks import LONG_RANGE_TASKS, TASKS, get_task
from seqjax.tasks.baselines import chance_baseline

MANY_TO_ONE_MODELS = ("elman", "lstm", "gru", "transformer")
SEQ2SEQ_MODELS = ("elman", "lstm", "gru", "gru_additive", "gru_dot", "transformer")
LINEAR_MODELS = ("min_gru", "min_lstm", "lru", "rg_lru")  # the recurrences linear in the state
MODEL_TITLES = {"elman": "Elman", "lstm": "LSTM", "gru": "GRU", "transformer": "Transformer",
                "gru_additive": "GRU + additive attn", "gru_dot": "GRU + dot attn",
                "min_gru": "minGRU", "min_lstm": "minLSTM", "lru": "LRU", "rg_lru": "RG-LRU"}
METRIC_TITLES = {"accuracy": "accuracy", "mse": "MSE (lower is better)",
                 "exact_match": "exact match"}

flags.DEFINE_string("workdir", "runs/task_table", "Root directory of the runs, one per cell.")
TABLE_TASKS = [name for name in TASKS if name not in LONG_RANGE_TASKS]
flags.DEFINE_list("tasks", TABLE_TASKS, "Tasks to run (default: all but the long-range "
                  "memory tasks of experiments/reproductions/).")
flags.DEFINE_integer("num_steps", None, "Override every config's num_steps.", lower_bound=1)
flags.DEFINE_list("models", None, "Presets to run for every task instead of the task kind's "
                  f"columns (e.g. {','.join(LINEAR_MODELS)}).")


def task_config(task, preset, num_steps=None):
    """The config of one table cell: ``experiments/configs/tasks/TASK.py:PRESET``."""
    config = importlib.import_module(f"experiments.configs.tasks.{task}").get_config(preset)
    config.progress_bar = False
    if num_steps is not None:
        config.num_steps = num_steps
    return config


def models_for(task_name, models=None):
    """The table columns of a task: ``models`` when given, else its kind decides (raises
    ConfigError for unknown names)."""
    default = SEQ2SEQ_MODELS if get_task(task_name).kind == "seq2seq" else MANY_TO_ONE_MODELS
    return tuple(models) if models else default


def run_row(task_name, workdir, num_steps=None, models=None):
    """``{"metric", "chance", preset: score, ...}`` for one task (trains what is not done)."""
    row = {}
    for preset in models_for(task_name, models):
        config = task_config(task_name, preset, num_steps)
        record = train_and_evaluate(config, f"{workdir}/{task_name}/{preset}")
        task = task_from_config(config)
        metric, chance = chance_baseline(task, task.held_out_set(config.seed, config.eval_examples))
        row.update(metric=metric, chance=chance, steps=config.num_steps)
        row[preset] = record[f"val_{metric}"]
    return row


def markdown_table(rows, models):
    """A markdown table of ``rows`` (task name -> :func:`run_row` result) over ``models``."""
    header = ["task", "metric", "steps", "chance"] + [MODEL_TITLES[m] for m in models]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, row in rows.items():
        cells = [f"`{name}`", METRIC_TITLES[row["metric"]], str(row["steps"]), f"{row['chance']:.3f}"]
        cells += [f"{row[m]:.3f}" for m in models]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv):
    del argv
    keep_freed_memory()  # XLA:CPU's buffers stay mapped from step to step (Linux, glibc)
    logging.set_verbosity(logging.WARNING)
    start = time.time()
    enable_compilation_cache(flags.FLAGS.compilation_cache)
    with user_errors_as_messages("task_table"):
        chosen = flags.FLAGS.models
        rows = {name: run_row(name, flags.FLAGS.workdir, flags.FLAGS.num_steps, chosen)
                for name in flags.FLAGS.tasks}
    for models in ((tuple(chosen),) if chosen else (MANY_TO_ONE_MODELS, SEQ2SEQ_MODELS)):
        group = {name: row for name, row in rows.items() if models_for(name, chosen) == models}
        if group:
            print(markdown_table(group, models), end="\n\n")
    print(f"total time {time.time() - start:.0f} s")


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser("task_table"))
