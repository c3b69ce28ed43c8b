"""Whole-split validation: one compiled program per evaluation against one call per window.

Usage::

    python -m experiments.benchmarks.evaluation                      # nanogpt_cpu's evaluation
    python -m experiments.benchmarks.evaluation --tokens-per-pass 768,6144 --repeats 3
    python -m experiments.benchmarks.evaluation --config=experiments/configs/char_rnn.py

Builds the config's run (its data and model, random weights: speed does not depend on them)
and times one evaluation of the whole validation split (``config.eval_batches``' windows)
three ways: the loop seqjax ran before, one jitted call per window with the window built on
the host and copied over; :func:`seqjax.training.language_modeling.evaluate` with one window
per forward pass; and, for a model without a carry, with several windows per pass, at each
``--tokens-per-pass``. Every way must give the same loss (to 1e-6, checked). The figures are
medians of alternating rounds (:mod:`experiments.benchmarks.timing`); the first call,
compilation included, is reported apart. ``EVAL_TOKENS_PER_PASS`` in
``seqjax/training/language_modeling.py`` is the choice this measured. Writes ``--out`` (JSON).
"""

import argparse
import importlib.util
import os
import sys
import tempfile
from functools import partial

import jax
import numpy as np

from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating
from experiments.freed_memory import keep_freed_memory
from seqjax.data import stream_windows
from seqjax.losses import token_cross_entropy
from seqjax.training import language_modeling
from seqjax.training.language_modeling import LanguageModeling, evaluate, num_eval_windows
from seqjax.training.sharding import DEFAULT_MESH, global_batch, host_value, make_mesh

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "evaluation.json")


def window_sum_fn(model):
    """The jitted per-window call of the loop seqjax ran before."""
    @jax.jit
    def window_sum(params, carry, inputs, targets):
        logits, carry = model.apply({"params": params}, inputs, carry)
        return token_cross_entropy(logits, targets).sum(), carry
    return window_sum


def per_window_loop(config, model, params, tokens, mesh, window_sum):
    """The evaluation seqjax ran before: a jitted call per window, each window from the host."""
    num_windows = num_eval_windows(config, len(tokens))
    carry, sums = model.initial_carry(config.batch_size), []
    for k in range(num_windows):
        inputs, targets, _ = stream_windows(tokens, batch_size=config.batch_size,
                                            seq_len=config.seq_len, step=k)
        loss_sum, carry = window_sum(params, carry, *global_batch(
            mesh, (inputs, targets), config.batch_size))
        sums.append(loss_sum)
    total = np.sum([host_value(loss_sum) for loss_sum in sums], dtype=np.float64)
    return float(total) / (num_windows * config.batch_size * config.seq_len)


def load_config(path):
    """``get_config()`` of the config file at ``path``."""
    spec = importlib.util.spec_from_file_location("benchmarked_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def candidates(config, training, params, mesh, tokens_per_pass):
    """``[Candidate]``: the per-window loop, then ``evaluate`` at each windows-per-pass."""
    tokens, model = training.data.val_tokens, training.model
    found = [Candidate("per window (before)", partial(
        per_window_loop, config, model, params, tokens, mesh, window_sum_fn(model)),
        sync=lambda loss: loss)]
    num_windows = num_eval_windows(config, len(tokens))
    groups = [1]
    if model.initial_carry(1) is None:
        window_tokens = config.batch_size * config.seq_len
        groups = sorted({min(max(1, n // window_tokens), num_windows) for n in tokens_per_pass})
    for group in groups:
        segment = jax.jit(partial(language_modeling.eval_segment, model, group))
        found.append(Candidate(f"one program, {group} window(s) per pass", partial(
            evaluate, config, model, params, tokens, mesh, segment, group),
            sync=lambda loss: loss))
    return found


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/configs/nanogpt_cpu.py")
    parser.add_argument("--tokens-per-pass", default="768,1536,3072,6144,12288,24576",
                        help="comma-separated tokens per forward pass (a model without a carry)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    args = parser.parse_args(argv)
    args.tokens_per_pass = [int(n) for n in args.tokens_per_pass.split(",") if n]
    return args


def main(argv=None):
    args = parse_args(argv)
    malloc_tuned = keep_freed_memory()
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as workdir:
        training = LanguageModeling(config, workdir)
    mesh = make_mesh(DEFAULT_MESH)
    params = training.init_params(jax.random.PRNGKey(0))
    found = candidates(config, training, params, mesh, args.tokens_per_pass)
    losses = {candidate.name: candidate.run() for candidate in found}
    reference = losses[found[0].name]
    for name, loss in losses.items():
        if abs(loss - reference) > 1e-6 * abs(reference):
            sys.exit(f"evaluation: {name} gives {loss}, the per-window loop {reference}")
    settings = {"config": args.config, "batch_size": config.batch_size, "seq_len": config.seq_len,
                "windows": num_eval_windows(config, len(training.data.val_tokens)),
                "repeats": args.repeats, "malloc_keeps_freed_memory": malloc_tuned,
                "losses": losses}
    report = Report(args.out, "evaluation", describe_environment(), settings)
    timings = measure_alternating(found, repeats=args.repeats, warmup=1)
    before = timings[found[0].name].median_s
    report.add_rows([{"name": name, **timing.summary(), "speed_up": before / timing.median_s}
                     for name, timing in timings.items()])
    report = report.finish()
    print("| way | s per evaluation | first call s | speed-up |\n|---|---|---|---|")
    for row in report["rows"]:
        print(f"| {row['name']} | {row['median_s']:.3f} | {row['first_call_s']:.2f} | "
              f"{row['speed_up']:.2f}x |")
    return report


if __name__ == "__main__":
    main()
