"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), pure, for one example.

.. math::

    z_t &= \\sigma(W_z x_t + b_z) \\\\
    \\tilde h_t &= g(W_h x_t + b_h), \\qquad
        g(v) = v + \\tfrac12 \\text{ if } v \\ge 0 \\text{ else } \\sigma(v) \\\\
    h_t &= (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde h_t

The GRU without its reset gate and with gates that read only ``x_t``: linear in the state,
``h_t = a_t h_{t-1} + b_t`` with ``a_t = 1 - z_t`` and ``b_t = z_t \\tilde h_t``, so
:mod:`seqjax.recurrent.linear_scan` can run it in parallel over time. ``g`` keeps
``\\tilde h_t > 0``, which gives the paper's log-space form (the ``"log"`` back-end):

.. math::

    \\log a_t = -\\mathrm{softplus}(k_z), \\quad
    \\log b_t = -\\mathrm{softplus}(-k_z) + \\log g(k_h), \\qquad k = W x_t + b

Parameters: ``{"W": [2H, I], "b": [2H]}``, rows ordered ``(z, h)``. The carry is ``h: [H]``.
"""

import jax
import jax.numpy as jnp

from seqjax.precision import matmul
from seqjax.recurrent.cells.initializers import input_init
from seqjax.recurrent.cells.vector_state import (  # noqa: F401 - part of the cell's interface
    carry_from, output, readout, state, zero_carry)


def g(v):
    """``v + 1/2`` for ``v >= 0``, else ``sigmoid(v)``: continuous, positive, linear growth."""
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def log_g(v):
    """``log g(v)``, computed without forming ``g(v)`` for negative ``v``."""
    return jnp.where(v >= 0, jnp.log(jax.nn.relu(v) + 0.5), -jax.nn.softplus(-v))


def init(key, input_size, hidden_size, *, dtype=jnp.float32):
    """Parameters ``{"W": [2H, I], "b": [2H]}`` (LeCun-normal, zero bias), rows ``(z, h)``."""
    return {"W": input_init(key, (2 * hidden_size, input_size), dtype),
            "b": jnp.zeros((2 * hidden_size,), dtype)}


def initial_carry(params, batch_shape=()):
    """Zero hidden state, shape ``batch_shape + [H]``."""
    return zero_carry(params["b"].shape[0] // 2, batch_shape)


def _preactivations(params, x):
    """``k_z, k_h`` of one step."""
    return jnp.split(matmul(params["W"], x) + params["b"], 2, axis=-1)


def coefficients(params, x):
    """``a_t = 1 - z_t``, ``b_t = z_t g(k_h)`` of one step."""
    k_z, k_h = _preactivations(params, x)
    z = jax.nn.sigmoid(k_z)
    return 1.0 - z, z * g(k_h)


def log_coefficients(params, x):
    """``log a_t, log b_t`` of one step, in log space."""
    k_z, k_h = _preactivations(params, x)
    return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(k_h)


def step(params, h_prev, x):
    """One time step for one example: ``x: [I]``, ``h_prev: [H]`` -> ``(h_t, h_t)``."""
    a, b = coefficients(params, x)
    h = a * h_prev + b
    return h, h
