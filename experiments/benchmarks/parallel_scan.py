"""Training-step time per token against sequence length: the recurrences linear in the state on
each scan back-end, beside seqjax's fused GRU and LSTM and one Transformer block.

Usage (one command; the same on CPU, GPU and TPU)::

    python -m experiments.benchmarks.parallel_scan                  # full run, ~10 min on 2 cores
    python -m experiments.benchmarks.parallel_scan --quick          # tiny smoke run (~1 min)
    python -m experiments.benchmarks.parallel_scan --lengths 512,4096 --width 512
    python -m experiments.benchmarks.parallel_scan --auto-widths 128,512  # the AUTO_TABLE sweep
    python -m experiments.benchmarks.parallel_scan --lengths 4096 --cells min_gru,lru \
        --references gru --alternatives                             # engine variants, see below

**What is timed**: one recurrent layer, :class:`seqjax.recurrent.layers.Recurrent`, over
``xs: [B, T, I]`` (standard-normal inputs, ``I`` = ``--width``), and
``jax.value_and_grad`` of the loss ``mean(hs ** 2)`` with respect to the layer's parameters
*and* its inputs (as a layer inside a network is trained); no optimizer. The number of tokens
per step is fixed (``--tokens``, ``B = tokens / T``), so per-token times compare across ``T``.
Contenders at every length:

- each cell linear in the state (``min_gru``, ``min_lstm``, ``lru``, ``rg_lru``) with every
  back-end of :mod:`seqjax.recurrent.linear_scan` it supports, and with ``auto`` (the row
  records which back-end ``auto`` chose);
- seqjax's fused GRU and LSTM (``fused=True``): at equal state width ``H``, and at matched
  parameters: the hidden size (a multiple of 8) whose parameter count is closest to minGRU's
  at ``H`` (``2 I H + 2 H``; rg_lru has the same count within 0.2%, min_lstm 1.5x, lru 2x);
- one pre-LayerNorm Transformer block (:class:`seqjax.models.transformer_lm.TransformerBlock`,
  4 heads, MLP ratio 4, seqjax's default attention, i.e. causal attention by query blocks on a
  CPU) whose width is matched to minGRU's parameter count the same way; it reads its own
  width, ``xs: [B, T, W]``. Past ``--transformer-max-length`` it is skipped, and the row says why.

Each length's recurrent contenders are timed alternately in one process (:mod:`timing`), the
Transformer in rounds of its own after them; every program is compiled ahead, so the first
call, kept apart, is the warm-up. ``auto`` and the back-end it picks lower to the same program,
which is compiled once and timed under both names. The compile time, and the peak memory from
the compiled program's memory analysis (temp + argument + output - alias bytes), are recorded
per row. ``--alternatives`` also times, for each of ``--cells``, variants of the engine written
here (not in seqjax): time-major scans without ``vmap``, other chunk sizes, a sequential scan
unrolled by 8, and a floor with no recurrence at all. Prints a markdown table and writes the
JSON (every sample, median, quartiles, device, CPU, library versions, the command) and a figure.
"""

import argparse
import dataclasses
import functools
import os
import shlex
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.environment import describe_environment, wait_for_idle_cpu
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating
from experiments.freed_memory import keep_freed_memory
from seqjax.models.transformer_lm import TransformerBlock
from seqjax.recurrent import linear_scan
from seqjax.recurrent.cells import LINEAR_CELLS, get_cell
from seqjax.recurrent.layers import Recurrent

FUSED_CELLS = ("gru", "lstm")
REFERENCES = (*FUSED_CELLS, "transformer")
TRANSFORMER_HEADS = 4
DEFAULT_LENGTHS = "128,512,2048,4096,8192"
QUICK = {"lengths": "8,16", "width": 8, "tokens": 32, "auto_lengths": "16"}
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "parallel_scan.json")
REFERENCE = "gru/fused"  # the ratios' denominator: the fused GRU at equal state width


def backends_of(cell):
    """The back-ends ``cell`` runs on (``log`` where its coefficients are positive), then ``auto``."""
    backends = ["sequential", "associative", "chunked"]
    if hasattr(get_cell(cell), "log_coefficients"):
        backends.append("log")
    return backends + ["auto"]


# ----------------------------------------------------------------------------- contenders


@dataclasses.dataclass(frozen=True)
class Contender:
    """One model of the comparison: a name, how to build its layer, and its sizes."""

    name: str
    family: str  # linear | fused | transformer | alternative
    cell: str
    width: int  # the state width H (the Transformer's residual width)
    input_size: int
    backend: str | None = None  # linear cells: the scan back-end asked for
    matched: str = "equal width"  # or "matched parameters"
    base_width: int | None = None  # the run's width H: the fused GRU of that width is the reference

    def layer(self):
        """The Flax module, applied to ``xs: [B, T, input_size]``, returning ``hs``."""
        if self.family == "transformer":
            return TransformerBlock(num_heads=TRANSFORMER_HEADS)
        return RecurrentOutputs(self.cell, self.width, scan=self.backend or "auto",
                                fused=self.family == "fused")


class RecurrentOutputs(nn.Module):
    """:class:`Recurrent`'s outputs ``hs`` alone (the layer also returns its final carry)."""

    cell: str
    hidden_size: int
    scan: str = "auto"
    fused: bool = False

    @nn.compact
    def __call__(self, xs):
        return Recurrent(self.cell, self.hidden_size, scan=self.scan, fused=self.fused,
                         name="layer")(xs)[1]


@functools.cache
def recurrent_parameters(cell, input_size, hidden_size):
    """Parameter count of one layer of ``cell`` (from its ``init``, shapes only)."""
    shapes = jax.eval_shape(lambda key: get_cell(cell).init(key, input_size, hidden_size),
                            jax.random.PRNGKey(0))
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


@functools.cache
def transformer_parameters(width):
    """Parameter count of one :class:`TransformerBlock` of ``width``."""
    xs = jax.ShapeDtypeStruct((1, 2, width), jnp.float32)
    shapes = jax.eval_shape(TransformerBlock(num_heads=TRANSFORMER_HEADS).init,
                            jax.random.PRNGKey(0), xs)
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


def matched_size(count_of, target, multiple=8):
    """The multiple of ``multiple`` whose ``count_of(size)`` (growing with ``size``) is closest
    to ``target``."""
    high = 1
    while count_of(high * multiple) < target:
        high *= 2
    low = high // 2  # count_of(low * multiple) < target <= count_of(high * multiple), or low = 0
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count_of(middle * multiple) < target else (low, middle)
    sizes = [size * multiple for size in (low, high) if size > 0]
    return min(sizes, key=lambda size: abs(count_of(size) - target))


def contenders_for(width, cells=tuple(LINEAR_CELLS), backends=None, references=REFERENCES):
    """The contenders of one width: the linear ``cells`` on each of their back-ends (those of
    ``backends``, default all), and the ``references``: the fused GRU and LSTM at equal width
    and at minGRU's parameter count, and the matched Transformer block."""
    contenders = [Contender(f"{cell}/{backend}", "linear", cell, width, width, backend,
                            base_width=width)
                  for cell in cells for backend in backends_of(cell)
                  if backends is None or backend in backends]
    target = recurrent_parameters("min_gru", width, width)
    for cell in (cell for cell in FUSED_CELLS if cell in references):
        contenders.append(Contender(f"{cell}/fused", "fused", cell, width, width, base_width=width))
        matched = matched_size(functools.partial(recurrent_parameters, cell, width), target)
        if matched != width:
            contenders.append(Contender(f"{cell}/fused/matched", "fused", cell, matched, width,
                                        matched="matched parameters", base_width=width))
    if "transformer" in references:
        matched = matched_size(transformer_parameters, target, multiple=TRANSFORMER_HEADS * 2)
        contenders.append(Contender("transformer/matched", "transformer", "transformer", matched,
                                    matched, matched="matched parameters", base_width=width))
    return contenders


def parameters_of(contender):
    if contender.family == "transformer":
        return transformer_parameters(contender.width)
    return recurrent_parameters(contender.cell, contender.input_size, contender.width)


# ----------------------------------------------------------------------------- engine variants
# Written here, not in seqjax: candidates for seqjax.recurrent.linear_scan, timed beside it.


def _time_major_associative(a, b, h0):
    """``a, b: [T, B, N]``, ``h0: [B, N]``: one associative scan over the leading axis."""
    b = b.at[0].add(a[0] * h0)
    return jax.lax.associative_scan(linear_scan._compose, (a, b))[1]


def _time_major_chunked(a, b, h0, chunk_size):
    """Chunked as :func:`linear_scan.chunked`, on ``[T, B, N]``."""
    num_steps = a.shape[0]
    num_chunks = -(-num_steps // chunk_size)
    padding = [(0, num_chunks * chunk_size - num_steps)] + [(0, 0)] * (a.ndim - 1)
    shape = (num_chunks, chunk_size) + a.shape[1:]
    a = jnp.pad(a, padding, constant_values=1).reshape(shape)
    b = jnp.pad(b, padding).reshape(shape)
    products, partial_states = jax.lax.associative_scan(linear_scan._compose, (a, b), axis=1)

    def across_chunks(h_in, chunk):
        product, partial_state = chunk
        hs = product * h_in + partial_state
        return hs[-1], hs

    _, hs = jax.lax.scan(across_chunks, h0, (products, partial_states))
    return hs.reshape((num_chunks * chunk_size,) + a.shape[2:])[:num_steps]


def _sequential_unrolled(a, b, h0, unroll):
    def body(h, coefficients):
        h = coefficients[0] * h + coefficients[1]
        return h, h

    return jax.lax.scan(body, h0, (a, b), unroll=unroll)[1]


def _no_recurrence(a, b, h0):
    """``a + b``: not a recurrence, the floor of what any back-end could reach (everything but
    the scan: the coefficients, the read-out and their gradients)."""
    return a + b + 0 * h0


# name -> (layout, function of (a, b, h0)): "per_sequence" as seqjax's engine (vmapped over
# the batch), "time_major" on [T, B, N] with no vmap.
ALTERNATIVES = {
    "no_recurrence_floor": ("per_sequence", _no_recurrence),
    "chunked16": ("per_sequence", functools.partial(linear_scan.chunked, chunk_size=16)),
    "chunked256": ("per_sequence", functools.partial(linear_scan.chunked, chunk_size=256)),
    "sequential_unroll8": ("per_sequence", functools.partial(_sequential_unrolled, unroll=8)),
    "time_major_associative": ("time_major", _time_major_associative),
    "time_major_chunked64": ("time_major", functools.partial(_time_major_chunked, chunk_size=64)),
    "time_major_sequential_unroll8": ("time_major",
                                      functools.partial(_sequential_unrolled, unroll=8)),
}


class AlternativeLinear(nn.Module):
    """A linear cell's layer (``Recurrent``'s parameters, zero initial state, full-length
    sequences) on an engine variant of :data:`ALTERNATIVES`."""

    cell: str
    hidden_size: int
    variant: str

    @nn.compact
    def __call__(self, xs):
        cell = get_cell(self.cell)
        params = self.param("cell", lambda key: cell.init(key, xs.shape[-1], self.hidden_size))
        coefficients = jax.vmap(jax.vmap(cell.coefficients, in_axes=(None, 0)), in_axes=(None, 0))
        a, b = coefficients(params, xs)  # [B, T, N]
        h0 = jnp.zeros((xs.shape[0], a.shape[-1]), b.dtype)
        layout, scan = ALTERNATIVES[self.variant]
        if layout == "per_sequence":
            hs = jax.vmap(scan)(a, b, h0)
        else:
            hs = jnp.swapaxes(scan(jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1), h0), 0, 1)
        readout = jax.vmap(jax.vmap(functools.partial(cell.readout, params)))
        return readout(hs, xs)


def alternative_contenders(width, cells):
    return [Contender(f"{cell}/{variant}", "alternative", cell, width, width, variant,
                      base_width=width)
            for cell in cells for variant in ALTERNATIVES]


def module_of(contender):
    if contender.family == "alternative":
        return AlternativeLinear(contender.cell, contender.width, contender.backend)
    return contender.layer()


# ----------------------------------------------------------------------------- one training step


def memory_figures(compiled):
    """Bytes from the compiled program's memory analysis; ``peak_bytes`` = temp + argument +
    output - alias (what the program holds at once, at most)."""
    analysis = compiled.memory_analysis()
    if analysis is None:
        return {"peak_bytes": None}
    figures = {name: int(getattr(analysis, f"{name}_size_in_bytes"))
               for name in ("temp", "argument", "output", "alias", "generated_code")}
    figures["peak_bytes"] = figures["temp"] + figures["argument"] + figures["output"] - figures["alias"]
    return figures


def build_step(contender, batch, length, programs, seed=0):
    """``(Candidate, facts)``: one jitted, compiled forward + backward of ``mean(hs ** 2)`` with
    respect to the parameters and the inputs; ``facts`` holds compile time and memory.

    ``programs`` maps the lowered text of the programs built so far to ``(name, compiled,
    facts)``: a contender that lowers to one of them (``auto`` and the back-end it picks) runs
    that compiled program, and its facts say ``same_program_as``.
    """
    module = module_of(contender)
    xs = jax.random.normal(jax.random.PRNGKey(seed), (batch, length, contender.input_size))
    params = module.init(jax.random.PRNGKey(seed + 1), xs[:1, :2])["params"]

    def loss(params, xs):
        hs = module.apply({"params": params}, xs)
        return jnp.mean(jnp.square(hs.astype(jnp.float32)))

    start = time.perf_counter()
    print(f"    {contender.name} B={batch} T={length}: ", end="", file=sys.stderr, flush=True)
    lowered = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(params, xs)
    text = lowered.as_text()
    if text in programs:
        name, compiled, facts = programs[text]
        facts = {**facts, "compile_s": None, "same_program_as": name}
    else:
        compiled = lowered.compile()
        facts = {"compile_s": time.perf_counter() - start, "memory": memory_figures(compiled)}
        programs[text] = (contender.name, compiled, facts)
    print(f"{time.perf_counter() - start:.1f} s to build", file=sys.stderr, flush=True)
    return Candidate(contender.name, lambda: compiled(params, xs)), facts


def skip_reason(contender, length, args):
    """Why ``contender`` is not timed at ``length`` (None: it is)."""
    if contender.family == "transformer" and length > args.transformer_max_length:
        return (f"attention is O(T^2) in time (and, materialized, in memory): "
                f"past --transformer-max-length={args.transformer_max_length}")
    return None


def resolved_backend(contender, length):
    if contender.backend != "auto":
        return contender.backend
    return linear_scan.choose_backend(jax.default_backend(), length, contender.width)


def benchmark_length(contenders, length, args):
    """Rows (one per contender) at one length, the recurrent contenders timed alternately.

    The Transformer block is timed in rounds of its own, after them: alternating with them, its
    multi-GB temporaries slowed whichever contender ran next (at T = 8192 the program that
    followed it took 1.55x the time of the very same compiled program elsewhere in the round).
    """
    batch = max(1, args.tokens // length)
    groups, facts, rows, programs = {}, {}, [], {}
    for contender in contenders:
        reason = skip_reason(contender, length, args)
        if reason is None:
            candidate, facts[contender.name] = build_step(contender, batch, length, programs)
            groups.setdefault(contender.family == "transformer", []).append(candidate)
        rows.append(row_of(contender, batch, length, reason))
    before_round, busy = None, []
    if args.idle_gate is not None:
        before_round = lambda: busy.append(wait_for_idle_cpu(args.idle_gate))
    timings = {}
    for group in groups.values():
        timings.update(measure_alternating(group, repeats=args.repeats, warmup=args.warmup,
                                           before_round=before_round))
    for row in rows:
        if row["name"] in timings:
            timing = timings[row["name"]]
            row["results"] = {**timing.summary(), "per_token_s": timing.median_s / row["tokens"]}
            row.update(facts[row["name"]])
        row["cpu_busy_before_rounds"] = busy
    print(f"  T={length} B={batch}: " + ", ".join(
        f"{name} {timing.median_s / (batch * length) * 1e6:.2f} us/token"
        for name, timing in timings.items()), file=sys.stderr, flush=True)
    return rows


def row_of(contender, batch, length, skipped):
    row = {"name": contender.name, "family": contender.family, "cell": contender.cell,
           "backend": contender.backend, "width": contender.width,
           "input_size": contender.input_size, "matched": contender.matched,
           "base_width": contender.base_width,
           "parameters": parameters_of(contender), "length": length, "batch": batch,
           "tokens": batch * length}
    if contender.family == "linear":
        row["resolved_backend"] = resolved_backend(contender, length)
    if skipped:
        row["skipped"] = skipped
    return row


# ----------------------------------------------------------------------------- report


def add_ratios(rows):
    """``ratio_vs_fused_gru`` = the fused GRU's time per token at the same width and length over
    the row's (above 1: the row is faster), and ``vs_512`` = the row's time per token over its
    own at T = 512 (the flatness goal)."""
    per_token = {(r["name"], r["base_width"], r["length"]): r["results"]["per_token_s"]
                 for r in rows if "results" in r}
    for row in rows:
        if "results" not in row:
            continue
        reference = per_token.get((REFERENCE, row["base_width"], row["length"]))
        if reference:
            row["ratio_vs_fused_gru"] = reference / row["results"]["per_token_s"]
        at_512 = per_token.get((row["name"], row["base_width"], 512))
        if at_512:
            row["vs_512"] = row["results"]["per_token_s"] / at_512
    return rows


def markdown_table(rows):
    """Microseconds per token (median) by contender and length, the ratio to the fused GRU at
    equal state width at the two longest lengths (``2.0x``: twice as fast), and the peak memory
    (MiB) at the longest length."""
    lengths = sorted({r["length"] for r in rows})
    by_key = {(r["name"], r["length"]): r for r in rows}
    header = ["contender", "H", "params", *(f"T={t} us/tok" for t in lengths),
              *(f"T={t} vs GRU" for t in lengths[-2:]), f"T={lengths[-1]} peak MiB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in dict.fromkeys(r["name"] for r in rows):
        first = next(r for r in rows if r["name"] == name)
        cells = [name, str(first["width"]), f"{first['parameters']:,}"]
        for length in lengths:
            row = by_key.get((name, length))
            cells.append(f"{row['results']['per_token_s'] * 1e6:.2f}" if row and "results" in row
                         else "-" if row is None else "skipped")
        for length in lengths[-2:]:
            ratio = by_key.get((name, length), {}).get("ratio_vs_fused_gru")
            cells.append(f"{ratio:.2f}x" if ratio else "-")
        peak = by_key.get((name, lengths[-1]), {}).get("memory", {}).get("peak_bytes")
        cells.append(f"{peak / 2**20:,.0f}" if peak else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows):
    """Time per token against ``T`` (log-log): one line per cell and back-end, ``auto`` dotted,
    the fused GRU / LSTM and the Transformer dashed, as references."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 6))
    colors = {cell: f"C{i}" for i, cell in enumerate(
        [*LINEAR_CELLS, "gru", "lstm", "transformer"])}
    markers = {"sequential": "o", "associative": "s", "chunked": "^", "log": "D", "auto": ""}
    for name in dict.fromkeys(r["name"] for r in rows):
        measured = [r for r in rows if r["name"] == name and "results" in r]
        if not measured:
            continue
        points = sorted((r["length"], r["results"]["per_token_s"] * 1e6) for r in measured)
        first = measured[0]
        if first["family"] == "linear":
            style = {"color": colors[first["cell"]], "marker": markers[first["backend"]],
                     "markersize": 4, "linewidth": 1}
            if first["backend"] == "auto":
                style.update(linestyle=":", linewidth=3, alpha=0.5)
        else:
            style = {"color": colors.get(first["cell"], "gray"), "linewidth": 2.5,
                     "linestyle": "--" if first["matched"] == "equal width" else "-."}
        axis.plot(*zip(*points), label=f"{name} (H={first['width']})", **style)
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    lengths = sorted({r["length"] for r in rows})
    axis.set_xticks(lengths, [str(length) for length in lengths])
    low, high = axis.get_ylim()
    ticks = [t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000) if low <= t <= high]
    axis.set_yticks(ticks, [f"{t:g}" for t in ticks])
    axis.minorticks_off()
    axis.set_xlabel("sequence length T (tokens per step fixed)")
    axis.set_ylabel("training step time per token (us)")
    first = rows[0]
    axis.set_title(f"Forward + backward of one layer, I = H = {first['base_width']}, "
                   f"{first['tokens']:,} tokens per step")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def auto_table_as_json():
    """:data:`linear_scan.AUTO_TABLE` with ``None`` for its unbounded (infinite) limits."""
    bound = lambda limit: None if limit == float("inf") else limit
    return {platform: [[bound(length), bound(width), backend] for length, width, backend in table]
            for platform, table in linear_scan.AUTO_TABLE.items()}


# ----------------------------------------------------------------------------- command line


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default=None, help=f"comma-separated T (default {DEFAULT_LENGTHS})")
    parser.add_argument("--width", type=int, default=None, help="state width H = input width I (default 256)")
    parser.add_argument("--tokens", type=int, default=None,
                        help="tokens per step B * T, fixed across lengths (default 16384)")
    parser.add_argument("--auto-widths", default="",
                        help="also time the linear cells' back-ends at these widths (comma-separated), "
                             "at --auto-lengths: the sweep behind AUTO_TABLE")
    parser.add_argument("--auto-lengths", default=None, help="lengths of the --auto-widths sweep (default 512,4096)")
    parser.add_argument("--alternatives", action="store_true",
                        help="also time engine variants written in this script (see the docstring) "
                             "for each of --cells")
    parser.add_argument("--cells", default=",".join(LINEAR_CELLS),
                        help="linear cells, comma-separated (default: all)")
    parser.add_argument("--backends", default=None,
                        help="their back-ends, comma-separated (default: every one a cell supports, and auto)")
    parser.add_argument("--references", default=",".join(REFERENCES),
                        help="comma-separated from gru,lstm (fused) and transformer; empty for none")
    parser.add_argument("--transformer-max-length", type=int, default=8192,
                        help="skip the Transformer block past this length (its attention is O(T^2))")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5; quick 1)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed calls after the first (the programs are compiled ahead, so the "
                             "first call, timed apart, already warms up)")
    parser.add_argument("--idle-gate", type=float, default=None, metavar="BUSY",
                        help="before each timed round, wait (up to 2 min) until the CPUs are at most this busy")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc malloc as is (default: keep freed memory mapped)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 repeat")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    parser.add_argument("--figure", default=None, help="PNG (default: --out with .png)")
    parser.add_argument("--no-figure", action="store_true")
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    args.lengths = [int(t) for t in (args.lengths or quick.get("lengths", DEFAULT_LENGTHS)).split(",") if t]
    args.width = args.width or quick.get("width", 256)
    args.tokens = args.tokens or quick.get("tokens", 16384)
    args.auto_widths = [int(w) for w in args.auto_widths.split(",") if w]
    args.auto_lengths = [int(t) for t in (args.auto_lengths or quick.get("auto_lengths", "512,4096")).split(",") if t]
    args.repeats = args.repeats or (1 if args.quick else 5)
    args.figure = args.figure or os.path.splitext(args.out)[0] + ".png"
    args.cells = _choices(parser, args.cells, LINEAR_CELLS, "cells")
    args.backends = args.backends and _choices(parser, args.backends, [*linear_scan.BACKENDS, "auto"],
                                               "backends")
    args.references = _choices(parser, args.references, REFERENCES, "references")
    return args


def _choices(parser, text, allowed, what):
    chosen = [item for item in text.split(",") if item]
    unknown = sorted(set(chosen) - set(allowed))
    if unknown:
        parser.error(f"unknown {what} {unknown}: choose from {', '.join(allowed)}")
    return chosen


def main(argv=None):
    args = parse_args(argv)
    malloc_tuned = False if args.default_malloc else keep_freed_memory()  # before JAX starts
    environment = describe_environment()
    print(f"# {environment['backend']} ({environment['processor']}), load {environment['load_average']}",
          file=sys.stderr)
    settings = {"lengths": args.lengths, "width": args.width, "tokens_per_step": args.tokens,
                "auto_widths": args.auto_widths, "auto_lengths": args.auto_lengths,
                "alternatives": args.alternatives, "repeats": args.repeats, "warmup": args.warmup,
                "cells": args.cells, "backends": args.backends, "references": args.references,
                "transformer_max_length": args.transformer_max_length,
                "idle_gate": args.idle_gate, "malloc_keeps_freed_memory": malloc_tuned,
                "quick": args.quick, "loss": "mean(hs ** 2), gradient w.r.t. parameters and inputs",
                "auto_table": auto_table_as_json(),
                "command": "python -m experiments.benchmarks.parallel_scan "
                           + shlex.join(sys.argv[1:] if argv is None else argv)}
    report = Report(args.out, "parallel_scan", environment, settings)
    start = time.perf_counter()
    main_contenders = contenders_for(args.width, args.cells, args.backends, args.references)
    if args.alternatives:
        main_contenders += alternative_contenders(args.width, args.cells)
    for length in args.lengths:
        report.add_rows(benchmark_length(main_contenders, length, args))
    for width in args.auto_widths:
        sweep = [c for c in contenders_for(width, args.cells, args.backends, ("gru",))
                 if c.backend != "auto" and not c.name.endswith("/matched")]
        for length in args.auto_lengths:
            report.add_rows(benchmark_length(sweep, length, args))
    add_ratios(report.rows)
    report.content["wall_time_s"] = time.perf_counter() - start
    content = report.finish()
    for width in dict.fromkeys([args.width, *args.auto_widths]):
        print(f"\nI = H = {width}:\n")
        print(markdown_table([r for r in content["rows"] if r["base_width"] == width]))
    if not args.no_figure:
        from experiments.reproductions.command import save_figure

        os.environ.setdefault("MPLBACKEND", "Agg")
        save_figure(plot([r for r in content["rows"] if r["base_width"] == args.width]),
                    args.figure)
        print(f"wrote {args.figure}", file=sys.stderr)
    return content


if __name__ == "__main__":
    main()
