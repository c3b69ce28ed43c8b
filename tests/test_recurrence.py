"""``unroll`` and its stacked/bidirectional helpers against Python loops of ``step``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from seqjax.recurrent.cells import get_cell
from seqjax.recurrent.unroll import unroll, unroll_bidirectional, unroll_stacked
from seqjax.recurrent.layers import Bidirectional, Recurrent, RecurrentCell, StackedRecurrent

INPUT, HIDDEN, STEPS = 3, 4, 6
CELL_NAMES = ["elman", "lstm", "gru"]


def setup(name, seed=0, input_size=INPUT):
    cell = get_cell(name)
    k_p, k_x = jax.random.split(jax.random.PRNGKey(seed))
    params = cell.init(k_p, input_size, HIDDEN)
    xs = jax.random.normal(k_x, (STEPS, input_size))
    return cell, params, xs


def python_loop(step, params, xs, carry):
    hs = []
    for x in xs:
        carry, h = step(params, carry, x)
        hs.append(h)
    return carry, jnp.stack(hs)


def assert_trees_close(a, b, **tol):
    tol = {"rtol": 1e-5, "atol": 1e-6} | tol
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **tol), a, b)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_unroll_matches_python_loop_under_jit(name):
    cell, params, xs = setup(name)
    carry0 = cell.initial_carry(params)
    jitted = jax.jit(lambda p, x, c: unroll(cell.step, p, x, c, unroll=2))
    assert_trees_close(jitted(params, xs, carry0), python_loop(cell.step, params, xs, carry0))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_reverse_is_the_loop_over_reversed_inputs(name):
    cell, params, xs = setup(name)
    carry0 = cell.initial_carry(params)
    final, hs = unroll(cell.step, params, xs, carry0, reverse=True)
    loop_final, loop_hs = python_loop(cell.step, params, xs[::-1], carry0)
    assert_trees_close((final, hs), (loop_final, loop_hs[::-1]))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_vmap_over_a_batch_matches_a_loop_over_examples(name):
    cell, params, _ = setup(name)
    xs = jax.random.normal(jax.random.PRNGKey(3), (5, STEPS, INPUT))
    carries = cell.initial_carry(params, (5,))
    batched = jax.vmap(lambda x, c: unroll(cell.step, params, x, c))(xs, carries)
    for b in range(5):
        one = unroll(cell.step, params, xs[b], jax.tree.map(lambda c: c[b], carries))
        assert_trees_close(jax.tree.map(lambda t: t[b], batched), one)


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("reverse", [False, True])
def test_seq_length_padding_changes_nothing_in_the_valid_part(name, reverse):
    cell, params, xs = setup(name)
    carry0 = cell.initial_carry(params)
    valid = 4
    garbage = xs.at[valid:].set(1e3)  # whatever sits in the padding must not leak in
    final, hs = jax.jit(
        lambda x: unroll(cell.step, params, x, carry0, seq_length=valid, reverse=reverse)
    )(garbage)
    ref_final, ref_hs = unroll(cell.step, params, xs[:valid], carry0, reverse=reverse)
    assert_trees_close(final, ref_final)
    assert_trees_close(hs[:valid], ref_hs)
    np.testing.assert_array_equal(hs[valid:], 0.0)


def test_seq_length_under_vmap_gives_each_example_its_own_final_carry():
    cell, params, _ = setup("lstm")
    xs = jax.random.normal(jax.random.PRNGKey(5), (3, STEPS, INPUT))
    lengths = jnp.array([STEPS, 2, 5])
    carries = cell.initial_carry(params, (3,))
    finals, _ = jax.vmap(lambda x, c, n: unroll(cell.step, params, x, c, seq_length=n))(
        xs, carries, lengths
    )
    for b, n in enumerate(lengths.tolist()):
        ref, _ = python_loop(cell.step, params, xs[b, :n], cell.initial_carry(params))
        assert_trees_close(jax.tree.map(lambda c: c[b], finals), ref)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_bidirectional_is_forward_and_reversed_loops(name):
    cell, params_f, xs = setup(name, seed=0)
    _, params_b, _ = setup(name, seed=1)
    carry0 = cell.initial_carry(params_f)
    (final_f, final_b), hs = unroll_bidirectional(cell.step, params_f, params_b, xs, carry0, carry0)
    ref_f, hs_f = python_loop(cell.step, params_f, xs, carry0)
    ref_b, hs_b = python_loop(cell.step, params_b, xs[::-1], carry0)
    assert hs.shape == (STEPS, 2 * HIDDEN)
    assert_trees_close((final_f, final_b), (ref_f, ref_b))
    assert_trees_close(hs, jnp.concatenate([hs_f, hs_b[::-1]], -1))


def test_bidirectional_with_padding_reverses_only_the_valid_part():
    cell, params_f, xs = setup("gru", seed=0)
    _, params_b, _ = setup("gru", seed=1)
    carry0 = cell.initial_carry(params_f)
    _, hs = unroll_bidirectional(cell.step, params_f, params_b, xs, carry0, carry0, seq_length=3)
    _, ref = unroll_bidirectional(cell.step, params_f, params_b, xs[:3], carry0, carry0)
    assert_trees_close(hs[:3], ref)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_stacked_layers_feed_each_other(name):
    cell, params_1, xs = setup(name, seed=0)
    params_2 = cell.init(jax.random.PRNGKey(9), HIDDEN, HIDDEN)
    carry0 = cell.initial_carry(params_1)
    finals, hs = unroll_stacked(cell.step, [params_1, params_2], xs, [carry0, carry0])
    final_1, hs_1 = python_loop(cell.step, params_1, xs, carry0)
    final_2, hs_2 = python_loop(cell.step, params_2, hs_1, carry0)
    assert_trees_close((finals, hs), ([final_1, final_2], hs_2))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_through_unroll_match_finite_differences(name):
    cell, params, xs = setup(name)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        xs64 = jnp.asarray(xs, jnp.float64)

        def loss(params, xs):
            carry, hs = unroll(cell.step, params, xs, cell.initial_carry(params), seq_length=5)
            return jnp.sum(hs ** 2) + jnp.sum(cell.output(carry))

        check_grads(jax.jit(loss), (params64, xs64), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


# ---- Flax shells -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CELL_NAMES)
def test_recurrent_module_uses_the_pure_cell(name):
    xs = jax.random.normal(jax.random.PRNGKey(0), (2, STEPS, INPUT))
    lengths = jnp.array([STEPS, 3])
    layer = Recurrent(name, HIDDEN)
    variables = layer.init(jax.random.PRNGKey(1), xs, seq_lengths=lengths)
    params = variables["params"]["cell"]
    cell = get_cell(name)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, cell.init(jax.random.PRNGKey(0), INPUT, HIDDEN))
    final, hs = jax.jit(layer.apply)(variables, xs, None, lengths)
    for b, n in enumerate(lengths.tolist()):
        ref_final, ref_hs = python_loop(cell.step, params, xs[b, :n], cell.initial_carry(params))
        assert_trees_close(jax.tree.map(lambda c: c[b], final), ref_final)
        assert_trees_close(hs[b, :n], ref_hs)
    carry, h = RecurrentCell(name, HIDDEN).apply({"params": {"cell": params}}, layer.initial_carry(2), xs[:, 0])
    assert_trees_close(h, hs[:, 0])


def test_bidirectional_and_stacked_modules():
    xs = jax.random.normal(jax.random.PRNGKey(0), (2, STEPS, INPUT))
    bi = Bidirectional("lstm", HIDDEN)
    variables = bi.init(jax.random.PRNGKey(1), xs)
    (_, _), hs = bi.apply(variables, xs)
    p = variables["params"]
    cell = get_cell("lstm")
    carry0 = cell.initial_carry(p["forward"]["cell"])
    _, ref = unroll_bidirectional(cell.step, p["forward"]["cell"], p["backward"]["cell"], xs[0], carry0, carry0)
    assert_trees_close(hs[0], ref)

    stacked = StackedRecurrent("gru", HIDDEN, num_layers=3, dropout=0.5)
    variables = stacked.init(jax.random.PRNGKey(2), xs)
    assert sorted(variables["params"]) == ["layer_0", "layer_1", "layer_2"]
    finals, hs = stacked.apply(variables, xs)
    assert len(finals) == 3 and hs.shape == (2, STEPS, HIDDEN)
    _, hs_dropped = stacked.apply(variables, xs, deterministic=False, rngs={"dropout": jax.random.PRNGKey(3)})
    assert not np.allclose(hs, hs_dropped)  # dropout acts between layers in training
