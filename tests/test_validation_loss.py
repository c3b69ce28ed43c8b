"""The validation loss: one compiled call per segment equals the window-by-window loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs.defaults import transformer_model
from seqjax.data import stream_window_block, stream_windows
from seqjax.losses import token_cross_entropy
from seqjax.models import build_model
from seqjax.training import language_modeling
from seqjax.training.language_modeling import evaluate, windows_per_pass
from seqjax.training.sharding import DEFAULT_MESH, make_mesh
from tests.training_configs import tiny_config

VOCAB, BATCH, SEQ_LEN = 13, 3, 8
TOKENS = np.random.default_rng(0).integers(0, VOCAB, 700).astype(np.int32)  # 29 windows


def model_and_params(config):
    model = build_model(config.model, VOCAB, config.seq_len)
    tokens = jnp.zeros((BATCH, SEQ_LEN), jnp.int32)
    params = model.init(jax.random.PRNGKey(0), tokens, model.initial_carry(BATCH))["params"]
    return model, params


def window_by_window(model, params, num_windows):
    """The reference: each window through ``model.apply`` in turn, the carry handed on."""
    carry, total = model.initial_carry(BATCH), 0.0
    for k in range(num_windows):
        inputs, targets, _ = stream_windows(TOKENS, batch_size=BATCH, seq_len=SEQ_LEN, step=k)
        logits, carry = model.apply({"params": params}, inputs, carry)
        total += np.sum(np.asarray(token_cross_entropy(logits, targets), np.float64))
    return total / (num_windows * BATCH * SEQ_LEN)


def test_a_window_block_holds_the_stream_windows_then_padding():
    inputs, targets = stream_window_block(TOKENS, batch_size=BATCH, seq_len=SEQ_LEN, start=26,
                                          count=3, pad_to=5, rows=slice(1, 3))
    assert inputs.shape == targets.shape == (2, 5, SEQ_LEN)
    for k in range(3):
        window_inputs, window_targets, _ = stream_windows(
            TOKENS, batch_size=BATCH, seq_len=SEQ_LEN, step=26 + k, rows=slice(1, 3))
        np.testing.assert_array_equal(inputs[:, k], window_inputs)
        np.testing.assert_array_equal(targets[:, k], window_targets)
    assert (inputs[:, 3:] == 0).all() and (targets[:, 3:] == -1).all()
    with pytest.raises(ValueError, match="not within the 29 windows"):
        stream_window_block(TOKENS, batch_size=BATCH, seq_len=SEQ_LEN, start=27, count=3)


# The LSTM's carry crosses segments of 4 windows (the last padded); the Transformer reads
# 3 windows a pass in one segment (the last pass padded).
@pytest.mark.parametrize("kind, segment_windows", [("lstm", 4), ("transformer", None)])
def test_validation_loss_equals_the_window_by_window_loop(kind, segment_windows, monkeypatch):
    config = tiny_config("unused", "lstm", batch_size=BATCH, seq_len=SEQ_LEN, eval_batches=0)
    if kind == "transformer":
        config.model = transformer_model(num_layers=1, num_heads=2, width=16)
    model, params = model_and_params(config)
    group = 3 if kind == "transformer" else 1  # 29 windows: the last pass is padded
    if segment_windows:  # 29 windows: 8 segments of 4, the last padded
        monkeypatch.setattr(language_modeling, "EVAL_SEGMENT_TOKENS",
                            segment_windows * BATCH * SEQ_LEN)
    loss = evaluate(config, model, params, TOKENS, make_mesh(DEFAULT_MESH), group=group)
    np.testing.assert_allclose(loss, window_by_window(model, params, 29), rtol=1e-6)
    config.eval_batches = 5
    loss = evaluate(config, model, params, TOKENS, make_mesh(DEFAULT_MESH), group=group)
    np.testing.assert_allclose(loss, window_by_window(model, params, 5), rtol=1e-6)


def test_only_a_model_without_a_carry_reads_several_windows_per_pass(monkeypatch):
    monkeypatch.setattr(language_modeling, "EVAL_TOKENS_PER_PASS", 10 * BATCH * SEQ_LEN)
    lstm, _ = model_and_params(tiny_config("unused", "lstm", batch_size=BATCH, seq_len=SEQ_LEN))
    config = tiny_config("unused", batch_size=BATCH, seq_len=SEQ_LEN)
    config.model = transformer_model(num_layers=1, num_heads=2, width=16)
    transformer, _ = model_and_params(config)
    assert windows_per_pass(lstm, BATCH, SEQ_LEN, VOCAB, 29) == 1
    assert windows_per_pass(transformer, BATCH, SEQ_LEN, VOCAB, 29) == 10  # 3 passes: 10+10+9
    assert windows_per_pass(transformer, BATCH, SEQ_LEN, VOCAB, 4) == 4
    huge_vocab = language_modeling.EVAL_LOGITS_BYTES // (4 * BATCH * SEQ_LEN * 2)
    assert windows_per_pass(transformer, BATCH, SEQ_LEN, huge_vocab, 29) == 2
