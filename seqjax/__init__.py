"""seqjax: sequence modeling with JAX/Flax, from the lecture's equations to trained models.

The layout is the architecture: :mod:`seqjax.recurrent` (the recurrent family: pure cells,
``lax.scan`` drivers, the fused BPTT, the linear-scan engine, Flax shells and blocks),
:mod:`seqjax.attention`, :mod:`seqjax.models`, :mod:`seqjax.data`, :mod:`seqjax.tasks`,
:mod:`seqjax.generation`, :mod:`seqjax.training`, :mod:`seqjax.evaluation` (loss along the
context, with bootstrap intervals), :mod:`seqjax.simple_recurrent_network` (Elman's 1990
network and his one-step training rule).
"""

__version__ = "0.1.0"
