"""Train a model from an experiment config; rerun the same command to resume.

    python -m experiments.train --config=experiments/configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.train --config=experiments/configs/char_lstm.py --workdir=runs/lstm \\
        --config.model.hidden_size=256

Language-model runs end by printing a sample from the best checkpoint. Sequence-task configs
(``experiments/configs/tasks/``, with ``config.task`` set) train a classifier, regressor, tagger or
seq2seq model instead: ``--config=experiments/configs/tasks/reverse.py:gru_additive``.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from seqjax.task_training import train_task
from seqjax.text_generation import continue_text, load_run
from seqjax.train import train_and_evaluate

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics.jsonl, tokenizer.")
flags.mark_flags_as_required(["config", "workdir"])


def summary_line(record):
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    enable_compilation_cache(flags.FLAGS.compilation_cache)
    with user_errors_as_messages("train"):
        if config.get("task", "language_modeling") != "language_modeling":
            print(f"finished: {summary_line(train_task(config, workdir))}")
            return
        print(f"finished: {summary_line(train_and_evaluate(config, workdir))}")
        run = load_run(workdir)
        print(f"--- sample (best checkpoint, step {run.record['step']}) ---")
        print(continue_text(run, config.sample.prompt, config.sample.num_tokens,
                            temperature=config.sample.temperature, seed=config.seed))


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser("train"))
