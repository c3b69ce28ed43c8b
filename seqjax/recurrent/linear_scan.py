"""The scan engine of the recurrences linear in the state, with interchangeable back-ends.

A cell is *linear in the state* when its step is

.. math::

    h_t = a_t \\odot h_{t-1} + b_t, \\qquad y_t = \\mathrm{readout}(h_t, x_t)

with ``a_t`` and ``b_t`` functions of the input ``x_t`` alone (minGRU, minLSTM, LRU, RG-LRU in
:mod:`seqjax.recurrent.cells`). The coefficients of every step can then be computed at once, and
the recurrence itself is a scan with the associative operator
``(a, b) . (a', b') = (a a', a' b + b')``, so it need not run one step after the other.
The back-ends, all computing the same ``h_1 ... h_T``:

- ``"sequential"``: ``jax.lax.scan``, one step after the other (the reference);
- ``"associative"``: ``jax.lax.associative_scan``, ``O(log T)`` depth;
- ``"chunked"``: an associative scan inside chunks of ``chunk_size`` steps, all chunks at once,
  then a sequential pass over the chunks that carries the state in:
  ``h = A h_in + s`` with ``A`` the chunk's running product of ``a`` and ``s`` its scan from zero;
- ``"log"``: the log-space form of Feng et al. 2024 for cells whose ``a, b, h_0`` are
  positive (minGRU, minLSTM): ``log h_t = A_t + logcumsumexp_{k <= t}(log b_k - A_k)``,
  ``A_t = sum_{k <= t} log a_k``, with ``h_0`` folded into ``b_1``. Its error grows with
  ``|A_t|`` (float32 cancellation), which the other back-ends do not have;
- ``"auto"``: one of the first three by platform, length and width, from :data:`AUTO_TABLE`,
  which ``experiments.benchmarks.parallel_scan`` measured.

:func:`run` has the semantics of :func:`seqjax.recurrent.unroll.unroll`: one sequence
``xs: [T, I]`` (batch it with ``jax.vmap``), an initial carry, ``seq_length`` (steps past it are
the identity ``a = 1, b = 0``, so the final state is the one at the sequence's own last step, and
their outputs are zero) and ``reverse`` (over the valid part only). The scan accumulates in
float32 (complex64 for the LRU) whatever the compute dtype of the coefficients' products.
"""

import functools

import jax
import jax.numpy as jnp

from seqjax.recurrent.unroll import valid_part_reversal

BACKENDS = ("sequential", "associative", "chunked", "log")
DEFAULT_CHUNK_SIZE = 64
LOG_ZERO = -1e30  # log b of a padding step: exp(LOG_ZERO - anything float32 holds) is 0

# ``auto``: per platform, (longest length, widest state, back-end) rows, the first that fits
# wins. Measured by ``python -m experiments.benchmarks.parallel_scan`` (docs/benchmarks.md);
# a platform not measured falls back to ``associative``, recurrentgemma's choice on GPUs.
# CPU (2-core AMD EPYC Zen 4; the default run at width 256, T = 128-8192, and ``--lengths
# 512,4096 --auto-widths 128,512``): sequential was the fastest back-end of every cell at every
# length and width measured, 1.08-1.76x faster than the better of associative and chunked, and
# flat in T; it is kept past the lengths and widths measured.
AUTO_TABLE = {
    "cpu": ((float("inf"), float("inf"), "sequential"),),
}
UNMEASURED_PLATFORM_BACKEND = "associative"


def choose_backend(platform, length, width):
    """The back-end ``auto`` runs for ``length`` steps of a ``width``-wide state on ``platform``."""
    for max_length, max_width, backend in AUTO_TABLE.get(platform, ()):
        if length <= max_length and width <= max_width:
            return backend
    return UNMEASURED_PLATFORM_BACKEND


# ----------------------------------------------------------------------------- back-ends
# Each takes one sequence of coefficients ``a, b: [T, N]`` and ``h0: [N]``; returns ``hs: [T, N]``.


def sequential(a, b, h0):
    """``h_t = a_t h_{t-1} + b_t`` one step after the other (``jax.lax.scan``)."""
    def body(h, coefficients):
        a_t, b_t = coefficients
        h = a_t * h + b_t
        return h, h

    return jax.lax.scan(body, h0, (a, b))[1]


def _compose(earlier, later):
    """The associative operator: apply ``earlier`` then ``later``: ``(a a', a' b + b')``."""
    a, b = earlier
    a_later, b_later = later
    return a * a_later, a_later * b + b_later


def associative(a, b, h0):
    """All ``h_t`` by ``jax.lax.associative_scan``, with ``h_0`` folded into ``b_1``."""
    b = b.at[0].add(a[0] * h0)
    return jax.lax.associative_scan(_compose, (a, b))[1]


def chunked(a, b, h0, chunk_size=DEFAULT_CHUNK_SIZE):
    """Associative within chunks of ``chunk_size`` steps, sequential across them."""
    num_steps, width = a.shape
    num_chunks = -(-num_steps // chunk_size)
    padding = num_chunks * chunk_size - num_steps  # identity steps at the end
    a = jnp.pad(a, ((0, padding), (0, 0)), constant_values=1).reshape(num_chunks, chunk_size, width)
    b = jnp.pad(b, ((0, padding), (0, 0))).reshape(num_chunks, chunk_size, width)
    products, partial_states = jax.lax.associative_scan(_compose, (a, b), axis=1)

    def across_chunks(h_in, chunk):
        product, partial_state = chunk
        hs = product * h_in + partial_state
        return hs[-1], hs

    _, hs = jax.lax.scan(across_chunks, h0, (products, partial_states))
    return hs.reshape(num_chunks * chunk_size, width)[:num_steps]


def log_space(log_a, log_b, h0):
    """Feng et al.'s log-space scan for positive ``a, b, h_0`` (``h_0 >= 0``); returns ``hs``.

    ``h_0`` is folded into the first step in linear space, ``b_1 + a_1 h_0``, so that
    ``h_0 = 0`` has a finite gradient.
    """
    first = jnp.log(jnp.exp(log_b[0]) + jnp.exp(log_a[0]) * h0)
    log_b = log_b.at[0].set(first)
    log_a_total = jnp.cumsum(log_a, axis=0)
    return jnp.exp(log_a_total + jax.lax.cumlogsumexp(log_b - log_a_total, axis=0))


# ----------------------------------------------------------------------------- the engine


def _coefficients(cell, params, xs, backend):
    """``(a, b)`` (or their logarithms for ``"log"``) of every step, at least float32."""
    if backend == "log":
        if not hasattr(cell, "log_coefficients"):
            raise ValueError(
                f"scan back-end 'log' needs positive coefficients; {cell.__name__} has none: "
                f"choose one of {', '.join(b for b in BACKENDS if b != 'log')} or auto")
        by_step = cell.log_coefficients
    else:
        by_step = cell.coefficients
    a, b = jax.vmap(by_step, in_axes=(None, 0))(params, xs)
    accumulate = jnp.promote_types(a.dtype, jnp.float32)
    return a.astype(accumulate), b.astype(jnp.promote_types(b.dtype, accumulate))


def _as_identity_past(a, b, valid, backend):
    """Steps past the valid part become the identity: ``a = 1, b = 0`` (``log``: ``log a = 0`` and
    ``log b = LOG_ZERO``, finite so that the gradient of ``cumlogsumexp`` has no ``inf - inf``)."""
    one, zero = (0.0, LOG_ZERO) if backend == "log" else (1.0, 0.0)
    valid = valid[:, None]
    return jnp.where(valid, a, one), jnp.where(valid, b, zero)


def run_backend(backend, a, b, h0, *, chunk_size=DEFAULT_CHUNK_SIZE):
    """``hs: [T, N]`` from one sequence's coefficients with the named back-end."""
    if backend == "sequential":
        return sequential(a, b, h0)
    if backend == "associative":
        return associative(a, b, h0)
    if backend == "chunked":
        return chunked(a, b, h0, chunk_size)
    if backend == "log":
        return log_space(a, b, h0)
    raise ValueError(f"unknown scan back-end {backend!r}: choose one of "
                     f"{', '.join(BACKENDS)} or auto")


def run(cell, params, xs, carry, *, seq_length=None, reverse=False, backend="auto",
        chunk_size=DEFAULT_CHUNK_SIZE):
    """Run a linear cell over ``xs: [T, I]`` from ``carry``; returns ``(final_carry, ys: [T, H])``.

    The same results as ``unroll(cell.step, params, xs, carry, seq_length=..., reverse=...)``.
    """
    num_steps = xs.shape[0]
    h0 = cell.state(carry)
    if backend == "auto":
        backend = choose_backend(jax.default_backend(), num_steps, h0.shape[-1])
    steps = jnp.arange(num_steps)
    if seq_length is None:
        order = steps[::-1] if reverse else steps
        valid = jnp.ones(num_steps, bool)
    else:
        order = valid_part_reversal(num_steps, seq_length) if reverse else steps
        valid = steps < seq_length
    xs = xs[order]
    a, b = _as_identity_past(*_coefficients(cell, params, xs, backend), valid, backend)
    hs = run_backend(backend, a, b, h0.astype(b.dtype), chunk_size=chunk_size)
    ys = jax.vmap(functools.partial(cell.readout, params))(hs, xs)
    ys = jnp.where(valid[:, None], ys, jnp.zeros_like(ys))
    last = num_steps - 1 if seq_length is None else seq_length - 1
    y_last = jnp.where(last >= 0, ys[jnp.maximum(last, 0)], cell.output(carry))
    return cell.carry_from(hs[-1], y_last), ys[order]
