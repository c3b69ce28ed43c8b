"""Per-position loss: its mean over positions is the ordinary validation loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.defaults import transformer_model
from seqjax.evaluation import per_position_loss
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
