"""Train the sharded tests' configs on several meshes in one process (start-up paid once).

    JAX_NUM_CPU_DEVICES=4 python -m tests.train_on_mesh CORPUS ROOT --run=lstm:4,1 --run=task:2,2

Each ``--run=CONFIG:DATA,FSDP`` trains :func:`tests.training_configs.sharding_config`
``CONFIG`` on that mesh in ``ROOT/CONFIG_DATA_FSDP`` (resuming what is there).
``--collectives=CONFIG:DATA,FSDP`` also writes ``ROOT/collectives.json``: the all-reduces of
that config's compiled training step, inside while-loop bodies and in all.
"""

import argparse
import json
import os
import re
import sys
import tempfile
from functools import partial

import jax
import jax.numpy as jnp

from seqjax.training import train_and_evaluate
from seqjax.training.loop import start_state, training_task_type
from seqjax.training.optimizer import make_optimizer
from seqjax.training.sharding import global_batch, make_mesh, process_rows, replicated
from seqjax.training.step import train_step
from tests.training_configs import sharding_config


def configured(run, corpus):
    """``(name, config)`` of ``CONFIG:DATA,FSDP``."""
    name, mesh = run.split(":")
    config = sharding_config(name, corpus)
    config.mesh.data, config.mesh.fsdp = (int(size) for size in mesh.split(","))
    return f"{name}_{mesh.replace(',', '_')}", config


def all_reduces(config):
    """``{"in_loops": n, "total": m}``: all-reduce ops of the compiled training step, at a
    window of 64 steps (4 gradient chunks of the fused recurrence)."""
    config.seq_len = 64
    mesh = make_mesh(config.mesh)
    training = training_task_type(config)(config, tempfile.mkdtemp(), mesh)
    optimizer, _ = make_optimizer(config.optim, config.num_steps)
    state, shardings = start_state(training, optimizer, config, mesh)
    step = jax.jit(partial(train_step, training.loss, optimizer, config.seed),
                   out_shardings=(shardings, replicated(mesh), replicated(mesh)))
    rows = training.training_batch(0, process_rows(mesh, config.batch_size))
    batch = global_batch(mesh, rows, config.batch_size)
    hlo = step.lower(state, jnp.zeros((), jnp.int32), batch).compile().as_text()
    computations = {block.split()[0].lstrip("%"): block for block in re.split(r"\n(?=\S)", hlo)}
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    count = lambda text: len(re.findall(r"all-reduce(?:-start)?\(", text))
    return {"in_loops": sum(count(computations.get(name, "")) for name in bodies),
            "total": count(hlo)}


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus")
    parser.add_argument("root")
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--collectives")
    args = parser.parse_args(argv)
    for run in args.run:
        name, config = configured(run, args.corpus)
        train_and_evaluate(config, os.path.join(args.root, name))
    if args.collectives:
        counts = all_reduces(configured(args.collectives, args.corpus)[1])
        with open(os.path.join(args.root, "collectives.json"), "w") as f:
            json.dump(counts, f)


if __name__ == "__main__":
    main(sys.argv[1:])
