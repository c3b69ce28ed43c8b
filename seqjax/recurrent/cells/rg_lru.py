"""Real-Gated Linear Recurrent Unit (De et al. 2024, Griffin/Hawk), pure, for one example.

.. math::

    r_t &= \\sigma(W_a u_t + b_a) \\quad\\text{(recurrence gate)}, \\qquad
        i_t = \\sigma(W_x u_t + b_x) \\quad\\text{(input gate)} \\\\
    a_t &= a^{c\\, r_t}, \\quad a = \\sigma(\\Lambda), \\quad c = 8;
        \\qquad \\log a_t = -c\\, r_t\\, \\mathrm{softplus}(-\\Lambda) \\\\
    h_t &= a_t \\odot h_{t-1} + \\sqrt{1 - a_t^2} \\odot (i_t \\odot u_t)

``u_t = x_t`` when the input is as wide as the state (as in Hawk's recurrent block,
:mod:`seqjax.recurrent.blocks`); otherwise ``u_t = W_{in} x_t`` first brings it to width ``H``.
Linear in the state with ``a_t`` above and ``b_t = \\sqrt{1 - a_t^2}\\, i_t u_t``.
``a_t`` is computed in log space; ``\\sqrt{1 - a_t^2} = \\sqrt{-\\mathrm{expm1}(2 \\log a_t)}``
has its argument floored at ``1e-6`` (a gradient of at most 500 where ``a_t \\to 1``, as
recurrentgemma bounds it).

Initialization (recurrentgemma's): ``a^2`` uniform on ``[0.9^2, 0.999^2]``; gates LeCun-normal
with zero biases. Griffin's gate matrices are block-diagonal; here they are dense.
The carry is ``h: [H]``.
"""

import jax
import jax.numpy as jnp

from seqjax.precision import matmul
from seqjax.recurrent.cells.initializers import input_init
from seqjax.recurrent.cells.vector_state import (  # noqa: F401 - part of the cell's interface
    carry_from, output, readout, state, zero_carry)

GATE_EXPONENT = 8.0  # c
MIN_RADIUS, MAX_RADIUS = 0.9, 0.999
SQRT_FLOOR = 1e-6


def init(key, input_size, hidden_size, *, dtype=jnp.float32):
    """``{"W_a", "b_a", "W_x", "b_x", "Lambda"}``, and ``"W_in": [H, I]`` when ``I != H``."""
    k_a, k_x, k_lambda, k_in = jax.random.split(key, 4)
    radius_squared = jax.random.uniform(k_lambda, (hidden_size,),
                                        minval=MIN_RADIUS**2, maxval=MAX_RADIUS**2)
    a = jnp.sqrt(radius_squared)
    params = {
        "W_a": input_init(k_a, (hidden_size, hidden_size), dtype),
        "b_a": jnp.zeros((hidden_size,), dtype),
        "W_x": input_init(k_x, (hidden_size, hidden_size), dtype),
        "b_x": jnp.zeros((hidden_size,), dtype),
        "Lambda": (jnp.log(a) - jnp.log1p(-a)).astype(dtype),  # sigmoid(Lambda) = a
    }
    if input_size != hidden_size:
        params["W_in"] = input_init(k_in, (hidden_size, input_size), dtype)
    return params


def initial_carry(params, batch_shape=()):
    """Zero hidden state, shape ``batch_shape + [H]``."""
    return zero_carry(params["Lambda"].shape[0], batch_shape)


def coefficients(params, x):
    """``a_t = a^{c r_t}``, ``b_t = sqrt(1 - a_t^2) i_t u_t`` of one step."""
    u = matmul(params["W_in"], x) if "W_in" in params else x
    r = jax.nn.sigmoid(matmul(params["W_a"], u) + params["b_a"])
    i = jax.nn.sigmoid(matmul(params["W_x"], u) + params["b_x"])
    log_a = -GATE_EXPONENT * r * jax.nn.softplus(-params["Lambda"])
    input_scale = jnp.sqrt(jnp.maximum(-jnp.expm1(2.0 * log_a), SQRT_FLOOR))
    return jnp.exp(log_a), input_scale * (i * u)


def step(params, h_prev, x):
    """One time step for one example: ``x: [I]``, ``h_prev: [H]`` -> ``(h_t, h_t)``."""
    a, b = coefficients(params, x)
    h = a * h_prev + b
    return h, h
