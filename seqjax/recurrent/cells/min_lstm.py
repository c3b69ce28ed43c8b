"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"), pure, for one example.

.. math::

    f_t &= \\sigma(W_f x_t + b_f), \\qquad i_t = \\sigma(W_i x_t + b_i), \\qquad
        \\tilde h_t = g(W_h x_t + b_h) \\\\
    f'_t &= \\frac{f_t}{f_t + i_t}, \\qquad i'_t = \\frac{i_t}{f_t + i_t} \\\\
    h_t &= f'_t \\odot h_{t-1} + i'_t \\odot \\tilde h_t

The LSTM without its output gate, cell state or ``h_{t-1}`` in the gates; the gates are
normalized to sum to 1, so the state's scale does not depend on time. ``g`` is minGRU's
(:func:`seqjax.recurrent.cells.min_gru.g`). Linear in the state with ``a_t = f'_t`` and
``b_t = i'_t \\tilde h_t``; in log space, with ``d = \\mathrm{softplus}(-k_f) - \\mathrm{softplus}(-k_i)``:

.. math::

    \\log a_t = -\\mathrm{softplus}(d), \\qquad
    \\log b_t = -\\mathrm{softplus}(-d) + \\log g(k_h)

Parameters: ``{"W": [3H, I], "b": [3H]}``, rows ordered ``(f, i, h)``. The carry is ``h: [H]``.
"""

import jax
import jax.numpy as jnp

from seqjax.precision import matmul
from seqjax.recurrent.cells.initializers import input_init
from seqjax.recurrent.cells.min_gru import g, log_g
from seqjax.recurrent.cells.vector_state import (  # noqa: F401 - part of the cell's interface
    carry_from, output, readout, state, zero_carry)


def init(key, input_size, hidden_size, *, dtype=jnp.float32):
    """Parameters ``{"W": [3H, I], "b": [3H]}`` (LeCun-normal, zero bias), rows ``(f, i, h)``."""
    return {"W": input_init(key, (3 * hidden_size, input_size), dtype),
            "b": jnp.zeros((3 * hidden_size,), dtype)}


def initial_carry(params, batch_shape=()):
    """Zero hidden state, shape ``batch_shape + [H]``."""
    return zero_carry(params["b"].shape[0] // 3, batch_shape)


def _preactivations(params, x):
    """``k_f, k_i, k_h`` of one step."""
    return jnp.split(matmul(params["W"], x) + params["b"], 3, axis=-1)


def coefficients(params, x):
    """``a_t = f'_t``, ``b_t = i'_t g(k_h)`` of one step."""
    k_f, k_i, k_h = _preactivations(params, x)
    f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
    return f / (f + i), i / (f + i) * g(k_h)


def log_coefficients(params, x):
    """``log a_t, log b_t`` of one step, in log space."""
    k_f, k_i, k_h = _preactivations(params, x)
    d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
    return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(k_h)


def step(params, h_prev, x):
    """One time step for one example: ``x: [I]``, ``h_prev: [H]`` -> ``(h_t, h_t)``."""
    a, b = coefficients(params, x)
    h = a * h_prev + b
    return h, h
