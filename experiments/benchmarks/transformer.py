"""Transformer LM training-step throughput: seqjax against a PyTorch GPT of the same size.

Usage (one command; the same on CPU, GPU and TPU)::

    python -m experiments.benchmarks.transformer                  # default sizes for the backend
    python -m experiments.benchmarks.transformer --quick          # tiny smoke run, seconds
    python -m experiments.benchmarks.transformer --sizes nanogpt_cpu --repeats 20
    python -m experiments.benchmarks.transformer --dtype bfloat16  # mixed precision
    python -m experiments.benchmarks.transformer --idle-gate 0.1   # on a shared machine

Both models are nanoGPT's GPT: token + learned position embedding, pre-LayerNorm blocks
(causal multi-head self-attention, MLP with exact GELU), final LayerNorm, head tied to the
token embedding, no biases, dropout 0. seqjax's is :class:`seqjax.models.transformer_lm.
TransformerLM` built from the ``nanogpt_cpu`` config's model section (resized); PyTorch's is
:class:`experiments.benchmarks.nanogpt_torch.GPT` (``F.scaled_dot_product_attention``, i.e.
PyTorch's fused attention kernels where the device has them). A *training step* is forward +
backward + global-norm clipping (1.0) + AdamW, exactly as each library trains: seqjax's own
:func:`seqjax.training.step.train_step` under ``jax.jit`` with the state donated, and nanoGPT's
``zero_grad / backward / clip_grad_norm_ / step`` in eager PyTorch. A *forward* pass is the loss
alone. The batch is fixed, so only the model is timed. Ratio = PyTorch time / seqjax time.

``--dtype bfloat16`` is mixed precision in both: seqjax's ``model.dtype = "bfloat16"``, and
PyTorch's forward and loss under ``torch.autocast(dtype=torch.bfloat16)`` as nanoGPT's
``train.py`` runs them; parameters and optimizer state stay float32 in both.
"""

import argparse
import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmarks.environment import (
    describe_environment, matmul_precision_for_backend, torch_device, wait_for_idle_cpu,
)
from experiments.benchmarks.report import Report
from experiments.benchmarks.timing import Candidate, measure_alternating, torch_candidates
from experiments.configs import nanogpt_cpu
from experiments.freed_memory import keep_freed_memory
from seqjax.losses import mean_cross_entropy
from seqjax.models import build_model
from seqjax.training.language_modeling import language_model_loss
from seqjax.training.optimizer import make_optimizer
from seqjax.training.step import init_train_state, train_step

VOCAB = 65
# name -> (num_layers, num_heads, width, batch, length)
SIZES = {
    "nanogpt_cpu": (4, 4, 128, 12, 64),  # nanoGPT's published CPU run
    "nanogpt_gpu": (6, 6, 384, 64, 256),  # nanoGPT's train_shakespeare_char (GPU) run
    "nanogpt_gpu_b8": (6, 6, 384, 8, 256),  # the same model at batch 8, for a CPU
    "tiny": (2, 2, 16, 2, 8),  # --quick
}
DEFAULT_SIZES = {"cpu": "nanogpt_cpu,nanogpt_gpu_b8", "other": "nanogpt_cpu,nanogpt_gpu"}
MODES = ("train", "forward")
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "transformer.json")
CUDNN_ATTENTION_CALL = "__cudnn$fmha"  # the custom call of cuDNN's fused attention


def seqjax_contender(size, data, attention_impl, dtype="float32"):
    """``{"train": Candidate, "forward": Candidate}`` for seqjax's TransformerLM."""
    num_layers, num_heads, width, batch, length = size
    config = nanogpt_cpu.get_config()
    config.batch_size, config.seq_len = batch, length
    config.model.update(num_layers=num_layers, num_heads=num_heads, width=width,
                        attention_impl=attention_impl, dtype=dtype)
    model = build_model(config.model, VOCAB, length)
    optimizer, _ = make_optimizer(config.optim, config.num_steps)
    inputs, targets = (jnp.asarray(a) for a in data)
    params = model.init(jax.random.PRNGKey(config.seed), inputs)["params"]
    state = {"train": init_train_state(params, optimizer), "diverged_at": jnp.zeros((), jnp.int32)}
    batch = (inputs, targets, jnp.zeros((batch,), bool))
    loss_fn = functools.partial(language_model_loss, model)
    step = jax.jit(functools.partial(train_step, loss_fn, optimizer, config.seed), donate_argnums=0)

    def train_arguments():
        return state["train"], state["diverged_at"], batch

    def train():
        state["train"], loss, state["diverged_at"] = step(*train_arguments())
        return loss

    @jax.jit
    def loss_of(params, inputs, targets):
        logits, _ = model.apply({"params": params}, inputs)
        return mean_cross_entropy(logits, targets)

    def forward_arguments():
        return state["train"].params, inputs, targets

    return {"train": Candidate("seqjax", train, program=step, arguments=train_arguments),
            "forward": Candidate("seqjax", lambda: loss_of(*forward_arguments()),
                                 program=loss_of, arguments=forward_arguments)}


def torch_contender(size, data, device, dtype="float32"):
    """``{"train": Candidate, "forward": Candidate}`` for nanoGPT's model in PyTorch."""
    import torch

    from experiments.benchmarks import nanogpt_torch

    num_layers, num_heads, width, batch, length = size
    torch.manual_seed(0)
    model = nanogpt_torch.GPT(VOCAB, length, num_layers, num_heads, width).to(device)
    optimizer = nanogpt_torch.make_optimizer(model, nanogpt_torch.HPARAMS)
    inputs, targets = (torch.as_tensor(a, dtype=torch.long, device=device) for a in data)

    def loss_fn():
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16,
                            enabled=dtype == "bfloat16"):
            logits = model(inputs)
            return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    return torch_candidates("torch", loss_fn, model, optimizer, device,
                            clip_norm=nanogpt_torch.HPARAMS["grad_clip"])


def fixed_batch(size):
    """``(inputs [B, T], targets [B, T])`` int32 tokens for a size, the targets shifted by one."""
    *_, batch, length = size
    tokens = np.random.default_rng(0).integers(0, VOCAB, (batch, length + 1))
    return tokens[:, :-1].astype(np.int32), tokens[:, 1:].astype(np.int32)


def benchmark_size(name, modes, device, args):
    """Rows (one per mode) for one model size, the contenders timed alternately."""
    size = SIZES[name]
    num_layers, num_heads, width, batch, length = size
    data = fixed_batch(size)
    built = {"seqjax": seqjax_contender(size, data, args.attention_impl, args.dtype)}
    if device is not None:
        built["torch"] = torch_contender(size, data, device, args.dtype)
    rows = []
    for mode in modes:
        busy_before_rounds = []
        before_round = None
        if args.idle_gate is not None:
            before_round = lambda: busy_before_rounds.append(wait_for_idle_cpu(args.idle_gate))
        timings = measure_alternating([b[mode] for b in built.values()], repeats=args.repeats,
                                      warmup=args.warmup, before_round=before_round)
        results = {contender: {**timing.summary(), "tokens_per_s": batch * length / timing.median_s}
                   for contender, timing in timings.items()}
        ratios = {"torch": timings["torch"].median_s / timings["seqjax"].median_s} if device else {}
        rows.append({"size": name, "num_layers": num_layers, "num_heads": num_heads,
                     "width": width, "batch": batch, "length": length, "mode": mode,
                     "results": results, "ratios": ratios,
                     "cpu_busy_before_rounds": busy_before_rounds})
        print(f"  {name} {mode}: " + ", ".join(
            f"{contender} {timing.median_s * 1e3:.1f} ms (first call {timing.first_call_s:.1f} s)"
            for contender, timing in timings.items()
        ), file=sys.stderr, flush=True)
    # Read from the lowered step after the timing, so that its first call traces from scratch.
    lowered = built["seqjax"]["train"].trace().lower().as_text()
    for row in rows:
        row["attention_runs"] = "cudnn" if CUDNN_ATTENTION_CALL in lowered else "not cudnn"
    return rows


def markdown_table(rows):
    """Milliseconds per step (median), tokens/s and the ratio torch / seqjax."""
    header = ["size", "L/heads/W", "B x T", "mode", "seqjax ms", "torch ms", "seqjax tok/s", "vs torch"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        results = row["results"]
        torch_ms = f"{results['torch']['median_s'] * 1e3:.1f}" if "torch" in results else "-"
        ratio = f"{row['ratios']['torch']:.2f}" if row["ratios"] else "-"
        cells = [row["size"], f"{row['num_layers']}/{row['num_heads']}/{row['width']}",
                 f"{row['batch']} x {row['length']}", row["mode"],
                 f"{results['seqjax']['median_s'] * 1e3:.1f}", torch_ms,
                 f"{results['seqjax']['tokens_per_s']:,.0f}", ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None,
                        help=f"comma-separated from {', '.join(SIZES)} (default: "
                             f"{DEFAULT_SIZES['cpu']} on a CPU, {DEFAULT_SIZES['other']} elsewhere)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: train,forward")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10; quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls after the first (default 2)")
    parser.add_argument("--attention-impl", default="auto",
                        help="seqjax attention: auto (cuDNN's flash attention on a recent NVIDIA GPU "
                             "in bfloat16, else reference), reference, xla, cudnn or none")
    parser.add_argument("--matmul-precision", default="highest", choices=("highest", "tf32"),
                        help="float32 matrix products in both libraries: full float32 (default) or "
                             "TensorFloat-32 on GPUs that have it")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="compute dtype (bfloat16: mixed precision, float32 parameters)")
    parser.add_argument("--idle-gate", type=float, default=None, metavar="BUSY",
                        help="on a shared machine: before each timed round, wait (up to 2 min) until "
                             "the CPUs are at most this busy, e.g. 0.1")
    parser.add_argument("--no-torch", action="store_true", help="time seqjax alone")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc settings alone (see experiments/freed_memory.py)")
    parser.add_argument("--quick", action="store_true", help="smoke run: size tiny, 2 repeats")
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON file for every figure")
    args = parser.parse_args(argv)
    if args.attention_impl == "none":
        args.attention_impl = None
    args.repeats = args.repeats or (2 if args.quick else 10)
    args.warmup = args.warmup if args.warmup is not None else (0 if args.quick else 2)
    return args


def main(argv=None):
    args = parse_args(argv)
    malloc_tuned = False if args.default_malloc else keep_freed_memory()  # before JAX starts
    backend = jax.default_backend()
    sizes = args.sizes or ("tiny" if args.quick else DEFAULT_SIZES["cpu" if backend == "cpu" else "other"])
    sizes = [s for s in sizes.split(",") if s]
    unknown = sorted(set(sizes) - set(SIZES))
    if unknown:
        raise SystemExit(f"unknown sizes {unknown}: choose from {', '.join(SIZES)}")
    modes = [m for m in args.modes.split(",") if m]
    if set(modes) - set(MODES):
        raise SystemExit(f"unknown modes {sorted(set(modes) - set(MODES))}: choose from train, forward")
    precision = matmul_precision_for_backend(args.matmul_precision)
    device = None if args.no_torch else torch_device()
    environment = describe_environment()
    print(f"# {environment['backend']} ({environment['device_kind']}); torch on {device}",
          file=sys.stderr)
    settings = {"repeats": args.repeats, "warmup": args.warmup, "sizes": sizes,
                "attention_impl": args.attention_impl, "matmul_precision": precision,
                "idle_gate": args.idle_gate,
                "dtype": args.dtype,
                "torch_device": device, "malloc_keeps_freed_memory": malloc_tuned}
    report = Report(args.out, "transformer", environment, settings)
    for name in sizes:
        report.add_rows(benchmark_size(name, modes, device, args))
    report = report.finish()
    print(markdown_table(report["rows"]))
    return report


if __name__ == "__main__":
    main()
