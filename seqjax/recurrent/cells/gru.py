"""Gated recurrent unit (Cho et al. 2014), pure, for one example.

.. math::

    r_t &= \\sigma(W^r_x x_t + W^r_h h_{t-1} + b^r) \\quad\\text{(reset gate)} \\\\
    u_t &= \\sigma(W^u_x x_t + W^u_h h_{t-1} + b^u) \\quad\\text{(update gate)} \\\\
    n_t &= \\tanh(W^n_x x_t + b^n + r_t \\odot (W^n_h h_{t-1} + b^n_h)) \\\\
    h_t &= (1 - u_t) \\odot n_t + u_t \\odot h_{t-1}

This is the form of cuDNN, PyTorch and Flax (the reset gate applied after ``W^n_h``).
``reset_after=False`` gives Cho et al.'s original candidate
``n_t = tanh(W^n_x x_t + b^n + W^n_h (r_t \\odot h_{t-1}))``.

The gates are fused into ``[3H, .]`` matrices ordered ``(r, u, n)``, the layout of PyTorch.
Carry convention (shared by every cell in :mod:`seqjax.recurrent.cells`): ``step`` returns
``(new_carry, h)``; the GRU carry is ``h``, shape ``[H]``.
"""

import jax
import jax.numpy as jnp

from seqjax.recurrent.cells.initializers import input_init, recurrent_init
from seqjax.precision import matmul


def init(key, input_size, hidden_size, *, dtype=jnp.float32):
    """Parameters ``{"W_h": [3H, H], "W_x": [3H, I], "b": [3H], "b_hn": [H]}``, gates r, u, n."""
    k_h, k_x = jax.random.split(key)
    return {
        "W_h": recurrent_init(k_h, (3 * hidden_size, hidden_size), dtype),
        "W_x": input_init(k_x, (3 * hidden_size, input_size), dtype),
        "b": jnp.zeros((3 * hidden_size,), dtype),
        "b_hn": jnp.zeros((hidden_size,), dtype),
    }


def initial_carry(params, batch_shape=()):
    """Zero hidden state, shape ``batch_shape + [H]``."""
    return zero_carry(params["W_h"].shape[1], batch_shape, params["W_h"].dtype)


def zero_carry(hidden_size, batch_shape=(), dtype=jnp.float32):
    """Zero hidden state from sizes alone (for models that build a carry before their params)."""
    return jnp.zeros(tuple(batch_shape) + (hidden_size,), dtype)


def step(params, h_prev, x, *, reset_after=True):
    """One time step for one example: ``x: [I]``, ``h_prev: [H]`` -> ``(h_t, h_t)``."""
    x_r, x_u, x_n = jnp.split(matmul(params["W_x"], x) + params["b"], 3, axis=-1)
    W_hr, W_hu, W_hn = jnp.split(params["W_h"], 3, axis=0)
    r = jax.nn.sigmoid(x_r + matmul(W_hr, h_prev))
    u = jax.nn.sigmoid(x_u + matmul(W_hu, h_prev))
    if reset_after:
        n = jnp.tanh(x_n + r * (matmul(W_hn, h_prev) + params["b_hn"]))
    else:
        n = jnp.tanh(x_n + matmul(W_hn, r * h_prev) + params["b_hn"])
    h = (1.0 - u) * n + u * h_prev
    return h, h


def output(carry):
    """The hidden state ``h_t`` held in a carry."""
    return carry
