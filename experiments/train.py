"""Train a model from an experiment config; rerun the same command to resume.

    python -m experiments.train --config=experiments/configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.train --config=experiments/configs/char_lstm.py --workdir=runs/lstm \\
        --config.model.hidden_size=256

Ends by printing a sample from the best checkpoint.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.cli_errors import flags_parser, user_errors_as_messages
from seqjax.text_generation import continue_text, load_run
from seqjax.train import train_and_evaluate

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics.jsonl, tokenizer.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    with user_errors_as_messages("train"):
        record = train_and_evaluate(config, workdir)
        summary = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())
        print(f"finished: {summary}")
        run = load_run(workdir)
        print(f"--- sample (best checkpoint, step {run.record['step']}) ---")
        print(continue_text(run, config.sample.prompt, config.sample.num_tokens,
                            temperature=config.sample.temperature, seed=config.seed))


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser("train"))
