"""The recurrent family in one room.

- :mod:`seqjax.recurrent.cells`: every cell as pure functions of one example (``init``,
  ``initial_carry``, ``step``, ``output``), the equations in their docstrings: the classic
  Elman RNN, LSTM and GRU, and the recurrences linear in the state (minGRU, minLSTM, LRU,
  RG-LRU), which also give their step as coefficients ``h_t = a_t * h_{t-1} + b_t``;
- :mod:`seqjax.recurrent.unroll`: any cell's ``step`` driven by ``jax.lax.scan`` (the reference);
- :mod:`seqjax.recurrent.fused_bptt`: the classic cells' fast path, the lecture's BPTT as a
  ``jax.custom_vjp``;
- :mod:`seqjax.recurrent.linear_scan`: the scan engine of the linear recurrences, with
  interchangeable back-ends (sequential, associative, chunked, log-space, ``auto``);
- :mod:`seqjax.recurrent.layers` and :mod:`seqjax.recurrent.blocks`: Flax shells over ``[B, T, I]``
  batches, and the papers' residual blocks.
"""
