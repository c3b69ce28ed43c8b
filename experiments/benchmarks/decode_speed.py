"""Transformer decoding throughput: KV-cached against uncached greedy decoding, and recurrent
models carrying their state beside them.

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

``--recurrent min_gru,rg_lru,...`` adds recurrent language models of those kinds, each in as
many residual blocks as the Transformer has layers (``model.block = "residual"``; a classic
cell as one plain layer) at the width whose non-embedding parameter count is closest to the
Transformer's, decoding the same way: one token a step, the state carried (constant memory).
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
from seqjax.models.recurrent_lm import RecurrentLM
from seqjax.models.transformer_lm import TransformerLM
from seqjax.recurrent.cells import LINEAR_CELLS

EMBEDDING_GROUPS = ("embed", "head", "token_embedding", "position_embedding")

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


def non_embedding_parameters(model):
    """Parameters outside the token table, positions and the vocabulary read-out."""
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32))
    return sum(leaf.size for group, tree in shapes["params"].items()
               if group not in EMBEDDING_GROUPS for leaf in jax.tree.leaves(tree))


def matched_recurrent_model(kind, target, num_layers):
    """A :class:`RecurrentLM` of ``kind`` whose non-embedding count is closest to ``target``."""
    layout = ({"num_layers": num_layers, "block": "residual"} if kind in LINEAR_CELLS
              else {"num_layers": 1})

    def build(width):
        return RecurrentLM(vocab_size=MODEL["vocab_size"], cell=kind, embed_size=MODEL["width"],
                           hidden_size=width, **layout)

    low, high = 1, 4096  # the count grows with the width: bisect
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if non_embedding_parameters(build(middle)) < target else (low, middle)
    return min((build(low), build(high)), key=lambda m: abs(non_embedding_parameters(m) - target))


def recurrent_decoder(model, num_tokens):
    """Jitted ``(variables, prompt [1, 1]) -> tokens [1, num_tokens]``: the state carried."""

    @jax.jit
    def decode(variables, prompt):
        state = model.init_decode_state(prompt.shape[0])
        return generate(model_step_fn(model, variables), state, prompt, num_tokens,
                        jax.random.PRNGKey(0), temperature=0.0)

    return decode


def benchmark_length(model, variables, num_tokens, repeats, warmup, refill_length=None,
                     recurrent=(), uncached=True):
    """One row: cached and uncached decoding of ``num_tokens`` tokens, and each recurrent
    ``(kind, model, variables)`` of ``recurrent``, timed alternately (``uncached=False``:
    without the uncached decoder, whose time grows with the square of the length)."""
    prompt = jnp.zeros((1, 1), jnp.int32)
    candidates, compile_s = [], {}
    for name, cached in (("cached", True), ("uncached", False))[:2 if uncached else 1]:
        run, compile_s[name] = compiled_decoder(model, variables, prompt, num_tokens,
                                                cached=cached, refill_length=refill_length)
        candidates.append(Candidate(name, run))
    for kind, recurrent_model, recurrent_variables in recurrent:
        start = time.perf_counter()
        compiled = recurrent_decoder(recurrent_model, num_tokens).lower(
            recurrent_variables, prompt).compile()
        compile_s[kind] = time.perf_counter() - start
        candidates.append(Candidate(kind, functools.partial(compiled, recurrent_variables, prompt)))
    timings = measure_alternating(candidates, repeats=repeats, warmup=warmup)
    results = {
        name: {**timing.summary(), "compile_s": compile_s[name],
               "tokens_per_s": num_tokens / timing.median_s}
        for name, timing in timings.items()
    }
    speedup = (timings["uncached"].median_s / timings["cached"].median_s if uncached
               else None)
    print(f"  {num_tokens} tokens: " + ", ".join(
        f"{name} {r['tokens_per_s']:,.0f} tok/s" for name, r in results.items()),
        file=sys.stderr, flush=True)
    return {"num_tokens": num_tokens, "results": results, "speedup": speedup}


def markdown_table(rows):
    """Tokens/s (median), the cached speed-up and compile seconds per length."""
    recurrent = [name for name in rows[0]["results"] if name not in ("cached", "uncached")]
    header = ["tokens", "cached tok/s", "uncached tok/s", "speed-up",
              "cached compile s", "uncached compile s"] + [f"{kind} tok/s" for kind in recurrent]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cached, uncached = row["results"]["cached"], row["results"].get("uncached")
        skipped = "-" if uncached is None else None
        cells = [str(row["num_tokens"]), f"{cached['tokens_per_s']:,.0f}",
                 skipped or f"{uncached['tokens_per_s']:,.0f}",
                 skipped or f"{row['speedup']:.1f}x", f"{cached['compile_s']:.1f}",
                 skipped or f"{uncached['compile_s']:.1f}"] + [
                 f"{row['results'][kind]['tokens_per_s']:,.0f}" for kind in recurrent]
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
    parser.add_argument("--recurrent", default="",
                        help="comma-separated recurrent kinds decoded beside the Transformer, "
                             "at matched non-embedding parameters (e.g. min_gru,rg_lru,gru)")
    parser.add_argument("--no-uncached", dest="uncached", action="store_false",
                        help="leave out the uncached decoder (hours at 4,096 tokens on a CPU)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 tokens, 1 repeat")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    args = parser.parse_args(argv)
    text = args.num_tokens or ("16" if args.quick else "256,1024")
    args.num_tokens = [int(n) for n in text.split(",") if n]
    args.recurrent = [kind for kind in args.recurrent.split(",") if kind]
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
    target = non_embedding_parameters(model)
    recurrent = []
    for kind in args.recurrent:
        recurrent_model = matched_recurrent_model(kind, target, MODEL["num_layers"])
        recurrent.append((kind, recurrent_model,
                          recurrent_model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32))))
    settings["recurrent"] = {
        kind: {"hidden_size": m.hidden_size, "num_layers": m.num_layers, "block": m.block,
               "non_embedding_parameters": non_embedding_parameters(m)}
        for kind, m, _ in recurrent}
    settings["transformer_non_embedding_parameters"] = target
    report = Report(args.out, "decode_speed", environment, settings)
    for n in args.num_tokens:
        report.add_rows([benchmark_length(model, variables, n, args.repeats, args.warmup,
                                          args.refill_length, recurrent, args.uncached)])
    report = report.finish()
    print(markdown_table(report["rows"]))
    return report


if __name__ == "__main__":
    main()
