"""Recurrent cells as pure functions of one example: Elman RNN, LSTM, GRU.

Every cell module has the same functions:

- ``init(key, input_size, hidden_size, ...) -> params``: a dict of arrays;
- ``initial_carry(params, batch_shape=()) -> carry``: zeros (``zero_carry(hidden_size, batch_shape)``
  builds the same from sizes alone);
- ``step(params, carry, x) -> (carry, h)``: one time step for ONE example, ``x: [input_size]``,
  carry first so it plugs into ``jax.lax.scan``; batch it with ``jax.vmap``;
- ``output(carry) -> h``: the hidden state inside a carry.

Carries: ``h`` for Elman and GRU, ``(h, c)`` for the LSTM (hidden state first, as cuDNN).

Mixed precision: every matrix product is :func:`seqjax.precision.matmul`, in the dtype of the
weights, so ``step(compute_weights(params, jnp.bfloat16), carry, x)`` multiplies in bfloat16
while the carry, the gates and the cell state stay float32
(:func:`seqjax.precision.compute_weights`).
"""

from seqjax.recurrent.cells import elman, gru, lstm

CELLS = {"elman": elman, "lstm": lstm, "gru": gru}


def get_cell(name):
    """The cell module called ``name`` (one of ``elman``, ``lstm``, ``gru``)."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(
            f"unknown cell {name!r}: choose one of {', '.join(sorted(CELLS))}"
        ) from None


__all__ = ["CELLS", "elman", "get_cell", "gru", "lstm"]
