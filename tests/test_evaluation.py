"""Per-position loss: its mean over positions is the ordinary validation loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.defaults import transformer_model
from seqjax.evaluation import (
    binned_losses,
    bootstrap_interval,
    doubling_bins,
    per_position_loss,
    window_position_losses,
)
from seqjax.losses import token_cross_entropy
from seqjax.models import build_model
from seqjax.training.language_modeling import evaluate
from seqjax.training.sharding import DEFAULT_MESH, make_mesh
from tests.training_configs import tiny_config

VOCAB, BATCH, SEQ_LEN = 11, 3, 8
TOKENS = np.random.default_rng(0).integers(0, VOCAB, 500).astype(np.int32)


def model_and_params(config):
    model = build_model(config.model, VOCAB, config.seq_len)
    tokens = jnp.zeros((BATCH, SEQ_LEN), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), tokens, model.initial_carry(BATCH))["params"]
    return model, params


def test_transformer_mean_over_positions_is_the_validation_loss():
    config = tiny_config("unused", batch_size=BATCH, seq_len=SEQ_LEN, eval_batches=5)
    config.model = transformer_model(num_layers=1, num_heads=2, width=16)
    model, params = model_and_params(config)
    losses = per_position_loss(model, params, TOKENS, batch_size=BATCH, seq_len=SEQ_LEN,
                               max_windows=5)
    assert losses.shape == (SEQ_LEN,)
    expected = evaluate(config, model, params, TOKENS, make_mesh(DEFAULT_MESH))
    np.testing.assert_allclose(losses.mean(), expected, rtol=1e-5)


@pytest.mark.parametrize("kind", ["elman", "lstm"])
def test_recurrent_windows_start_from_the_zero_state(kind):
    config = tiny_config("unused", kind, batch_size=BATCH, seq_len=SEQ_LEN)
    model, params = model_and_params(config)
    losses = per_position_loss(model, params, TOKENS, batch_size=BATCH, seq_len=SEQ_LEN)
    streams = TOKENS[: len(TOKENS) // BATCH * BATCH].reshape(BATCH, -1)
    num_windows = (streams.shape[1] - 1) // SEQ_LEN
    expected = np.zeros(SEQ_LEN)
    for k in range(num_windows):
        window = streams[:, k * SEQ_LEN: (k + 1) * SEQ_LEN + 1]
        logits, _ = model.apply({"params": params}, window[:, :-1], model.initial_carry(BATCH))
        expected += np.asarray(token_cross_entropy(logits, window[:, 1:])).sum(0)
    np.testing.assert_allclose(losses, expected / (num_windows * BATCH), rtol=1e-5)
    assert losses[0] > losses[1:].min()  # position 1 has no context at all


def test_offsets_add_the_windows_of_the_shifted_text():
    config = tiny_config("unused", "elman", batch_size=BATCH, seq_len=SEQ_LEN)
    model, params = model_and_params(config)
    both = per_position_loss(model, params, TOKENS, batch_size=BATCH, seq_len=SEQ_LEN,
                             num_offsets=2)
    first, second = (per_position_loss(model, params, tokens, batch_size=BATCH, seq_len=SEQ_LEN)
                     for tokens in (TOKENS, TOKENS[SEQ_LEN // 2:]))
    windows = [((len(t) // BATCH) - 1) // SEQ_LEN for t in (TOKENS, TOKENS[SEQ_LEN // 2:])]
    expected = (first * windows[0] + second * windows[1]) / sum(windows)
    np.testing.assert_allclose(both, expected, rtol=1e-6)


def test_offsets_out_of_range_are_refused():
    config = tiny_config("unused", "elman", batch_size=BATCH, seq_len=SEQ_LEN)
    model, params = model_and_params(config)
    for num_offsets in (0, SEQ_LEN + 1):
        with pytest.raises(ValueError, match="num_offsets must be in"):
            per_position_loss(model, params, TOKENS, batch_size=BATCH, seq_len=SEQ_LEN,
                              num_offsets=num_offsets)


def test_window_losses_are_each_windows_own_losses_in_batches_of_any_size():
    config = tiny_config("unused", "lstm", batch_size=BATCH, seq_len=SEQ_LEN)
    model, params = model_and_params(config)
    windows = np.stack([TOKENS[s: s + SEQ_LEN + 1] for s in range(0, 70, 10)])  # 7 windows
    losses = window_position_losses(model, params, windows, batch_size=3)  # 3 + 3 + 1 (padded)
    assert losses.shape == (7, SEQ_LEN)
    for n, window in enumerate(windows):
        logits, _ = model.apply({"params": params}, window[None, :-1], model.initial_carry(1))
        np.testing.assert_allclose(losses[n], token_cross_entropy(logits, window[None, 1:])[0],
                                   rtol=1e-5)


@pytest.mark.parametrize("seq_len", [1, 2, 5, 16, 100, 512])
def test_doubling_bins_cover_every_position_once_and_double(seq_len):
    bins = doubling_bins(seq_len)
    covered = [t for first, last in bins for t in range(first, last + 1)]
    assert covered == list(range(1, seq_len + 1))
    widths = [last - first + 1 for first, last in bins[:-1]]
    assert widths[:2] == [1, 1][: len(widths)] and all(b == 2 * a for a, b in zip(widths[1:], widths[2:]))


def test_binned_losses_average_each_windows_positions():
    losses = np.arange(2 * 10, dtype=float).reshape(2, 10)
    binned = binned_losses(losses, doubling_bins(10))
    np.testing.assert_allclose(binned[1], [10, 11, 12.5, 15.5, 18.5])


def test_the_bootstrap_interval_holds_the_mean_and_narrows_with_more_windows():
    rng = np.random.default_rng(1)
    widths = []
    for count in (50, 800):
        per_window = rng.normal(2.0, 0.5, size=(count, 3))
        mean, low, high = bootstrap_interval(per_window, num_resamples=500)
        np.testing.assert_allclose(mean, per_window.mean(0))
        assert np.all(low < mean) and np.all(mean < high)
        widths.append(np.mean(high - low))
    # The interval of a mean shrinks like 1 / sqrt(N): 16x the windows, about 1/4 the width.
    assert 0.18 < widths[1] / widths[0] < 0.35
    # About 1.96 * 2 * sigma / sqrt(N) wide for normal data.
    assert widths[1] == pytest.approx(2 * 1.96 * 0.5 / np.sqrt(800), rel=0.15)
