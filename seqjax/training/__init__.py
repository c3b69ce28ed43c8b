"""Training: one loop for every run, sharded over the devices and processes it is given.

- :mod:`~seqjax.training.loop`: ``train_and_evaluate(config, workdir)`` and the loop itself;
- :mod:`~seqjax.training.language_modeling`, :mod:`~seqjax.training.sequence_tasks`: what is
  trained (batches, loss, evaluation) for language models and for the generated tasks;
- :mod:`~seqjax.training.step`: the train state and the jitted update;
- :mod:`~seqjax.training.optimizer`: AdamW with warmup and cosine decay;
- :mod:`~seqjax.training.sharding`: the device mesh and what is sharded how;
- :mod:`~seqjax.training.distributed`: joining a multi-process run;
- :mod:`~seqjax.training.checkpoints`, :mod:`~seqjax.training.metrics_log`,
  :mod:`~seqjax.training.workdir`, :mod:`~seqjax.training.timing`: what a run keeps on disk;
- :mod:`~seqjax.training.config_checks`: config errors that name the fix.
"""

from seqjax.training.loop import train_and_evaluate
from seqjax.training.metrics_log import read_metrics

__all__ = ["train_and_evaluate", "read_metrics"]
