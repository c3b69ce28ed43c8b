"""Where a step's first call goes: Python tracing, lowering, and XLA's compiler, scope by scope.

Usage (one command; the same on CPU, GPU and TPU)::

    python -m experiments.benchmarks.compile_time              # LSTM, GRU, Elman (H=256), nanoGPT-CPU GPT
    python -m experiments.benchmarks.compile_time --quick      # tiny smoke run
    python -m experiments.benchmarks.compile_time --models lstm:32x128x64x256 --contenders seqjax,flax
    python -m experiments.benchmarks.compile_time --variants ";--xla_gpu_autotune_level=0"  # XLA flags A/B
    python -m experiments.benchmarks.compile_time --gpu-target experiments/benchmarks/gpu_targets/h200.txtpb

Models are ``CELL:BxTxIxH`` (the recurrent benchmark's model and contenders ``seqjax``, ``scan``,
``flax``, built as :mod:`recurrent` builds them) or ``gpt:SIZE`` (the Transformer benchmark's
model at one of its sizes; seqjax only). Each (model, contender, mode, variant) is measured in a
fresh Python process (``--repeats`` of them; the row is the median one, the lower middle for an
even count), so that nothing compiled before is reused (the on-disk cache is off) and a
variant's ``XLA_FLAGS`` take effect. This process never starts a JAX backend itself, so that
every child can own the accelerator. A child builds the jitted step and times, in order:

- ``trace``: ``jax.jit(step).trace(...)``, Python running the model into a jaxpr (autodiff included);
- ``lower``: ``.lower()``, the jaxpr to StableHLO;
- ``compile``: ``.compile()``, XLA: its HLO passes, code generation and, on a GPU, the autotuning
  of matrix products. It runs under :mod:`jax.profiler` (``--no-profile``: alone), and XLA's
  named scopes (its TraceMe events: passes, emitters, autotuners, LLVM/PTX compilers) give the
  breakdown, as *self* time: a scope's time less the scopes nested in it on its thread, summed
  over threads, so work that XLA runs on several threads at once can add up to more than the
  wall time. :data:`WAITING_SCOPES` are XLA:CPU's scopes that only wait for other threads; on
  another backend a waiting scope may still be counted, so read the inclusive list beside it.

``total_s`` is their sum: the first call's cost without running the step once. The optimized
HLO's size (instructions, fusions, loops, matrix products, custom calls) is recorded beside it.
Prints a markdown table; writes every figure to ``--out`` (JSON).

``--gpu-target FILE`` compiles for a GPU this machine does not have: ``FILE`` describes it (an
XLA ``GpuTargetConfigProto`` in text form, e.g. ``gpu_targets/h200.txtpb``), and JAX's CUDA
plugin (``pip install "jax[cuda13]"``; no GPU or driver needed) compiles for a compile-only
device of that kind, as JAX's ahead-of-time API does for a TPU topology. The steps are the
GPU's own (seqjax's fused recurrence hoists its input projection there, as on a GPU), and so
are XLA:GPU's passes, its LLVM/PTX code generation and ``ptxas``; what needs the card is left
out: XLA's autotuning of matrix products (it keeps its default tiling) and cuDNN's kernels
(the Transformer's ``"auto"`` attention takes the equation). See :mod:`gpu_target`.
"""

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import jax

from experiments.benchmarks import recurrent, transformer
from experiments.benchmarks import gpu_target
from experiments.benchmarks import recurrent_contenders as contenders
from experiments.benchmarks.environment import (
    describe_environment, matmul_precision_for_backend, set_float32_matmul_precision)
from experiments.benchmarks.recurrent import parse_choices, parse_shape
from experiments.benchmarks.report import Report

RECURRENT_CONTENDERS = ("seqjax", "scan", "flax")
DEFAULT_MODELS = "lstm:32x128x64x256,gru:32x128x64x256,elman:32x128x64x256,gpt:nanogpt_cpu"
QUICK_MODELS = "lstm:2x8x4x8,gpt:tiny"
MODES = ("train", "forward")
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "compile_time.json")


def build_candidate(model, contender, mode, dtype, for_gpu=False):
    """The benchmark's :class:`Candidate` for ``model`` (``CELL:BxTxIxH`` or ``gpt:SIZE``),
    built as on a GPU where ``for_gpu`` (on this machine's backend, otherwise)."""
    kind, _, detail = model.partition(":")
    if kind == "gpt":
        size = transformer.SIZES[detail]
        return transformer.seqjax_contender(size, transformer.fixed_batch(size), "auto", dtype)[mode]
    shape = parse_shape(detail, contenders.Shape.vocab)
    # The recurrent benchmark's defaults; fused_unroll's per-backend choice made for the target.
    settings = recurrent.parse_args(["--dtype", dtype, "--hoist-input-projection",
                                     "on" if for_gpu else "auto"])
    return recurrent.build(contender, kind, shape, contenders.random_batch(shape), settings)[mode]


# Scopes whose thread waits for others, left out of the self times so that no work counts twice:
# JAX's scope around the whole compilation (XLA:CPU compiles on its own threads), and XLA:CPU's
# JIT step, during which its codegen threads compile the kernels (measured: both codegen threads
# busy for 99% of it, in TaskDispatcher::dispatch and FusionCompiler::Compile).
WAITING_SCOPES = ("backend_compile_and_load", "JitCompiler::Compile")


def scope_times(log_dir, top):
    """``{"self": [...], "inclusive": [...]}``: a profile's ``top`` host scopes by each time.

    Each entry is ``{"scope", "self_ms", "inclusive_ms", "count"}``, summed over its calls
    (``self_ms`` is None for the :data:`WAITING_SCOPES`).

    Events on one thread nest by time; a scope's self time is its duration less its
    children's. Python-level events (named ``$file:line``) are left out, and a program's name
    is dropped from a scope's (``dce (jit_train_step)`` counts as ``dce``).
    """
    paths = [os.path.join(root, name) for root, _, names in os.walk(log_dir)
             for name in names if name.endswith(".xplane.pb")]
    if not paths:
        return {"self": [], "inclusive": []}
    profile = jax.profiler.ProfileData.from_file(paths[0])
    inclusive, self_time, count = collections.Counter(), collections.Counter(), collections.Counter()
    for plane in profile.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            open_scopes = []  # [name, end_ns]
            for event in sorted(line.events, key=lambda e: (e.start_ns, -e.duration_ns)):
                if event.name.startswith("$"):
                    continue
                name = re.sub(r" \(jit_\w+\)$", "", event.name)
                while open_scopes and open_scopes[-1][1] <= event.start_ns:
                    open_scopes.pop()
                if open_scopes:
                    self_time[open_scopes[-1][0]] -= event.duration_ns
                inclusive[name] += event.duration_ns
                self_time[name] += event.duration_ns
                count[name] += 1
                open_scopes.append([name, event.end_ns])
    for name in WAITING_SCOPES:
        self_time.pop(name, None)

    def listed(counter):
        return [{"scope": name, "self_ms": self_time[name] / 1e6 if name in self_time else None,
                 "inclusive_ms": inclusive[name] / 1e6, "count": count[name]}
                for name, _ in counter.most_common(top)]

    return {"self": listed(self_time), "inclusive": listed(inclusive)}


def hlo_size(compiled_text):
    """Instruction counts of an optimized HLO module: all, fusions, while loops, dots (and
    ``distinct_dots``, those that differ in operand shapes or dimensions), custom calls by
    target, and Triton GEMM fusions. On a CPU the matrix products stay dots; on a GPU XLA turns
    them into cuBLAS custom calls (``__cublas$gemm``) or Triton GEMM fusions (``__triton_gemm``,
    ``__triton_nested_gemm_fusion``; their dots still count as dots), which it autotunes.
    ``dot_operand_dtypes`` counts the dots by their operands' dtypes (``"bf16 x bf16"``): the
    products XLA left in a dtype or widened to float32."""
    instruction = r"^\s*(?:ROOT\s+)?%?(\S+)\s=\s(.*?)\s([a-z][\w-]*)\(([^)]*)\)(.*)$"
    shapes, opcodes, dots, targets = {}, collections.Counter(), set(), collections.Counter()
    operand_dtypes = collections.Counter()
    for name, result, opcode, operands, attributes in re.findall(instruction, compiled_text, re.M):
        shapes[name] = result.split("{")[0]
        opcodes[opcode] += 1
        if opcode == "dot":
            operand_shapes = tuple(shapes.get(o.strip().lstrip("%"), "?") for o in operands.split(","))
            dimensions = re.sub(r", metadata=\{.*", "", attributes)
            dots.add((shapes[name], operand_shapes, dimensions))
            operand_dtypes[" x ".join(shape.split("[")[0] for shape in operand_shapes)] += 1
        if opcode == "custom-call":
            targets.update(re.findall(r'custom_call_target="([^"]+)"', attributes))
    return {"instructions": sum(opcodes.values()), "fusion": opcodes["fusion"],
            "while": opcodes["while"], "dot": opcodes["dot"], "distinct_dots": len(dots),
            "custom-call": opcodes["custom-call"], "custom_call_targets": dict(targets),
            "dot_operand_dtypes": dict(operand_dtypes),
            "triton_gemm_fusions": len(re.findall(r'"kind":"__triton(?:_nested)?_gemm', compiled_text))}


def measure(candidate, top, profile=True, place=None):
    """Seconds to trace, lower and compile ``candidate``'s program, and what the compiler did
    (``profile``: XLA's scopes during the compilation; ``place``: see :meth:`Candidate.trace`)."""
    start = time.perf_counter()
    traced = candidate.trace(place)
    traced_at = time.perf_counter()
    lowered = traced.lower()
    lowered_at = time.perf_counter()
    with tempfile.TemporaryDirectory() as log_dir:
        if profile:
            options = jax.profiler.ProfileOptions()
            options.python_tracer_level = 0
            jax.profiler.start_trace(log_dir, profiler_options=options)
        compile_start = time.perf_counter()
        compiled = lowered.compile()
        compile_s = time.perf_counter() - compile_start
        if profile:
            jax.profiler.stop_trace()
        scopes = scope_times(log_dir, top) if profile else None
    return {"trace_s": traced_at - start, "lower_s": lowered_at - traced_at, "compile_s": compile_s,
            "total_s": traced_at - start + lowered_at - traced_at + compile_s,
            "hlo": hlo_size(compiled.as_text()), "compiler_scopes": scopes}


def child_main(spec):
    """In a fresh process: measure one (model, contender, mode) and print its JSON."""
    jax.config.update("jax_enable_compilation_cache", False)
    target = spec.get("gpu_target")
    device = gpu_target.compile_only_gpu(target) if target else None
    if device:  # as on the GPU itself, whatever backend this process has
        set_float32_matmul_precision(spec["matmul_precision"])
    else:
        matmul_precision_for_backend(spec["matmul_precision"])
    candidate = build_candidate(spec["model"], spec["contender"], spec["mode"], spec["dtype"],
                                for_gpu=bool(target))
    place = gpu_target.abstract_on(device) if device else None
    measured = measure(candidate, spec["top"], spec["profile"], place)
    if device:
        compiled_for = f"{device.device_kind} (compile-only, {gpu_target.cuda_plugin_version()})"
    else:
        compiled_for = str(jax.devices()[0].device_kind)
    print(json.dumps({**measured, "compiled_for": compiled_for, "environment": describe_environment()}))


def measure_in_fresh_process(spec, variant, timeout_s):
    """:func:`child_main` in a subprocess with ``variant`` appended to ``XLA_FLAGS``."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(filter(None, [env.get("XLA_FLAGS", ""), variant]))
    if spec.get("gpu_target"):
        env[gpu_target.SKIP_CUDA_CHECK] = "1"
    command = [sys.executable, "-m", "experiments.benchmarks.compile_time", "--child", json.dumps(spec)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"not done after {timeout_s} s"}
    last_words = " / ".join(done.stderr.strip().splitlines()[-3:]) or f"exit status {done.returncode}"
    if done.returncode:
        return {"error": last_words}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no measurement printed: {last_words}"}


def median_of_fresh_processes(spec, variant, repeats, timeout_s):
    """The measurement with the median ``total_s`` of ``repeats`` fresh processes (the lower
    middle one for an even count), with every process's ``total_s`` in ``total_s_runs``; or the
    first failure, with the ``total_s`` of the processes before it."""
    runs = []
    for _ in range(repeats):
        run = measure_in_fresh_process(spec, variant, timeout_s)
        if "error" in run:
            return {**run, "total_s_runs": [earlier["total_s"] for earlier in runs]}
        runs.append(run)
    runs.sort(key=lambda run: run["total_s"])
    return {**runs[(len(runs) - 1) // 2], "total_s_runs": [run["total_s"] for run in runs]}


def contenders_for(model, chosen):
    return ["seqjax"] if model.startswith("gpt:") else chosen


def markdown_table(rows):
    """Seconds per phase, the optimized HLO's size and the three costliest compiler scopes."""
    header = ["model", "contender", "mode", "XLA flags", "trace s", "lower s", "compile s",
              "total s", "HLO instr.", "fusions", "top compiler scopes (self ms)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        first = [row["model"], row["contender"], row["mode"], row["variant"] or "default"]
        if "error" in row:
            lines.append("| " + " | ".join(first + [f"error: {row['error']}"] + [""] * 6) + " |")
            continue
        scopes = ", ".join(f"{s['scope']} {s['self_ms']:,.0f}"
                           for s in (row["compiler_scopes"] or {"self": []})["self"][:3]) or "-"
        lines.append("| " + " | ".join(first + [
            f"{row['trace_s']:.2f}", f"{row['lower_s']:.2f}", f"{row['compile_s']:.2f}",
            f"{row['total_s']:.2f}", f"{row['hlo']['instructions']:,}", f"{row['hlo']['fusion']:,}",
            scopes]) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None,
                        help=f"comma-separated CELL:BxTxIxH or gpt:SIZE (default {DEFAULT_MODELS})")
    parser.add_argument("--contenders", default="seqjax,scan,flax",
                        help="for the recurrent models, from seqjax, scan, flax")
    parser.add_argument("--modes", default="train", help="comma-separated: train,forward")
    parser.add_argument("--variants", default="",
                        help="XLA_FLAGS settings to compare, separated by ';' (flag values may hold "
                             "commas), each added to the environment's; an empty item is the "
                             "default (e.g. ';--xla_gpu_autotune_level=0')")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="time the compilation without the profiler (no scope breakdown)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--matmul-precision", default="highest", choices=("highest", "tf32"))
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per row; the row is the median one (default 1)")
    parser.add_argument("--top", type=int, default=15, help="compiler scopes kept per row")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per process")
    parser.add_argument("--gpu-target", default=None, metavar="FILE",
                        help="compile for the GPU FILE describes (an XLA GpuTargetConfigProto, "
                             "e.g. experiments/benchmarks/gpu_targets/h200.txtpb) on this machine, "
                             "without autotuning; needs JAX's CUDA plugin, not a GPU")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_MODELS}")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.models = [m for m in (args.models or (QUICK_MODELS if args.quick else DEFAULT_MODELS)).split(",") if m]
    try:
        for model in args.models:
            kind, _, detail = model.partition(":")
            if kind == "gpt" and detail not in transformer.SIZES:
                raise ValueError(f"model {model!r}: choose gpt:SIZE from {', '.join(transformer.SIZES)}")
            if kind != "gpt" and kind not in recurrent.CELLS:
                raise ValueError(f"model {model!r}: a model is CELL:BxTxIxH with CELL one of "
                                 f"{', '.join(recurrent.CELLS)}, or gpt:SIZE")
            if kind != "gpt":
                parse_shape(detail, contenders.Shape.vocab)
        args.contenders = parse_choices(args.contenders, RECURRENT_CONTENDERS, "contenders")
        args.modes = parse_choices(args.modes, MODES, "modes")
    except ValueError as error:
        parser.error(str(error))
    args.variants = [variant.strip() for variant in args.variants.split(";")]
    if args.gpu_target and not os.path.isfile(args.gpu_target):
        parser.error(f"--gpu-target {args.gpu_target}: no such file; the described GPUs are in "
                     f"{gpu_target.TARGETS_DIR}")
    if args.gpu_target and args.dtype == "bfloat16" and any(m.startswith("gpt:") for m in args.models):
        parser.error("--gpu-target with a bfloat16 GPT: on the card its attention is cuDNN's, which "
                     "cannot compile without one; use float32 or a recurrent model")
    if args.gpu_target and not args.child and not gpu_target.cuda_plugin_installed():
        parser.error(gpu_target.NO_CUDA_PLUGIN)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))
    settings = {"dtype": args.dtype, "matmul_precision": args.matmul_precision,
                "repeats": args.repeats, "profile": args.profile, "compilation_cache": False,
                "gpu_target": args.gpu_target}
    report = Report(args.out, "compile_time", {"described_by": "the first measuring process"},
                    settings)
    for model in args.models:
        for contender in contenders_for(model, args.contenders):
            for mode in args.modes:
                for variant in args.variants:
                    spec = {"model": model, "contender": contender, "mode": mode, "dtype": args.dtype,
                            "matmul_precision": args.matmul_precision, "top": args.top,
                            "profile": args.profile, "gpu_target": args.gpu_target}
                    row = {**spec, "variant": variant,
                           **median_of_fresh_processes(spec, variant, args.repeats, args.timeout)}
                    environment = row.pop("environment", None)
                    if environment and "described_by" in report.content["environment"]:
                        report.content["environment"] = environment
                    report.add_rows([row])
                    print(f"  {model} {contender} {mode} {variant or 'default'}: "
                          + (row.get("error") or f"{row['total_s']:.2f} s"), file=sys.stderr, flush=True)
    report = report.finish()
    print(markdown_table(report["rows"]))
    return report


if __name__ == "__main__":
    main()
