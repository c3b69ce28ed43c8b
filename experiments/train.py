"""Train a model from an experiment config; rerun the same command to resume.

    python -m experiments.train --config=experiments/configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.train --config=experiments/configs/char_lstm.py --workdir=runs/lstm \\
        --config.model.hidden_size=256

Language-model runs end by printing a sample from the best checkpoint. Sequence-task configs
(``experiments/configs/tasks/``, with ``config.task`` set) train a classifier, regressor, tagger or
seq2seq model instead: ``--config=experiments/configs/tasks/reverse.py:gru_additive``.

A run uses every device it sees (``--config.mesh.*``, see docs/training.md); one process of a
multi-process run also takes ``--coordinator_address --num_processes --process_id``.
"""

from experiments.jemalloc import restart_under_jemalloc, running_malloc

if __name__ == "__main__":  # before JAX is imported: restarting then costs ~0.1 s
    restart_under_jemalloc("train")  # a cold run's steps are 9-18% faster (experiments/jemalloc.py)

# The imports below come after the restart on purpose.
import json
from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments.cli_errors import flags_parser, user_errors_as_messages
from experiments.compilation_cache import enable_compilation_cache
from experiments.freed_memory import keep_freed_memory
from seqjax.models.transformer_lm import describe_attention
from seqjax.text_generation import continue_text, load_run
from seqjax.training import distributed, train_and_evaluate
from seqjax.training.loop import training_task_type

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics.jsonl, tokenizer.")
flags.DEFINE_string("coordinator_address", None, "Multi-process runs: host:port of process 0 "
                    "(or JAX_COORDINATOR_ADDRESS).")
flags.DEFINE_integer("num_processes", None, "Multi-process runs: how many processes (or "
                     "JAX_NUM_PROCESSES).", lower_bound=1)
flags.DEFINE_integer("process_id", None, "Multi-process runs: this process's index, 0 to "
                     "num_processes - 1 (or JAX_PROCESS_ID).", lower_bound=0)
flags.DEFINE_bool("distributed", False, "Join a multi-process run that JAX detects by itself "
                  "(SLURM, Open MPI, Cloud TPU, Kubernetes).")
flags.DEFINE_integer("heartbeat_timeout", 60, "Multi-process runs: seconds after which the "
                     "other processes stop when one has died.", lower_bound=1)
flags.mark_flags_as_required(["config", "workdir"])


def summary_line(record):
    return ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())


def main(argv):
    del argv
    keep_freed_memory()  # XLA:CPU's buffers stay mapped from step to step (Linux, glibc)
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    f = flags.FLAGS
    config, workdir = f.config, f.workdir
    with user_errors_as_messages("train"):
        distributed.initialize(f.coordinator_address, f.num_processes, f.process_id,
                               auto=f.distributed, heartbeat_timeout=f.heartbeat_timeout)
        enable_compilation_cache(f.compilation_cache)
        training_task_type(config).check_config(config)  # before describing the model
        if jax.process_index() == 0:
            print(distributed.describe_devices(), flush=True)
            print(f"malloc: {running_malloc()}", flush=True)
        language_model = config.get("task", "language_modeling") == "language_modeling"
        if language_model and config.model.kind == "transformer" and jax.process_index() == 0:
            print(f"attention: {describe_attention(config.model)}")
        record = train_and_evaluate(config, workdir)
        if jax.process_index() != 0:
            return
        print(f"finished: {summary_line(record)}")
        timing = Path(workdir) / "timing.json"
        if timing.exists():
            print(f"time (s): {summary_line(json.loads(timing.read_text()))}")
        if not language_model:
            return
        if jax.process_count() > 1:
            print(f"sample it with: python -m experiments.sample --workdir={workdir}")
            return
        run = load_run(workdir)
        print(f"--- sample (best checkpoint, step {run.record['step']}) ---")
        print(continue_text(run, config.sample.prompt, config.sample.num_tokens,
                            temperature=config.sample.temperature, seed=config.seed))


if __name__ == "__main__":
    app.run(main, flags_parser=flags_parser("train"))
