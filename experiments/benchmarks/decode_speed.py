"""Transformer decoding throughput: KV-cached against uncached greedy decoding.

Usage::

    python -m experiments.benchmarks.decode_speed                  # 256 and 1024 tokens
    python -m experiments.benchmarks.decode_speed --quick          # smoke run, seconds
    python -m experiments.benchmarks.decode_speed --num-tokens 64,512 --repeats 5
    python -m experiments.benchmarks.decode_speed --context-length 64 --num-tokens 256,4096

The model is nanoGPT's CPU size (4 layers, 4 heads, width 128, vocabulary 65) with random
weights: speed does not depend on what the weights say. Batch 1, a one-token prompt, greedy
(temperature 0) decoding of ``N`` tokens through :func:`seqjax.generation.generate`, the
whole loop one jitted program. The cached decoder attends to a ``[B, heads, L, head_dim]``
KV cache (``L = min(N, context)``: the prompt and every token but the last are fed); the
uncached one reruns the whole window every step. Past the context the window slides: the
cache is rebuilt from the last ``--refill-length`` tokens when it is full, and the uncached
decoder computes the same windows afresh (:func:`seqjax.models.transformer_lm.window_length`).
With ``--positional rotary`` and no ``--refill-length`` the cache is a ring buffer over the
last ``context`` tokens (sliding-window attention); its uncached baseline is then nanoGPT's
crop, the model rerun on the last ``context`` tokens, a different function. Compilation is
timed apart (ahead of time), as is the first run; the figure is the median of
``--repeats`` alternating rounds (see :mod:`experiments.benchmarks.timing`). Prints a
markdown table and writes every figure, the device and the versions to ``--out`` (JSON).
"""

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

from experiments.benchmarks.environment import describe_environment
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating
from experiments.freed_memory import keep_freed_memory
from seqjax.generation import fed_length, generate, model_step_fn
from seqjax.models.transformer_lm import TransformerLM

MODEL = dict(vocab_size=65, num_layers=4, num_heads=4, width=128)
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "decode_speed.json")


def uncached_refill_length(model, refill_length):
    """The uncached baseline's ``refill_length``: the cached decoder's, or for the ring buffer
    (rotary, none given) nanoGPT's crop, ``context - 1``."""
    return model.context_length - 1 if model.slides_by_ring(refill_length) else refill_length


def greedy_decoder(model, num_tokens, *, cached, refill_length=None):
    """Jitted ``(variables, prompt [1, 1]) -> tokens [1, num_tokens]``, cached or not."""

    @jax.jit
    def decode(variables, prompt):
        max_length = fed_length(prompt.shape[1], num_tokens)
        if cached:
            step_fn = model_step_fn(model, variables)
            state = model.init_decode_state(prompt.shape[0], max_length, refill_length)
        else:
            step_fn = functools.partial(
                model.apply, variables, method="uncached_decode_step"
            )
            state = model.uncached_decode_state(prompt.shape[0], max_length,
                                                uncached_refill_length(model, refill_length))
        return generate(step_fn, state, prompt, num_tokens, jax.random.PRNGKey(0),
                        temperature=0.0)

    return decode


def compiled_decoder(model, variables, prompt, num_tokens, *, cached, refill_length=None):
    """``(run, compile_s)``: the compiled decoder as a zero-argument call, and its
    tracing + compilation time in seconds."""
    start = time.perf_counter()
    decoder = greedy_decoder(model, num_tokens, cached=cached, refill_length=refill_length)
    compiled = decoder.lower(variables, prompt).compile()
    return functools.partial(compiled, variables, prompt), time.perf_counter() - start


def benchmark_length(model, variables, num_tokens, repeats, warmup, refill_length=None):
    """One row: cached and uncached decoding of ``num_tokens`` tokens, timed alternately."""
    prompt = jnp.zeros((1, 1), jnp.int32)
    candidates, compile_s = [], {}
    for name, cached in (("cached", True), ("uncached", False)):
        run, compile_s[name] = compiled_decoder(model, variables, prompt, num_tokens,
                                                cached=cached, refill_length=refill_length)
        candidates.append(Candidate(name, run))
    timings = measure_alternating(candidates, repeats=repeats, warmup=warmup)
    results = {
        name: {**timing.summary(), "compile_s": compile_s[name],
               "tokens_per_s": num_tokens / timing.median_s}
        for name, timing in timings.items()
    }
    speedup = timings["uncached"].median_s / timings["cached"].median_s
    print(f"  {num_tokens} tokens: cached {results['cached']['tokens_per_s']:,.0f} tok/s, "
          f"uncached {results['uncached']['tokens_per_s']:,.0f} tok/s", file=sys.stderr,
          flush=True)
    return {"num_tokens": num_tokens, "results": results, "speedup": speedup}


def markdown_table(rows):
    """Tokens/s (median), the cached speed-up and compile seconds per length."""
    header = ["tokens", "cached tok/s", "uncached tok/s", "speed-up",
              "cached compile s", "uncached compile s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cached, uncached = row["results"]["cached"], row["results"]["uncached"]
        cells = [str(row["num_tokens"]), f"{cached['tokens_per_s']:,.0f}",
                 f"{uncached['tokens_per_s']:,.0f}", f"{row['speedup']:.1f}x",
                 f"{cached['compile_s']:.1f}", f"{uncached['compile_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-tokens", default=None,
                        help="comma-separated generated lengths (default 256,1024; quick 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=0, help="untimed calls after the first")
    parser.add_argument("--context-length", type=int, default=2048,
                        help="model context; shorter than --num-tokens, the window slides")
    parser.add_argument("--refill-length", type=int, default=None,
                        help="tokens a full sliding window keeps (default context // 2, or a "
                             "ring buffer for rotary positions; context - 1 is nanoGPT's rule)")
    parser.add_argument("--positional", default="learned",
                        choices=("learned", "sinusoidal", "rotary"), help="the model's positions")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 tokens, 1 repeat")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    args = parser.parse_args(argv)
    text = args.num_tokens or ("16" if args.quick else "256,1024")
    args.num_tokens = [int(n) for n in text.split(",") if n]
    args.repeats = 1 if args.quick else args.repeats
    return args


def main(argv=None):
    args = parse_args(argv)
    malloc_tuned = keep_freed_memory()  # before JAX starts its threads
    model = TransformerLM(context_length=args.context_length, positional=args.positional,
                          **MODEL)
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32))
    environment = describe_environment()
    print(f"# {environment['backend']} ({environment['device_kind']}), "
          f"load {environment['load_average']}", file=sys.stderr)
    settings = {"model": {**MODEL, "context_length": args.context_length,
                          "positional": args.positional},
                "batch_size": 1, "prompt_length": 1, "decoding": "greedy",
                "refill_length": model.checked_refill_length(args.refill_length),  # None: ring
                "uncached_refill_length": uncached_refill_length(model, args.refill_length),
                "repeats": args.repeats, "warmup": args.warmup,
                "malloc_keeps_freed_memory": malloc_tuned}
    report = Report(args.out, "decode_speed", environment, settings)
    for n in args.num_tokens:
        report.add_rows([benchmark_length(model, variables, n, args.repeats, args.warmup,
                                          args.refill_length)])
    report = report.finish()
    print(markdown_table(report["rows"]))
    return report


if __name__ == "__main__":
    main()
