"""The exact GELU two ways, alone: the ``erf`` form seqjax's Transformer computes and the
``erfc`` form of ``jax.nn.gelu(approximate=False)``.

    python -m experiments.benchmarks.gelu                    # [768, 512]: nanogpt_cpu.py's MLP
    python -m experiments.benchmarks.gelu --shape 1536,512

Both are ``GELU(x) = x Phi(x)``; XLA expands ``erf`` and ``erfc`` into different work. For each
form, on the same float32 input (``N(0, 3^2)`` entries): its forward pass, and its gradient
(the vector-Jacobian product of ``sum(GELU(x))``, whose forward value XLA drops). Alternating
rounds of ``--calls`` calls each (:mod:`experiments.benchmarks.timing`); the report also gives
each form's largest difference from the other. Writes ``--out`` (JSON).
"""

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating
from seqjax.models.transformer_lm import gelu

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "gelu.json")
FORMS = {"erf (seqjax)": gelu,
         "erfc (jax.nn.gelu)": lambda x: jax.nn.gelu(x, approximate=False)}


def repeated(program, x, calls):
    """One unit of work: ``calls`` calls of ``program(x)``, returning the last result."""
    def run():
        for _ in range(calls):
            result = program(x)
        return result
    return run


def candidates(x, calls):
    """A forward and a gradient candidate of each form."""
    found = []
    for name, form in FORMS.items():
        forward = jax.jit(form)
        gradient = jax.jit(jax.grad(lambda v, form=form: form(v).sum()))
        found += [Candidate(f"{name}, forward", repeated(forward, x, calls)),
                  Candidate(f"{name}, gradient", repeated(gradient, x, calls))]
    return found


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="768,512", help="the input's shape")
    parser.add_argument("--calls", type=int, default=200, help="calls per timed unit")
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (median reported)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    shape = tuple(int(size) for size in args.shape.split(","))
    x = 3 * jax.random.normal(jax.random.PRNGKey(0), shape)
    settings = {"shape": shape, "calls": args.calls, "repeats": args.repeats}
    report = Report(args.out, "gelu", describe_environment(), settings)
    values = [np.asarray(jax.jit(form)(x)) for form in FORMS.values()]
    timings = measure_alternating(candidates(x, args.calls), repeats=args.repeats, warmup=1)
    report.add_rows([{"name": name, **timing.summary(), "ms_per_call": 1e3 * timing.median_s
                      / args.calls} for name, timing in timings.items()])
    report.content["largest_difference"] = float(np.abs(values[0] - values[1]).max())
    report = report.finish()
    print(f"| form, pass | ms per call on {list(shape)} |\n|---|---|")
    for row in report["rows"]:
        print(f"| {row['name']} | {row['ms_per_call']:.3f} |")
    print(f"largest difference between the forms: {report['largest_difference']:.2e}")


if __name__ == "__main__":
    main()
