"""Training metrics: ``WORKDIR/metrics.jsonl`` (one JSON object per logged step) and TensorBoard.

On resume the JSONL file is cut back to the restored step, so an interrupted-and-resumed run
ends with exactly the records of an uninterrupted one.
"""

import json
import sys
from pathlib import Path


def read_metrics(workdir):
    """All records of ``WORKDIR/metrics.jsonl`` as a list of dicts.

    A last line without its newline (the run was killed while writing it) is left out.
    """
    path = Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def summary_writer_class():
    """tensorboardX's ``SummaryWriter``, imported without PyTorch.

    Imported here, not at the top: only a run that writes metrics needs it. tensorboardX imports
    PyTorch, when installed, only to accept torch tensors, which seqjax never logs; that import
    costs ~2 s a process, so it is made to fail while tensorboardX loads (unless PyTorch is
    already loaded).
    """
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError while this stands
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricsLog:
    """Appends records; ``resume_step`` drops records after the step a resumed run restarts from.

    Only one process of a multi-process run writes (``enabled``); the others' logs do nothing.
    """

    def __init__(self, workdir, resume_step=0, enabled=True):
        self.enabled = enabled
        if not enabled:
            return
        self.path = Path(workdir) / "metrics.jsonl"
        kept = [r for r in read_metrics(workdir) if r["step"] <= resume_step]
        temporary = self.path.with_suffix(".jsonl.tmp")
        temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
        temporary.replace(self.path)
        self.tensorboard = summary_writer_class()(str(Path(workdir) / "tensorboard"))

    def write(self, record):
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
        for key, value in record.items():
            if key != "step":
                self.tensorboard.add_scalar(key, value, record["step"])

    def close(self):
        if self.enabled:
            self.tensorboard.close()
