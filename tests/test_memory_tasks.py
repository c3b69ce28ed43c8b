"""The long-range memory tasks: their structure, and their baselines computed and checked."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.models.sequence_heads import RecurrentEncoder
from seqjax.tasks import get_task
from seqjax.tasks.memory import COPY_LENGTH, copy_memory_baseline_loss, xor_stream
from seqjax.tasks.objectives import regression_objective, tagging_objective


def test_adding_targets_sum_the_two_marked_values():
    batch = get_task("adding", length=20).training_batch(0, 0, 64)
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert np.all(markers.sum(1) == 2)
    assert np.all(markers[:, :10].sum(1) == 1) and np.all(markers[:, 10:].sum(1) == 1)
    np.testing.assert_allclose(batch.targets, (values * markers).sum(1), rtol=1e-6)
    assert np.all(batch.input_lengths == 20)


def test_adding_baseline_predict_one_is_one_sixth():
    task = get_task("adding", length=10)
    batch = task.held_out_set(0, 20000)
    mse, _ = regression_objective(jnp.ones((20000, 1)), batch)
    assert abs(float(mse) - 1 / 6) < 0.005  # Var(U + U') = 1/6; the standard error is ~0.001


def test_copy_memory_layout():
    delay = 15
    task = get_task("copy_memory", delay=delay)
    batch = task.training_batch(1, 2, 8)
    blank, delimiter = task.input_vocabulary.encode(["_", ":"])
    length = delay + 2 * COPY_LENGTH
    assert batch.inputs.shape == (8, length) and task.num_outputs == 9
    symbols = batch.targets[:, -COPY_LENGTH:]
    assert np.all((symbols >= 1) & (symbols <= 8)) and np.all(batch.targets[:, :-COPY_LENGTH] == 0)
    np.testing.assert_array_equal(batch.inputs[:, :COPY_LENGTH], symbols + delimiter)
    assert np.all(batch.inputs[:, delay + COPY_LENGTH - 1] == delimiter)
    rest = np.delete(batch.inputs[:, COPY_LENGTH:], delay - 1, axis=1)
    assert np.all(rest == blank)


@pytest.mark.parametrize("delay", [5, 100])
def test_copy_memory_baseline_is_the_memoryless_predictor(delay):
    task = get_task("copy_memory", delay=delay)
    batch = task.held_out_set(0, 16)
    length = delay + 2 * COPY_LENGTH
    probabilities = np.zeros((16, length, 9), np.float32)
    probabilities[:, : length - COPY_LENGTH, 0] = 1.0  # blank, for sure
    probabilities[:, length - COPY_LENGTH:, 1:] = 1.0 / 8  # any of the 8 symbols
    logits = jnp.log(jnp.asarray(probabilities) + 1e-30)
    loss, _ = tagging_objective(logits, batch)
    expected = 10 * math.log(8) / (delay + 20)
    assert copy_memory_baseline_loss(delay) == pytest.approx(expected)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_temporal_xor_every_third_bit_is_the_xor_of_the_two_before():
    bits = xor_stream(np.random.default_rng(0), 50, 30, phase=0).astype(int)
    np.testing.assert_array_equal(bits[:, 2::3], bits[:, 0::3] ^ bits[:, 1::3])
    batch = get_task("temporal_xor", length=30).training_batch(0, 0, 50)
    np.testing.assert_array_equal(batch.inputs[:, 1:, 0], batch.targets[:, :-1])
    assert not np.array_equal(bits[:, 2::3], bits[:, 0::3])  # the XOR is not a copy


def test_temporal_xor_rows_start_at_every_phase():
    bits = xor_stream(np.random.default_rng(1), 300, 9).astype(int)
    is_xor_at = [np.all(bits[:, p + 2::3][:, :2] == (bits[:, p::3][:, :2] ^ bits[:, p + 1::3][:, :2]),
                        axis=1) for p in range(3)]
    assert all(matches.mean() > 0.2 for matches in is_xor_at)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_full_length_encoder_runs_fused_and_computes_the_same(cell):
    inputs = jax.random.normal(jax.random.PRNGKey(0), (3, 9, 2))
    lengths = jnp.full((3,), 9)
    masked = RecurrentEncoder(cell, 5, embed_size=4)
    fused = RecurrentEncoder(cell, 5, embed_size=4, full_length=True)
    params = masked.init(jax.random.PRNGKey(1), inputs, lengths)

    def loss(encoder, params):
        states, summary = encoder.apply(params, inputs, lengths)
        return jnp.sum(states ** 2) + jnp.sum(jnp.sin(summary))

    for encoder_output in zip(masked.apply(params, inputs, lengths), fused.apply(params, inputs, lengths)):
        np.testing.assert_allclose(*encoder_output, rtol=1e-5, atol=1e-6)
    grads = [jax.grad(loss, argnums=1)(e, params) for e in (masked, fused)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), *grads)


def test_temporal_xor_baselines_the_rule_and_the_coin():
    batch = get_task("temporal_xor", length=36, aligned=True).held_out_set(0, 32)
    bits = batch.inputs[..., 0].astype(int)
    knows_the_rule = np.full((32, 36, 2), 0.5, np.float32)
    xor_steps = np.arange(36) % 3 == 1  # input t is a triple's 2nd bit: bit t + 1 is their XOR
    predicted = bits[:, 0:-1:3] ^ bits[:, 1::3]
    knows_the_rule[:, xor_steps] = np.eye(2, dtype=np.float32)[predicted]
    loss, metrics = tagging_objective(jnp.log(jnp.asarray(knows_the_rule) + 1e-30), batch)
    assert float(loss) == pytest.approx(2 / 3 * math.log(2), rel=1e-5)
    np.testing.assert_array_equal(batch.targets[:, xor_steps], predicted)
    coin, _ = tagging_objective(jnp.zeros((32, 36, 2)), batch)
    assert float(coin) == pytest.approx(math.log(2), rel=1e-5)
