"""Recurrent cells as pure functions of one example: Elman RNN, LSTM, GRU, and the recurrences
linear in the state: minGRU, minLSTM, LRU, RG-LRU.

Every cell module has the same functions:

- ``init(key, input_size, hidden_size, ...) -> params``: a dict of arrays;
- ``initial_carry(params, batch_shape=()) -> carry``: zeros (``zero_carry(hidden_size, batch_shape)``
  builds the same from sizes alone);
- ``step(params, carry, x) -> (carry, h)``: one time step for ONE example, ``x: [input_size]``,
  carry first so it plugs into ``jax.lax.scan``; batch it with ``jax.vmap``;
- ``output(carry) -> h``: the hidden state inside a carry.

Carries: ``h`` for Elman, GRU, minGRU, minLSTM and RG-LRU, ``(h, c)`` for the LSTM (hidden
state first, as cuDNN), ``(h, y)`` for the LRU (its complex state and its last output).

The cells linear in the state (:data:`LINEAR_CELLS`) also give their step as coefficients, so
:mod:`seqjax.recurrent.linear_scan` can run them in parallel over time:

- ``coefficients(params, x) -> (a, b)``: ``h_t = a_t * h_{t-1} + b_t`` for one step
  (``log_coefficients`` too where ``a, b > 0``: minGRU, minLSTM);
- ``readout(params, h, x) -> y``: the step's output from its state (``h`` itself but for the LRU);
- ``state(carry) -> h`` and ``carry_from(h, y) -> carry``.

Mixed precision: every matrix product is :func:`seqjax.precision.matmul`, in the dtype of the
weights, so ``step(compute_weights(params, jnp.bfloat16), carry, x)`` multiplies in bfloat16
while the carry, the gates and the cell state stay float32
(:func:`seqjax.precision.compute_weights`).
"""

from seqjax.recurrent.cells import elman, gru, lru, lstm, min_gru, min_lstm, rg_lru

LINEAR_CELLS = {"min_gru": min_gru, "min_lstm": min_lstm, "lru": lru, "rg_lru": rg_lru}
CELLS = {"elman": elman, "lstm": lstm, "gru": gru, **LINEAR_CELLS}


def get_cell(name):
    """The cell module called ``name`` (a key of :data:`CELLS`)."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(
            f"unknown cell {name!r}: choose one of {', '.join(sorted(CELLS))}"
        ) from None


def is_linear(name):
    """Whether the cell called ``name`` is linear in its state (runs on the scan engine)."""
    return name in LINEAR_CELLS


__all__ = ["CELLS", "LINEAR_CELLS", "elman", "get_cell", "gru", "is_linear", "lru", "lstm",
           "min_gru", "min_lstm", "rg_lru"]
