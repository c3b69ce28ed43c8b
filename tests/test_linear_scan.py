"""Every back-end of the scan engine against the sequential ``step`` loop: outputs, final carry,
padded sequences, ``reverse``, the initial state, gradients; float64 finite differences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.recurrent import linear_scan
from seqjax.recurrent.cells import LINEAR_CELLS
from seqjax.recurrent.unroll import unroll

INPUT, HIDDEN, STEPS = 3, 4, 13


def backends_of(name):
    cell = LINEAR_CELLS[name]
    return [b for b in linear_scan.BACKENDS if b != "log" or hasattr(cell, "log_coefficients")]


CASES = [(name, backend) for name in sorted(LINEAR_CELLS) for backend in backends_of(name)]


def setup(name, key=0):
    cell = LINEAR_CELLS[name]
    k_params, k_xs, k_h = jax.random.split(jax.random.PRNGKey(key), 3)
    params = cell.init(k_params, INPUT, HIDDEN)
    xs = jax.random.normal(k_xs, (STEPS, INPUT))
    # a non-zero initial state; positive where the log-space back-end needs it
    h0 = jnp.abs(jax.random.normal(k_h, (HIDDEN,)))
    carry = cell.carry_from(h0.astype(cell.state(cell.initial_carry(params)).dtype),
                            jnp.full(HIDDEN, 0.5))
    return cell, params, xs, carry


def assert_trees_close(actual, expected, **tolerance):
    jax.tree.map(functools.partial(np.testing.assert_allclose, **tolerance), actual, expected)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("name, backend", CASES)
def test_backend_equals_the_step_loop(name, backend, reverse):
    """A batch of one sequence at lengths 0, 1, 9 and all ``STEPS`` (padding after them)."""
    cell, params, xs, carry = setup(name)
    seq_lengths = jnp.array([0, 1, 9, STEPS])
    batched = lambda run: jax.jit(jax.vmap(run, in_axes=(None, None, None, 0)))

    def by_loop(params, xs, carry, seq_length):
        return unroll(cell.step, params, xs, carry, seq_length=seq_length, reverse=reverse)

    def by_backend(params, xs, carry, seq_length):
        return linear_scan.run(cell, params, xs, carry, seq_length=seq_length, reverse=reverse,
                               backend=backend, chunk_size=4)

    expected = batched(by_loop)(params, xs, carry, seq_lengths)
    actual = batched(by_backend)(params, xs, carry, seq_lengths)
    assert_trees_close(actual, expected, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("name, backend", CASES)
def test_backend_gradients_equal_the_step_loop(name, backend):
    cell, params, xs, carry = setup(name, key=1)
    weights = jax.random.normal(jax.random.PRNGKey(5), (STEPS, HIDDEN))

    def loss(run, params, xs, carry):
        final, ys = run(params, xs, carry)
        return jnp.sum(weights * ys) + jnp.sum(cell.output(final) ** 2) + jnp.sum(
            jnp.abs(cell.state(final)) ** 2)

    def by_loop(params, xs, carry):
        return unroll(cell.step, params, xs, carry, seq_length=10)

    def by_backend(params, xs, carry):
        return linear_scan.run(cell, params, xs, carry, seq_length=10, backend=backend,
                               chunk_size=4)

    gradient = lambda run: jax.jit(jax.grad(functools.partial(loss, run), argnums=(0, 1, 2)))
    expected = gradient(by_loop)(params, xs, carry)
    actual = gradient(by_backend)(params, xs, carry)
    assert_trees_close(actual, expected, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("name, backend", CASES)
def test_backend_gradients_agree_with_finite_differences_in_float64(name, backend):
    with jax.enable_x64(True):
        cell, params, xs, carry = setup(name, key=2)
        params = jax.tree.map(lambda p: p.astype(jnp.float64), params)
        xs = xs.astype(jnp.float64)

        @jax.jit
        def loss(params, xs):
            _, ys = linear_scan.run(cell, params, xs, carry, backend=backend, chunk_size=4)
            return jnp.sum(jnp.sin(ys))

        gradient = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs)
        direction = jax.tree.map(lambda p: jax.random.normal(jax.random.PRNGKey(3), p.shape,
                                                             p.dtype), (params, xs))
        eps = 1e-6
        shifted = lambda sign: loss(*jax.tree.map(lambda p, d: p + sign * eps * d,
                                                  (params, xs), direction))
        numeric = (shifted(1) - shifted(-1)) / (2 * eps)
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(gradient),
                                                      jax.tree.leaves(direction)))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


@pytest.mark.parametrize("chunk_size", [1, 5, STEPS, 64])
def test_chunked_backend_is_exact_for_any_chunk_size(chunk_size):
    cell, params, xs, carry = setup("rg_lru")
    expected = unroll(cell.step, params, xs, carry)
    actual = linear_scan.run(cell, params, xs, carry, backend="chunked", chunk_size=chunk_size)
    assert_trees_close(actual, expected, rtol=1e-5, atol=2e-6)


def test_a_bfloat16_compute_dtype_still_accumulates_the_state_in_float32():
    from seqjax.precision import compute_weights

    cell, params, xs, carry = setup("min_gru")
    half = compute_weights(params, jnp.bfloat16)
    a, b = jax.vmap(cell.coefficients, in_axes=(None, 0))(half, xs)
    assert a.dtype == b.dtype == jnp.float32
    _, ys = linear_scan.run(cell, half, xs, carry, backend="associative")
    assert ys.dtype == jnp.float32
    # the products are rounded to bfloat16 (one ulp is 0.4%), the state is not
    expected = unroll(cell.step, params, xs, carry)[1]
    np.testing.assert_allclose(ys, expected, rtol=2e-2, atol=1e-2)


def test_auto_picks_from_the_measured_table_and_unknown_backends_are_clear_errors():
    assert linear_scan.choose_backend("cpu", 512, 256) in linear_scan.BACKENDS
    assert linear_scan.choose_backend("an-unmeasured-platform", 512, 256) == (
        linear_scan.UNMEASURED_PLATFORM_BACKEND)
    cell, params, xs, carry = setup("lru")
    with pytest.raises(ValueError, match="back-end 'log' needs positive coefficients"):
        linear_scan.run(cell, params, xs, carry, backend="log")
    with pytest.raises(ValueError, match="unknown scan back-end 'fast'"):
        linear_scan.run(cell, params, xs, carry, backend="fast")
