"""Preemption: SIGTERM saves a checkpoint at the current step, then the run stops.

SLURM, Kubernetes and TPU VMs preempt a job with SIGTERM and kill it with SIGKILL some seconds
later. :class:`PreemptionSignal` turns the SIGTERM into a flag that the training loop reads
after a step: it then writes the latest checkpoint at that step and raises :class:`Preempted`,
so rerunning the same command resumes with no step lost (the metrics equal an uninterrupted
run's). The command line exits with status 143, as a process ended by SIGTERM does.

In a multi-process run every process must checkpoint at the same step, so the processes agree
on the flag (an all-gather) at the steps where the host already waits for the devices (log,
evaluation and checkpoint steps); a single process reads its flag after every step.
"""

import signal
import threading

import jax
import numpy as np
from jax.experimental import multihost_utils

from seqjax.errors import SeqjaxError

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM  # 143


class Preempted(SeqjaxError):
    """The run received SIGTERM and stopped after saving its latest checkpoint."""

    exit_status = SIGTERM_EXIT_STATUS


class PreemptionSignal:
    """A context that records SIGTERM instead of dying of it (main thread only; elsewhere, where
    Python cannot install a handler, SIGTERM keeps its usual effect)."""

    def __init__(self):
        self.received = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._record)
        return self

    def __exit__(self, *exc_info):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False

    def _record(self, signum, frame):
        del signum, frame
        self.received = True

    def stop_now(self, host_waits):
        """Whether the run stops after this step: this process's flag, agreed by every process
        (only where ``host_waits``, in a multi-process run)."""
        if jax.process_count() == 1:
            return self.received
        if not host_waits:
            return False
        flags = multihost_utils.process_allgather(np.int32(self.received))
        return bool(np.any(flags))
