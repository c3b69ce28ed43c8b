"""Run ``python -m experiments.train ARGS``, but SIGKILL this process at a given step.

    python -m tests.kill_at_step STEP [SIGTERM] --config=... --workdir=... [experiments.train flags]

The process kills itself when the loop asks for the batch of ``STEP`` (a kill -9 at a known
point of the run, which a timer could not give: a small run's steps take milliseconds).
With ``SIGTERM`` it sends itself that signal instead, as a scheduler preempting it would.
"""

from experiments.jemalloc import restart_under_jemalloc

if __name__ == "__main__":  # as experiments.train does, before JAX is imported
    restart_under_jemalloc("kill_at_step")

import os
import runpy
import signal
import sys

from seqjax.training import language_modeling, sequence_tasks


def kill_at(step_to_die, signal_number=signal.SIGKILL):
    for cls in (language_modeling.LanguageModeling, sequence_tasks.SequenceTask):
        real = cls.training_batch

        def batch_or_die(self, step, rows, real=real):
            if step == step_to_die:
                os.kill(os.getpid(), signal_number)
            return real(self, step, rows)

        cls.training_batch = batch_or_die


if __name__ == "__main__":
    terminate = len(sys.argv) > 2 and sys.argv[2] == "SIGTERM"
    kill_at(int(sys.argv[1]), signal.SIGTERM if terminate else signal.SIGKILL)
    sys.argv = ["experiments.train"] + sys.argv[3 if terminate else 2:]
    runpy.run_module("experiments.train", run_name="__main__", alter_sys=True)
