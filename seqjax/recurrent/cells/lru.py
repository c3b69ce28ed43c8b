"""Linear Recurrent Unit (Orvieto et al. 2023), pure, for one example.

.. math::

    \\lambda &= \\exp(-\\exp(\\nu) + i \\exp(\\theta)), \\qquad
        \\gamma = \\exp(\\gamma_{\\log}) \\\\
    h_t &= \\lambda \\odot h_{t-1} + \\gamma \\odot (B x_t) \\\\
    y_t &= \\mathrm{Re}(C h_t) + D x_t

A diagonal complex recurrence: ``h_t = a_t h_{t-1} + b_t`` with ``a_t = \\lambda`` (the same at
every step) and ``b_t = \\gamma \\odot B x_t``, so :mod:`seqjax.recurrent.linear_scan` runs it
in parallel over time.

- Exponential parametrization: ``|\\lambda| = \\exp(-\\exp(\\nu)) < 1`` for every ``\\nu``, so the
  recurrence is stable throughout training.
- Ring initialization: ``|\\lambda|^2`` uniform on ``[r_{min}^2, r_{max}^2]``, the phase uniform on
  ``[0, max_phase]`` (the reference code's defaults: ``0, 1, 6.28``).
- Normalization: ``\\gamma_{\\log}`` starts at ``\\log \\sqrt{1 - |\\lambda|^2}``, which keeps the
  state's variance that of the input however close ``|\\lambda|`` is to 1; it is then trained.

Sizes: input ``I``, state ``N = H`` complex numbers, output ``H``. ``B = B_re + i B_im: [H, I]``,
``C = C_re + i C_im: [H, H]``. ``D`` is the paper's diagonal skip ``[H]`` when ``I = H``; a cell
that changes the width (``I != H``) needs a matrix, ``D: [H, I]``.
The carry is ``(h, y)``: the complex state and the last output, because the output reads ``x_t``
too and a sequence model takes its summary from ``output(carry)``.
"""

import math

import jax
import jax.numpy as jnp

from seqjax.precision import matmul
from seqjax.recurrent.cells.initializers import input_init


def init(key, input_size, hidden_size, *, r_min=0.0, r_max=1.0, max_phase=6.28,
         dtype=jnp.float32):
    """Ring-initialized ``nu, theta``, normalized ``gamma_log``, Glorot-like ``B, C``, normal ``D``."""
    k_nu, k_theta, k_b_re, k_b_im, k_c_re, k_c_im, k_d = jax.random.split(key, 7)
    u_nu = jax.random.uniform(k_nu, (hidden_size,))
    u_theta = jax.random.uniform(k_theta, (hidden_size,))
    modulus_squared = u_nu * (r_max**2 - r_min**2) + r_min**2
    nu_log = jnp.log(-0.5 * jnp.log(modulus_squared))
    b_scale, c_scale = 1.0 / math.sqrt(2 * input_size), 1.0 / math.sqrt(hidden_size)
    normal = jax.random.normal
    skip = (normal(k_d, (hidden_size,), dtype) if input_size == hidden_size
            else input_init(k_d, (hidden_size, input_size), dtype))
    return {
        "nu_log": nu_log.astype(dtype),
        "theta_log": jnp.log(max_phase * u_theta).astype(dtype),
        "gamma_log": (0.5 * jnp.log1p(-modulus_squared)).astype(dtype),
        "B_re": b_scale * normal(k_b_re, (hidden_size, input_size), dtype),
        "B_im": b_scale * normal(k_b_im, (hidden_size, input_size), dtype),
        "C_re": c_scale * normal(k_c_re, (hidden_size, hidden_size), dtype),
        "C_im": c_scale * normal(k_c_im, (hidden_size, hidden_size), dtype),
        "D": skip,
    }


def zero_carry(hidden_size, batch_shape=(), dtype=jnp.float32):
    """``(h, y)`` zero: a complex ``[H]`` state and a real ``[H]`` output."""
    shape = tuple(batch_shape) + (hidden_size,)
    return jnp.zeros(shape, jnp.complex64), jnp.zeros(shape, dtype)


def initial_carry(params, batch_shape=()):
    """Zero ``(h, y)``, shapes ``batch_shape + [H]``."""
    return zero_carry(params["nu_log"].shape[0], batch_shape)


def state(carry):
    """The complex state ``h``."""
    return carry[0]


def carry_from(h, y):
    """The carry after a scan that ended in state ``h`` with output ``y``."""
    return h, y


def output(carry):
    """The last output ``y_t`` held in a carry."""
    return carry[1]


def eigenvalues(params):
    """``lambda = exp(-exp(nu) + i exp(theta))``, shape ``[H]``."""
    return jnp.exp(-jnp.exp(params["nu_log"]) + 1j * jnp.exp(params["theta_log"]))


def coefficients(params, x):
    """``a_t = lambda``, ``b_t = gamma * (B x_t)`` of one step (complex)."""
    b = jnp.exp(params["gamma_log"]) * (matmul(params["B_re"], x) + 1j * matmul(params["B_im"], x))
    return eigenvalues(params), b


def readout(params, h, x):
    """``y_t = Re(C h_t) + D x_t``."""
    skip = params["D"] * x if params["D"].ndim == 1 else matmul(params["D"], x)
    return matmul(params["C_re"], h.real) - matmul(params["C_im"], h.imag) + skip


def step(params, carry, x):
    """One time step for one example: ``x: [I]``, carry ``(h, y)`` -> ``((h_t, y_t), y_t)``."""
    a, b = coefficients(params, x)
    h = a * state(carry) + b
    y = readout(params, h, x)
    return (h, y), y
