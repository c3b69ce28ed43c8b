"""What bounds ``nanogpt_cpu.py`` on this CPU: its arithmetic against what the cores multiply.

    python -m experiments.benchmarks.step_roofline --nanogpt_report=PATH

- **Work**: XLA's count of floating-point operations (``Lowered.cost_analysis()``, before XLA's
  optimizations) of one training step, in float32 and bfloat16, and of one evaluation (the
  forward pass over one ``[B, T]`` batch, times the windows of the whole validation split).
- **Speed**: the median training step and forward pass of each (seqjax's contender of
  :mod:`experiments.benchmarks.transformer`, timed alternately), in GFLOP/s.
- **Ceilings**: the GFLOP/s of the same XLA on matrix products alone: a large one
  (``[2048, 2048] x [2048, 2048]``) and the step's largest (the MLP's
  ``[B T, W] x [W, 4 W]``), each in float32 and with bfloat16 inputs and float32 sums.
- **Floors of the run**: its 2,000 steps and 8 evaluations at the ceilings, beside nanoGPT's
  wall time from an end-to-end report (``--nanogpt_report``, the mean of its cold nanoGPT runs),
  so ``0.5x`` of nanoGPT can be read against what the cores allow.
"""

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.timing import measure_alternating
from experiments.benchmarks.transformer import SIZES, fixed_batch, seqjax_contender
from experiments.configs import nanogpt_cpu
from seqjax.data import num_stream_windows
from seqjax.training.loop import is_due

VALIDATION_TOKENS = 111_540  # Tiny Shakespeare's validation split, in characters


def flops(candidate):
    """XLA's count of floating-point operations of the candidate's next call."""
    return float(candidate.trace().lower().cost_analysis()["flops"])


def product_gflops(m, k, n, dtype, repeats=20):
    """GFLOP/s of ``[m, k] x [k, n]`` (inputs in ``dtype``, float32 sums), median of ``repeats``."""
    keys = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(keys[0], (m, k)).astype(dtype)
    b = jax.random.normal(keys[1], (k, n)).astype(dtype)
    product = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    jax.block_until_ready(product(a, b))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(product(a, b))
        seconds.append(time.perf_counter() - start)
    return 2 * m * k * n / statistics.median(seconds) / 1e9


def nanogpt_wall(report_path):
    """Mean wall seconds of the cold nanoGPT runs (train + sample) of an end-to-end report."""
    rounds = json.loads(Path(report_path).read_text())["rounds"]
    return statistics.fmean(r["nanogpt"]["wall_s"] for r in rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt_report", default="", help="an end-to-end report (JSON)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", default="nanogpt_cpu", choices=sorted(SIZES),
                        help="the model's size (the run's floors assume nanogpt_cpu.py's)")
    parser.add_argument("--large_product", type=int, default=2048, help="N of the N x N product")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "step_roofline.json"))
    args = parser.parse_args()
    config = nanogpt_cpu.get_config()
    size = SIZES[args.size]
    _, _, width, batch, length = size
    windows = num_stream_windows(VALIDATION_TOKENS, batch, length)
    report = {"environment": describe_environment(), "size": dict(zip(
        ("num_layers", "num_heads", "width", "batch", "length"), size)), "dtypes": {}}
    for dtype in args.dtypes.split(","):
        contender = seqjax_contender(size, fixed_batch(size), "auto", dtype)
        work = {mode: flops(contender[mode]) for mode in ("train", "forward")}
        timings = {mode: measure_alternating([contender[mode]], repeats=args.repeats)["seqjax"]
                   for mode in ("train", "forward")}
        seconds = {mode: timings[mode].median_s for mode in timings}
        report["dtypes"][dtype] = {
            **{name: {"gflop": work[mode] / 1e9, "median_ms": seconds[mode] * 1e3,
                      "gflop_per_s": work[mode] / seconds[mode] / 1e9}
               for name, mode in (("train_step", "train"), ("forward", "forward"))},
            "evaluation_gflop": work["forward"] * windows / 1e9,
            "large_product_gflop_per_s": product_gflops(*[args.large_product] * 3, dtype),
            "mlp_product_gflop_per_s": product_gflops(batch * length, width, 4 * width, dtype,
                                                      repeats=200),
        }
        print(dtype, json.dumps(report["dtypes"][dtype]), flush=True)
    evaluations = sum(is_due(done, config.eval_every, config.num_steps)
                      for done in range(1, config.num_steps + 1))
    run_gflop = {dtype: config.num_steps * d["train_step"]["gflop"]
                 + evaluations * d["evaluation_gflop"] for dtype, d in report["dtypes"].items()}
    report["run"] = {"num_steps": config.num_steps, "num_evaluations": evaluations,
                     "validation_windows_per_stream": windows, "gflop": run_gflop}
    for dtype, d in report["dtypes"].items():
        report["run"][f"seconds_at_large_product_speed_{dtype}"] = (
            run_gflop[dtype] / d["large_product_gflop_per_s"])
        report["run"][f"seconds_at_mlp_product_speed_{dtype}"] = (
            run_gflop[dtype] / d["mlp_product_gflop_per_s"])
    if args.nanogpt_report:
        report["run"]["nanogpt_wall_s"] = nanogpt_wall(args.nanogpt_report)
        report["nanogpt_report"] = os.path.relpath(args.nanogpt_report)
    with open(args.out, "w") as out:
        out.write(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["run"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
