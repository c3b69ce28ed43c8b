"""A benchmark's JSON report, rewritten after every row so that a run cut short keeps its figures.

On a lent accelerator or a shared machine a run may be stopped at a time limit; the report
on disk then holds every row measured so far and ``"complete": false``.
"""

import json
import os
import sys

from experiments.benchmarks.environment import load_average


class Report:
    """``{"benchmark", "environment", "settings", "rows", "complete"}`` at ``path``."""

    def __init__(self, path, benchmark, environment, settings):
        self.path = path
        self.content = {"benchmark": benchmark, "environment": environment, "settings": settings,
                        "rows": [], "complete": False}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._write()

    @property
    def rows(self):
        return self.content["rows"]

    def add_rows(self, rows):
        """Append ``rows`` and rewrite the file."""
        self.rows.extend(rows)
        self._write()

    def finish(self):
        """Mark the run complete, with the load average after it; returns the content."""
        self.content["environment"]["load_average_after"] = load_average()
        self.content["complete"] = True
        self._write()
        print(f"wrote {self.path}", file=sys.stderr)
        return self.content

    def _write(self):
        temporary = f"{self.path}.partial"
        with open(temporary, "w") as f:
            json.dump(self.content, f, indent=1)
        os.replace(temporary, self.path)
