"""The adding problem at T = 100, 200, 400 for an Elman RNN, an LSTM, a GRU and a Transformer.

    python -m experiments.reproductions.adding --workdir=runs/adding [--budget=cpu|gpu|tiny]

Held-out MSE against training steps beside the memoryless baseline 1/6 (always predict 1).
Budgets: ``cpu`` 400 steps of batch 32, hidden size 64; ``gpu`` 2,000 steps of batch 128,
hidden size 128. See :mod:`experiments.reproductions.long_range_memory`.
"""

import sys
from functools import partial

from experiments.reproductions import long_range_memory as memory
from experiments.reproductions.command import main

LENGTHS = [100, 200, 400]
BUDGETS = {"tiny": {**memory.TINY, "lengths": [8]}, "cpu": {**memory.CPU, "lengths": LENGTHS},
           "gpu": {**memory.GPU, "lengths": LENGTHS}}
CLAIM = ("At long T the plain RNN does not beat the baseline MSE 1/6; LSTM and GRU do "
         "(Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016, Fig. 2).")
run = partial(memory.reproduce_memory_task, "adding")
plot = memory.plot

if __name__ == "__main__":
    main(sys.modules[__name__])
