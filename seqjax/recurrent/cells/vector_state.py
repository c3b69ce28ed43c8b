"""The carry of the cells whose carry is their hidden vector ``h`` (minGRU, minLSTM, RG-LRU).

Shared by those cells so that each cell file holds only its equations. The LRU, whose output
``y_t`` is a read-out of a complex state, keeps ``(h, y)`` and writes its own.
"""

import jax.numpy as jnp


def zero_carry(hidden_size, batch_shape=(), dtype=jnp.float32):
    """Zero hidden state from sizes alone, shape ``batch_shape + [H]``."""
    return jnp.zeros(tuple(batch_shape) + (hidden_size,), dtype)


def state(carry):
    """The state ``h`` the scan runs on (the carry itself)."""
    return carry


def carry_from(h, y):
    """The carry after a scan that ended in state ``h`` with output ``y`` (here ``y = h``)."""
    del y
    return h


def output(carry):
    """The hidden state ``h_t`` held in a carry."""
    return carry


def readout(params, h, x):
    """The cell's output at a step: the state itself."""
    del params, x
    return h
