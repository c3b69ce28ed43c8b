"""The copy-memory problem at delays T = 100, 200 for an Elman RNN, an LSTM, a GRU, a causal
(decoder-only) Transformer and a bidirectional Transformer encoder.

    python -m experiments.reproductions.copy_memory --workdir=runs/copy_memory [--budget=...]

Held-out cross-entropy per step against training steps beside the memoryless baseline
``10 ln 8 / (T + 20)``; the models, their matched parameter counts and the ``cpu`` budget as
:mod:`experiments.reproductions.adding`. The ``gpu`` budget trains as long as Arjovsky et al.
(2016, Fig. 1: a million training examples, 50,000 steps of batch 20): 8,000 steps of batch
128, 1.02 M examples.
"""

import sys
from functools import partial

from experiments.reproductions import long_range_memory as memory
from experiments.reproductions.command import main

DELAYS = [100, 200]
GPU = {**memory.GPU, "num_steps": 8000, "eval_every": 200}
BUDGETS = {"tiny": {**memory.TINY, "lengths": [4]}, "cpu": {**memory.CPU, "lengths": DELAYS},
           "gpu": {**GPU, "lengths": DELAYS}}
CLAIM = ("A memoryless model stays at 10 ln 8 / (T + 20); LSTM and GRU fall below it, the plain "
         "RNN does not at long delays (Arjovsky et al. 2016, Fig. 1).")
run = partial(memory.reproduce_memory_task, "copy_memory")
plot = memory.plot

if __name__ == "__main__":
    main(sys.modules[__name__])
