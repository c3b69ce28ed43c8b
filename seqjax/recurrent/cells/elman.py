"""Elman RNN cell, as a pure function of one example.

.. math::

    h_t = \\tanh(W_h h_{t-1} + W_x x_t + b)

The read-out ``p(y_{t+1}) = softmax(W_y h_t)`` belongs to the model that uses the cell
(see :mod:`seqjax.models.recurrent_lm`), not to the cell.

Carry convention (shared by every cell in :mod:`seqjax.recurrent.cells`): ``step(params, carry, x)``
returns ``(new_carry, h)`` with the carry first, as ``jax.lax.scan`` wants it. For the
Elman cell the carry is ``h`` itself, shape ``[hidden_size]``.

Example::

    >>> import jax, jax.numpy as jnp
    >>> from seqjax.recurrent.cells import elman
    >>> params = elman.init(jax.random.PRNGKey(0), input_size=3, hidden_size=5)
    >>> h, out = elman.step(params, elman.initial_carry(params), jnp.ones(3))
    >>> out.shape
    (5,)
"""

import jax
import jax.numpy as jnp

from seqjax.recurrent.cells.initializers import input_init, recurrent_init
from seqjax.precision import matmul


def init(key, input_size, hidden_size, *, use_bias=True, dtype=jnp.float32):
    """Parameters ``{"W_h": [H, H], "W_x": [H, I], "b": [H]}``.

    ``W_h`` is orthogonal, ``W_x`` LeCun-normal, ``b`` zero. With ``use_bias=False`` the
    bias is omitted, as in the lecture's equations.
    """
    k_h, k_x = jax.random.split(key)
    params = {
        "W_h": recurrent_init(k_h, (hidden_size, hidden_size), dtype),
        "W_x": input_init(k_x, (hidden_size, input_size), dtype),
    }
    if use_bias:
        params["b"] = jnp.zeros((hidden_size,), dtype)
    return params


def initial_carry(params, batch_shape=()):
    """Zero hidden state, shape ``batch_shape + [H]``."""
    return zero_carry(params["W_h"].shape[1], batch_shape, params["W_h"].dtype)


def zero_carry(hidden_size, batch_shape=(), dtype=jnp.float32):
    """Zero hidden state from sizes alone (for models that build a carry before their params)."""
    return jnp.zeros(tuple(batch_shape) + (hidden_size,), dtype)


def step(params, h_prev, x):
    """One time step for one example: ``x: [I]``, ``h_prev: [H]`` -> ``(h_t, h_t)``."""
    b = params.get("b", 0.0)
    h = jnp.tanh(matmul(params["W_h"], h_prev) + matmul(params["W_x"], x) + b)
    return h, h


def output(carry):
    """The hidden state ``h_t`` held in a carry."""
    return carry
