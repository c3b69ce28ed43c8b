"""Long short-term memory cell (Hochreiter & Schmidhuber 1997), pure, for one example.

.. math::

    z_t &= W_h h_{t-1} + W_x x_t + b \\quad\\text{(the gates' pre-activations over } [h_{t-1}, x_t])\\\\
    i_t &= \\sigma(z^i_t), \\quad f_t = \\sigma(z^f_t), \\quad o_t = \\sigma(z^o_t), \\quad
    g_t = \\tanh(z^g_t) \\\\
    c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t \\\\
    h_t &= o_t \\odot \\tanh(c_t)

The four gates are fused into one ``[4H, .]`` matrix in the order ``(i, f, g, o)``, the
layout of PyTorch and cuDNN, so one matrix product computes all of them.

Carry convention (shared by every cell in :mod:`seqjax.recurrent.cells`): ``step`` returns
``(new_carry, h)``; the LSTM carry is the tuple ``(h, c)``, hidden state first, as in cuDNN,
PyTorch and Equinox (Flax's ``LSTMCell`` orders it ``(c, h)``).
"""

import jax
import jax.numpy as jnp

from seqjax.recurrent.cells.initializers import input_init, recurrent_init
from seqjax.precision import matmul

GATES = ("i", "f", "g", "o")


def init(key, input_size, hidden_size, *, forget_bias=1.0, dtype=jnp.float32):
    """Parameters ``{"W_h": [4H, H], "W_x": [4H, I], "b": [4H]}``, gates ordered i, f, g, o.

    The forget-gate bias starts at ``forget_bias`` (1.0 by default, Jozefowicz et al. 2015)
    so that early in training the cell remembers rather than forgets.
    """
    k_h, k_x = jax.random.split(key)
    b = jnp.zeros((4, hidden_size), dtype).at[1].set(forget_bias).reshape(-1)
    return {
        "W_h": recurrent_init(k_h, (4 * hidden_size, hidden_size), dtype),
        "W_x": input_init(k_x, (4 * hidden_size, input_size), dtype),
        "b": b,
    }


def initial_carry(params, batch_shape=()):
    """Zero ``(h, c)``, each of shape ``batch_shape + [H]``."""
    return zero_carry(params["W_h"].shape[1], batch_shape, params["W_h"].dtype)


def zero_carry(hidden_size, batch_shape=(), dtype=jnp.float32):
    """Zero ``(h, c)`` from sizes alone (for models that build a carry before their params)."""
    shape = tuple(batch_shape) + (hidden_size,)
    return (jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def step(params, carry, x):
    """One time step for one example: ``x: [I]``, ``carry = (h, c)`` -> ``((h_t, c_t), h_t)``."""
    h_prev, c_prev = carry
    z = matmul(params["W_h"], h_prev) + matmul(params["W_x"], x) + params["b"]
    z_i, z_f, z_g, z_o = jnp.split(z, 4, axis=-1)
    i, f, o = jax.nn.sigmoid(z_i), jax.nn.sigmoid(z_f), jax.nn.sigmoid(z_o)
    g = jnp.tanh(z_g)
    c = f * c_prev + i * g
    h = o * jnp.tanh(c)
    return (h, c), h


def output(carry):
    """The hidden state ``h_t`` held in a carry ``(h, c)``."""
    return carry[0]
