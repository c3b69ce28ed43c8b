"""float32 against bfloat16 (mixed precision) in one process: the loop's training step and a
whole-split evaluation of a language-model config.

Usage::

    python -m experiments.benchmarks.mixed_precision              # nanogpt_cpu.py
    python -m experiments.benchmarks.mixed_precision --config=experiments/configs/char_lstm.py

Builds the config's run twice, with ``model.dtype`` float32 and bfloat16 (the same data, seed
and initial float32 parameters), compiles the training step as :mod:`seqjax.training.loop`
does, and times, alternating round by round (:mod:`experiments.benchmarks.timing`):
``--steps`` training steps, and one evaluation of the whole validation split. It records how
many of each step's matrix products XLA runs with bfloat16 operands and how many it widened to
float32 (``dot_operand_dtypes``, from the optimized program), and the validation loss each
dtype's model gives for the same parameters (the float32 run's after the timed steps). Writes
``--out`` (JSON).
"""

import argparse
import os
import tempfile
from functools import partial

import jax
import jax.numpy as jnp

from experiments.benchmarks.compile_time import hlo_size
from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.evaluation import load_config
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating
from experiments.freed_memory import keep_freed_memory
from seqjax.training.language_modeling import LanguageModeling
from seqjax.training.loop import start_state
from seqjax.training.optimizer import make_optimizer
from seqjax.training.sharding import DEFAULT_MESH, global_batch, make_mesh, process_rows, replicated
from seqjax.training.step import train_step

DTYPES = ("float32", "bfloat16")
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "mixed_precision.json")


class TrainingRun:
    """The config's state and compiled step in one dtype; :meth:`steps` advances it."""

    def __init__(self, config, dtype, mesh, num_steps):
        config = config.copy_and_resolve_references()
        config.model.dtype = dtype
        with tempfile.TemporaryDirectory() as workdir:
            self.training = LanguageModeling(config, workdir, mesh)
        optimizer, _ = make_optimizer(config.optim, config.num_steps)
        self.state, shardings = start_state(self.training, optimizer, config, mesh)
        rows = process_rows(mesh, config.batch_size)
        self.batches = [global_batch(mesh, self.training.training_batch(step, rows),
                                     config.batch_size) for step in range(num_steps)]
        self.diverged_at = jnp.zeros((), jnp.int32)
        step = jax.jit(partial(train_step, self.training.loss, optimizer, config.seed),
                       donate_argnums=0,
                       out_shardings=(shardings, replicated(mesh), replicated(mesh)))
        self.step = step.lower(self.state, self.diverged_at, self.batches[0]).compile()
        self.mesh = mesh

    def steps(self):
        """Every batch once; returns the last loss."""
        for batch in self.batches:
            self.state, loss, self.diverged_at = self.step(self.state, self.diverged_at, batch)
        return loss

    def evaluation(self, params=None):
        """The whole-split validation loss of ``params`` (default: the current parameters)."""
        params = self.state.params if params is None else params
        return self.training.evaluate(params, self.mesh)["val_loss"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/configs/nanogpt_cpu.py")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed call")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (median reported)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    malloc_tuned = keep_freed_memory()
    config, mesh = load_config(args.config), make_mesh(DEFAULT_MESH)
    runs = {dtype: TrainingRun(config, dtype, mesh, args.steps) for dtype in DTYPES}
    settings = {"config": args.config, "steps_per_call": args.steps, "repeats": args.repeats,
                "malloc_keeps_freed_memory": malloc_tuned,
                "dot_operand_dtypes": {dtype: hlo_size(run.step.as_text())["dot_operand_dtypes"]
                                       for dtype, run in runs.items()}}
    report = Report(args.out, "mixed_precision", describe_environment(), settings)
    for what in ("steps", "evaluation"):
        found = [Candidate(f"{what}, {dtype}", getattr(run, what)) for dtype, run in runs.items()]
        timings = measure_alternating(found, repeats=args.repeats, warmup=1)
        float32 = timings[found[0].name].median_s
        report.add_rows([{"name": name, **timing.summary(), "vs_float32": timing.median_s / float32}
                         for name, timing in timings.items()])
    same_params = runs["float32"].state.params
    settings["val_loss"] = {dtype: run.evaluation(same_params) for dtype, run in runs.items()}
    report = report.finish()
    print("| what | s per call | first call s | vs float32 |\n|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['name']} | {row['median_s']:.3f} | {row['first_call_s']:.2f} | "
              f"{row['vs_float32']:.2f}x |")
    print(f"products by operand dtype: {settings['dot_operand_dtypes']}")
    print(f"validation loss of the same parameters: {settings['val_loss']}")
    return report


if __name__ == "__main__":
    main()
