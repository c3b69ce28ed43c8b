"""Preemption: SIGTERM (or SIGINT) saves a checkpoint at the current step, then the run stops.

SLURM, Kubernetes and TPU VMs preempt a job with SIGTERM and kill it with SIGKILL some seconds
later. The training loop asks :meth:`PreemptionSignal.stop_now` after every step; once a signal
has come, it writes the latest checkpoint at that step and raises :class:`Preempted`, so that
rerunning the same command resumes with no step lost (the metrics equal an uninterrupted
run's). The command line exits with status ``128 + signal``: 143 for SIGTERM, 130 for SIGINT.

- One process: a Python handler records SIGTERM and SIGINT; the flag is read after every step.
- Several processes: every process must save the same step, so the run uses JAX's preemption
  sync point (:func:`jax.experimental.multihost_utils.reached_preemption_sync_point`, as orbax
  and MaxText do): JAX's coordination service catches SIGTERM on any process, the processes
  agree on a step just past the furthest one reached, and each stops there.
"""

import signal
import threading

import jax
from jax.experimental import multihost_utils

from seqjax.errors import SeqjaxError

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(SeqjaxError):
    """The run received SIGTERM or SIGINT and stopped after saving its latest checkpoint."""

    def __init__(self, message, signal_number=signal.SIGTERM):
        super().__init__(message)
        self.exit_status = 128 + signal_number


class PreemptionSignal:
    """A context in which SIGTERM and SIGINT are recorded instead of ending the process.

    Python handlers go in only in a single-process run and on the main thread (elsewhere
    Python cannot install them, and in a multi-process run JAX's own notifier listens).
    """

    def __init__(self):
        self.received = None  # the signal number, once one came
        self._previous = {}

    def __enter__(self):
        on_main_thread = threading.current_thread() is threading.main_thread()
        if jax.process_count() == 1 and on_main_thread:
            self._previous = {s: signal.signal(s, self._record) for s in HANDLED_SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for signal_number, handler in self._previous.items():
            signal.signal(signal_number, handler)
        return False

    def _record(self, signal_number, frame):
        del frame
        self.received = signal_number

    def stop_now(self, step):
        """Whether the run saves and stops after ``step`` (every process gets the same answer)."""
        if jax.process_count() == 1:
            return self.received is not None
        if multihost_utils.reached_preemption_sync_point(step):
            self.received = signal.SIGTERM
            return True
        return False

    def name(self):
        return signal.Signals(self.received or signal.SIGTERM).name
