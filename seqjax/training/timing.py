"""Where a run's wall time goes: setup, compilation, steps, evaluation, checkpoints.

The loop times each phase with :class:`PhaseClock` and writes ``WORKDIR/timing.json`` at the
end of every invocation (a resumed run times only its own part). The steps never wait for the
device, so their device time surfaces where the host next waits: the loop first waits for the
steps before it evaluates or checkpoints, so that waiting counts as ``steps``.
"""

import json
import time
from contextlib import contextmanager
from pathlib import Path

PHASES = ("setup", "compile", "steps", "evaluation", "checkpoints")


class PhaseClock:
    """Seconds per phase; ``steps`` is the rest of the time since the clock started."""

    def __init__(self):
        self.start = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def all_so_far_is(self, name):
        """Count the whole time since the clock started as phase ``name``."""
        self.seconds[name] = time.perf_counter() - self.start

    @contextmanager
    def phase(self, name):
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - begin

    def report(self, num_steps):
        """``{"<phase>_s": ..., "total_s": ..., "num_steps": ...}``, in seconds."""
        total = time.perf_counter() - self.start
        seconds = dict(self.seconds, steps=total - sum(v for k, v in self.seconds.items()
                                                       if k != "steps"))
        return {**{f"{k}_s": round(v, 3) for k, v in seconds.items()},
                "total_s": round(total, 3), "num_steps": num_steps}

    def write(self, workdir, num_steps):
        path = Path(workdir) / "timing.json"
        path.write_text(json.dumps(self.report(num_steps), indent=2) + "\n")
        return path
