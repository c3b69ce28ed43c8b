"""Recurrent-model throughput: seqjax against Flax and PyTorch, side by side.

Usage (one command; the same on CPU, GPU and TPU)::

    python -m experiments.benchmarks.recurrent                 # full run, ~minutes on CPU
    python -m experiments.benchmarks.recurrent --quick         # tiny smoke run, seconds
    python -m experiments.benchmarks.recurrent --cells lstm --shapes 32x128x64x256 --modes train
    python -m experiments.benchmarks.recurrent --idle-gate 0.1     # on a shared machine
    python -m experiments.benchmarks.recurrent --data-parallel     # JAX over one device per core
    python -m experiments.benchmarks.recurrent --baseline 26069ee  # A/B: fused path at a revision
    python -m experiments.benchmarks.recurrent --dtype bfloat16    # mixed precision, every peer

For every cell and shape the contenders (see :mod:`recurrent_contenders`) are timed in the
same process, alternating (see :mod:`timing`): first call (compilation) reported apart,
warm-up, then the median of ``--repeats`` rounds. Prints a markdown table and writes every
figure, the device and the library versions to ``--out`` (JSON). A ratio is
``peer time / seqjax time``: above 1.0 seqjax is faster.
"""

import argparse
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp

from experiments.benchmarks import recurrent_contenders as contenders
from experiments.benchmarks.environment import (
    describe_environment, matmul_precision_for_backend, wait_for_idle_cpu,
)
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import measure_alternating
from experiments.freed_memory import keep_freed_memory

CELLS = ("elman", "lstm", "gru")
MODES = ("train", "forward")
PEERS = ("flax", "torch", "scan")
DEFAULT_SHAPES = "32x128x64x256,32x128x64x1024"
QUICK_SHAPES = "2x8x4x8"
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "recurrent.json")


def parse_shape(text, vocab):
    """``"BxTxIxH"`` -> :class:`Shape`."""
    try:
        batch, length, input_size, hidden_size = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"shape {text!r} is not BxTxIxH, e.g. 32x128x64x256") from None
    return contenders.Shape(batch, length, input_size, hidden_size, vocab)


def parse_choices(text, allowed, what):
    chosen = [item for item in text.split(",") if item]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}: choose from {', '.join(allowed)}")
    return chosen


def available_peers(peers):
    """The requested peers that can run here, and a note for each one skipped."""
    runnable, skipped = [], {}
    for peer in peers:
        if peer == "torch" and contenders.torch_device() is None:
            installed = importlib.util.find_spec("torch") is not None
            skipped[peer] = ("no PyTorch device matches this JAX backend" if installed
                             else "torch is not installed")
            continue
        runnable.append(peer)
    return runnable, skipped


def build(peer, cell, shape, data, args):
    """``{"train": Candidate, "forward": Candidate}`` of one contender."""
    mesh = contenders.data_parallel_mesh() if args.data_parallel else None
    dtype = jnp.dtype(args.dtype)
    if peer == "seqjax":
        hoist = {"auto": None, "on": True, "off": False}[args.hoist_input_projection]
        return contenders.seqjax_fused(cell, shape, data, unroll_steps=args.unroll,
                                       hoist_input_projection=hoist,
                                       gradient_chunk=args.gradient_chunk, mesh=mesh, dtype=dtype)
    if peer == "baseline":
        return contenders.seqjax_baseline(cell, shape, data, args.baseline, mesh=mesh)
    if peer == "scan":
        return contenders.seqjax_scan(cell, shape, data, unroll_steps=args.unroll, mesh=mesh,
                                      dtype=dtype)
    if peer == "flax":
        return contenders.flax_linen(cell, shape, data, mesh=mesh, dtype=dtype)
    return contenders.torch_native(cell, shape, data, dtype=dtype)


def benchmark_one(cell, shape, modes, peers, args):
    """Rows (one per mode) for one cell and shape, every contender timed alternately."""
    data = contenders.random_batch(shape)
    built, unavailable = {}, {}
    for peer in ["seqjax", *peers]:
        try:
            built[peer] = build(peer, cell, shape, data, args)
        except contenders.Unavailable as why:  # e.g. no bfloat16 kernel for it on this CPU
            unavailable[peer] = str(why)
            print(f"  {cell} {shape.label()}: skipping {peer}: {why}", file=sys.stderr, flush=True)
    rows = []
    for mode in modes:
        busy_before_rounds = []
        before_round = None
        if args.idle_gate is not None:
            before_round = lambda: busy_before_rounds.append(wait_for_idle_cpu(args.idle_gate))
        timings = measure_alternating([b[mode] for b in built.values()], repeats=args.repeats,
                                      warmup=args.warmup, before_round=before_round)
        results = {}
        for name, timing in timings.items():
            results[name] = {**timing.summary(), "tokens_per_s": shape.tokens / timing.median_s}
        seqjax_s = timings["seqjax"].median_s
        rows.append({
            "cell": cell, "mode": mode, "shape": shape.__dict__, "tokens_per_step": shape.tokens,
            "results": results,
            "ratios": {peer: timings[peer].median_s / seqjax_s for peer in peers if peer in built},
            "unavailable": unavailable,
            "cpu_busy_before_rounds": busy_before_rounds,
        })
        print(f"  {cell} {shape.label()} {mode}: " + ", ".join(
            f"{name} {timing.median_s * 1e3:.1f} ms (first call {timing.first_call_s:.1f} s)"
            for name, timing in timings.items()
        ), file=sys.stderr, flush=True)
    return rows


def markdown_table(rows, peers):
    """Milliseconds per step (median), seqjax tokens/s, and ratios peer/seqjax (n/a: the peer
    could not run this row)."""
    header = ["cell", "H", "mode", "seqjax ms", *(f"{p} ms" for p in peers),
              "seqjax tok/s", *(f"vs {p}" for p in peers)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        results = row["results"]
        cells = [row["cell"], str(row["shape"]["hidden_size"]), row["mode"],
                 f"{results['seqjax']['median_s'] * 1e3:.1f}",
                 *(f"{results[p]['median_s'] * 1e3:.1f}" if p in results else "n/a" for p in peers),
                 f"{results['seqjax']['tokens_per_s']:,.0f}",
                 *(f"{row['ratios'][p]:.2f}" if p in results else "n/a" for p in peers)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated: elman,lstm,gru")
    parser.add_argument("--shapes", default=None, help=f"comma-separated BxTxIxH (default {DEFAULT_SHAPES})")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: train,forward")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated: flax,torch,scan")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls after the first (default 2)")
    parser.add_argument("--unroll", type=int, default=1, help="lax.scan unroll of the seqjax/scan contenders")
    parser.add_argument("--gradient-chunk", type=int, default=16,
                        help="steps per weight-gradient matmul in seqjax's backward pass")
    parser.add_argument("--hoist-input-projection", default="auto", choices=("auto", "on", "off"),
                        help="seqjax: W_x X as one product before the recurrence (auto: on "
                             "except on a CPU, as fused_unroll decides)")
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also time seqjax's fused path as it was at this git revision")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="compute dtype (bfloat16: mixed precision, float32 parameters)")
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--quick", action="store_true", help=f"smoke run: shape {QUICK_SHAPES}, 2 repeats")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    parser.add_argument("--data-parallel", action="store_true",
                        help="run the JAX contenders data-parallel over all devices; on a CPU, one "
                             "XLA device per core (PyTorch keeps its intra-op threads)")
    parser.add_argument("--idle-gate", type=float, default=None, metavar="BUSY",
                        help="on a shared machine: before each timed round, wait (up to 2 min) until "
                             "the CPUs are at most this busy, e.g. 0.1")
    parser.add_argument("--matmul-precision", default="highest", choices=("highest", "tf32"),
                        help="on a GPU, float32 products in every library: full float32 (default) "
                             "or TensorFloat-32 (cuDNN's RNNs included)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as is (default: keep freed memory mapped, for every peer)")
    args = parser.parse_args(argv)
    args.shapes = args.shapes or (QUICK_SHAPES if args.quick else DEFAULT_SHAPES)
    args.repeats = args.repeats or (2 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    if args.baseline and args.dtype != "float32":
        parser.error("--baseline compares float32 runs: drop --dtype or --baseline")
    return args


def use_one_cpu_device_per_core():
    """Ask XLA for one CPU device per core; must run before JAX starts its backends."""
    flag = f"--xla_force_host_platform_device_count={os.cpu_count()}"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def main(argv=None):
    args = parse_args(argv)
    if args.data_parallel:
        use_one_cpu_device_per_core()
    malloc_tuned = False if args.default_malloc else keep_freed_memory()
    precision = matmul_precision_for_backend(args.matmul_precision)
    cells = parse_choices(args.cells, CELLS, "cells")
    modes = parse_choices(args.modes, MODES, "modes")
    peers, skipped = available_peers(parse_choices(args.peers, PEERS, "peers"))
    if args.baseline:
        contenders.fused_recurrence_at(args.baseline)  # a bad revision fails here, not mid-run
        peers.append("baseline")
    shapes = [parse_shape(text, args.vocab) for text in args.shapes.split(",") if text]
    environment = describe_environment()
    if args.data_parallel:
        for shape in shapes:
            if shape.batch % jax.device_count():
                raise ValueError(f"--data-parallel splits the batch over {jax.device_count()} "
                                 f"devices; batch {shape.batch} does not divide: pick a multiple")
    print(f"# {environment['backend']} ({environment['device_kind']}), load {environment['load_average']}",
          file=sys.stderr)
    for peer, why in skipped.items():
        print(f"# skipping {peer}: {why}", file=sys.stderr)
    settings = {"repeats": args.repeats, "warmup": args.warmup, "unroll": args.unroll,
                "gradient_chunk": args.gradient_chunk, "baseline": args.baseline,
                "peers": peers, "quick": args.quick, "malloc_keeps_freed_memory": malloc_tuned,
                "idle_gate": args.idle_gate, "data_parallel": args.data_parallel,
                "matmul_precision": precision, "jax_devices": len(jax.devices()),
                "dtype": args.dtype}
    report = Report(args.out, "recurrent", environment, settings)
    report.content["skipped_peers"] = skipped
    for shape in shapes:
        for cell in cells:
            report.add_rows(benchmark_one(cell, shape, modes, peers, args))
    report = report.finish()
    print(markdown_table(report["rows"], peers))
    return report


if __name__ == "__main__":
    main()
