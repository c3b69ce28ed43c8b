"""Data-parallel scaling of the training step: the same global batch on 1, 2, 4... devices.

    JAX_NUM_CPU_DEVICES=4 python -m experiments.benchmarks.data_parallel --devices=1,2,4
    python -m experiments.benchmarks.data_parallel --devices=1,8      # on an 8-GPU machine

For each config and device count ``N`` the step of :func:`seqjax.training.step.train_step`
runs on a mesh of the first ``N`` devices (``data = N``), compiled as the training loop
compiles it; the time is the median of ``--repeats`` rounds of ``--steps`` steps. Simulated
CPU devices share the machine's cores, so on a CPU this measures the overhead of splitting the
batch, not a speedup.
"""

import argparse
import collections
import json
import os
import statistics
import tempfile
import time
from functools import partial

import jax
import jax.numpy as jnp

from experiments.benchmarks.environment import describe_environment
from experiments.configs import char_lstm, char_transformer
from experiments.freed_memory import keep_freed_memory
from seqjax.training.loop import start_state, training_task_type, wait_for_steps_ahead
from seqjax.training.optimizer import make_optimizer
from seqjax.training.sharding import global_batch, make_mesh, process_rows, replicated
from seqjax.training.step import train_step

CONFIGS = {"char_lstm": char_lstm.get_config, "char_transformer": char_transformer.get_config}
DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "data_parallel.json")


def step_seconds(config, devices, steps, repeats):
    """Median seconds per training step of ``config`` on a data-parallel mesh of ``devices``."""
    mesh = make_mesh({"data": len(devices), "fsdp": 1}, devices)
    training = training_task_type(config)(config, tempfile.mkdtemp(), mesh)
    optimizer, _ = make_optimizer(config.optim, config.num_steps)
    state, shardings = start_state(training, optimizer, config, mesh)
    rows = process_rows(mesh, config.batch_size)
    batch = global_batch(mesh, training.training_batch(0, rows), config.batch_size)
    diverged_at = jax.device_put(jnp.zeros((), jnp.int32), replicated(mesh))
    step = jax.jit(partial(train_step, training.loss, optimizer, config.seed), donate_argnums=0,
                   out_shardings=(shardings, replicated(mesh), replicated(mesh)))
    step = step.lower(state, diverged_at, batch).compile()
    state, loss, diverged_at = step(state, diverged_at, batch)  # warm up
    rounds = []
    for _ in range(repeats):
        jax.block_until_ready(loss)
        start, pending = time.perf_counter(), collections.deque()
        for _ in range(steps):  # as the loop: at most MAX_STEPS_AHEAD (several CPU devices)
            state, loss, diverged_at = step(state, diverged_at, batch)
            wait_for_steps_ahead(pending, loss)
        jax.block_until_ready(loss)
        rounds.append((time.perf_counter() - start) / steps)
    return statistics.median(rounds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--devices", default="1,2,4", help="device counts, e.g. 1,2,4")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    keep_freed_memory()
    results = []
    for name in args.configs.split(","):
        config = CONFIGS[name]()
        for count in (int(n) for n in args.devices.split(",")):
            seconds = step_seconds(config, jax.devices()[:count], args.steps, args.repeats)
            results.append({"config": name, "devices": count, "batch_size": config.batch_size,
                            "step_ms": round(1000 * seconds, 2)})
            print(json.dumps(results[-1]))
    report = {"environment": describe_environment(), "results": results}
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
