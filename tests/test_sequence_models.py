"""Sequence heads and encoder-decoders: padding invariance, NumPy references for the encoders'
summaries and the attention weights, teacher forcing vs step-by-step decoding, and decoding
through seqjax.generation."""

import functools
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from seqjax.recurrent.cells import get_cell
from seqjax.models.seq2seq import (
    RecurrentSeq2Seq, additive_attention_weights, beam_decode, dot_attention_weights,
    greedy_decode, seq2seq_from_config, teacher_forcing_inputs,
)
from seqjax.models.sequence_heads import (
    CausalTransformerEncoder, ManyToMany, ManyToOne, MultiHeadAttention, RecurrentEncoder,
    TransformerEncoder, key_padding_mask, pool, sequence_model_from_config,
)
from experiments.configs.tasks import task_config
from seqjax.errors import ConfigError
from seqjax.tasks import get_task
from seqjax.tasks.vocabulary import BOS, EOS
from seqjax.training.config_checks import check_task_config

VOCAB, HIDDEN, MAX_LENGTH = 7, 8, 10


def init(model, *args):
    """``model.init`` under ``jit``: one compile is much faster than eager op-by-op tracing."""
    return jax.jit(model.init)(jax.random.PRNGKey(0), *args)


_JITTED = {}


def apply(model, variables, *args, method="__call__", **static_kwargs):
    """``model.apply`` under ``jit``, compiled once per model, method and static arguments."""
    key = (id(model), method, tuple(sorted(static_kwargs.items())))
    if key not in _JITTED:
        _JITTED[key] = (model, jax.jit(functools.partial(model.apply, method=method, **static_kwargs)))
    return _JITTED[key][1](variables, *args)


def init_decode_state(model, variables, batch, max_length):
    return apply(model, variables, batch.inputs, batch.input_lengths,
                 method="init_decode_state", max_length=max_length)


def model_config(kind, **overrides):
    fields = dict(kind=kind, hidden_size=HIDDEN, embed_size=6, num_layers=1, direction="forward",
                  attention="none", num_heads=2, mlp_ratio=2, positional="learned",
                  pooling="mean", dropout=0.0)
    return ml_collections.ConfigDict({**fields, **overrides})


ENCODERS = {
    "elman_forward": lambda: RecurrentEncoder("elman", HIDDEN, VOCAB, 6),
    "lstm_backward": lambda: RecurrentEncoder("lstm", HIDDEN, VOCAB, 6, direction="backward"),
    "gru_bidirectional_2_layers": lambda: RecurrentEncoder(
        "gru", HIDDEN, VOCAB, 6, num_layers=2, direction="bidirectional"
    ),
    "transformer_mean": lambda: TransformerEncoder(HIDDEN, 2, 2, MAX_LENGTH, VOCAB),
    "transformer_last_sinusoidal": lambda: TransformerEncoder(
        HIDDEN, 1, 2, MAX_LENGTH, VOCAB, positional="sinusoidal", pooling="last"
    ),
    "causal_transformer_rotary": lambda: CausalTransformerEncoder(HIDDEN, 2, 2, MAX_LENGTH, VOCAB),
    "causal_transformer_learned": lambda: CausalTransformerEncoder(
        HIDDEN, 1, 2, MAX_LENGTH, VOCAB, positional="learned"
    ),
}


def padded_batches(seed=0):
    """The same 3 sequences padded two ways: alone to their own maximum length with zeros, and
    to ``MAX_LENGTH`` with random junk ids, next to a longer companion. ``(short, long)``."""
    rng = np.random.default_rng(seed)
    lengths = np.array([3, 5, 1], np.int32)
    tokens = rng.integers(1, VOCAB, (3, 5))
    short = np.where(np.arange(5)[None, :] < lengths[:, None], tokens, 0).astype(np.int32)
    junk = rng.integers(1, VOCAB, (4, MAX_LENGTH)).astype(np.int32)
    long = junk.copy()
    long[:3, :5] = np.where(np.arange(5)[None, :] < lengths[:, None], tokens, junk[:3, :5])
    return (short, lengths), (long, np.append(lengths, MAX_LENGTH).astype(np.int32))


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_many_to_one_prediction_ignores_padding(encoder):
    model = ManyToOne(ENCODERS[encoder](), output_size=3)
    (short, short_lengths), (long, long_lengths) = padded_batches()
    variables = init(model, long, long_lengths)
    alone = apply(model, variables, short, short_lengths)
    batched = apply(model, variables, long, long_lengths)[:3]
    np.testing.assert_allclose(alone, batched, rtol=1e-5, atol=1e-6)
    assert not np.allclose(alone[0], alone[1])  # the predictions do depend on the input


@pytest.mark.parametrize("encoder", ["lstm_backward", "transformer_mean",
                                     "causal_transformer_rotary"])
def test_many_to_many_predictions_ignore_padding(encoder):
    model = ManyToMany(ENCODERS[encoder](), output_size=3)
    (short, short_lengths), (long, long_lengths) = padded_batches(1)
    variables = init(model, long, long_lengths)
    alone = apply(model, variables, short, short_lengths)
    batched = apply(model, variables, long, long_lengths)
    for row, length in enumerate(short_lengths):
        np.testing.assert_allclose(alone[row, :length], batched[row, :length], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("encoder", ["causal_transformer_rotary", "causal_transformer_learned"])
def test_causal_transformer_outputs_see_only_the_past(encoder):
    """Changing the inputs at steps ``t+1..`` leaves every output at steps ``<= t`` unchanged and
    changes the later ones; the bidirectional encoder, for contrast, changes them all."""
    rng = np.random.default_rng(3)
    tokens = rng.integers(1, VOCAB, (2, MAX_LENGTH)).astype(np.int32)
    lengths = np.full(2, MAX_LENGTH, np.int32)
    for name in (encoder, "transformer_mean"):
        model = ManyToMany(ENCODERS[name](), output_size=3)
        variables = init(model, tokens, lengths)
        before = apply(model, variables, tokens, lengths)
        for t in (0, 4, MAX_LENGTH - 2):
            changed = tokens.copy()
            changed[:, t + 1:] = (tokens[:, t + 1:] % (VOCAB - 1)) + 1  # a different id
            after = apply(model, variables, changed, lengths)
            past_unchanged = np.allclose(before[:, :t + 1], after[:, :t + 1], rtol=1e-6, atol=1e-6)
            assert past_unchanged == (name == encoder)
            assert not np.allclose(before[:, t + 1:], after[:, t + 1:])


def test_causal_transformer_answers_where_the_recurrent_encoders_do():
    """The summary is the state at each sequence's own last valid step (a recurrent encoder's
    final carry), the states past a length are zero as the recurrent ones, and a many-to-one
    head reads the same number as a tagger at that step; rotary positions add no parameters."""
    (_, _), (tokens, lengths) = padded_batches(4)
    encoder = ENCODERS["causal_transformer_rotary"]()
    variables = init(encoder, tokens, lengths)
    states, summary = apply(encoder, variables, tokens, lengths)
    np.testing.assert_array_equal(summary, np.asarray(states)[np.arange(4), lengths - 1])
    past_end = np.arange(MAX_LENGTH)[None, :] >= lengths[:, None]
    recurrent = RecurrentEncoder("gru", HIDDEN, VOCAB, 6)
    recurrent_states, _ = apply(recurrent, init(recurrent, tokens, lengths), tokens, lengths)
    assert np.all(np.asarray(states)[past_end] == 0)
    assert np.all(np.asarray(recurrent_states)[past_end] == 0)
    assert "position" not in variables["params"]["embedding"]
    one, many = (head(encoder, output_size=3) for head in (ManyToOne, ManyToMany))
    head_variables = init(many, tokens, lengths)
    np.testing.assert_allclose(
        apply(one, head_variables, tokens, lengths),
        np.asarray(apply(many, head_variables, tokens, lengths))[np.arange(4), lengths - 1],
        rtol=1e-6, atol=1e-6)


def test_causal_transformer_preset_passes_the_task_checks():
    config = task_config("copy_memory", "causal_transformer")
    assert (config.model.kind, config.model.positional, config.model.pooling) == (
        "causal_transformer", "rotary", "last")
    check_task_config(config, get_task("copy_memory"))
    check_task_config(task_config("temporal_xor", "causal_transformer"), get_task("temporal_xor"))
    with pytest.raises(ConfigError, match="seq2seq"):
        check_task_config(task_config("reverse", "causal_transformer"), get_task("reverse"))
    config.model.hidden_size, config.model.num_heads = 12, 4  # rotary pairs need an even head
    with pytest.raises(ConfigError, match="even head size"):
        check_task_config(config, get_task("copy_memory"))


def python_loop_final_hidden(cell_name, params, xs, length, reverse=False):
    """The hidden state after running the pure cell over the valid steps, one at a time."""
    cell = get_cell(cell_name)
    carry = cell.initial_carry(params)
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for t in steps:
        carry, _ = cell.step(params, carry, xs[t])
    return np.asarray(cell.output(carry))


@pytest.mark.parametrize("cell_name, direction", [
    ("gru", "forward"), ("lstm", "backward"), ("elman", "bidirectional"),
])
def test_recurrent_summary_is_the_state_at_the_last_valid_step(cell_name, direction):
    encoder = RecurrentEncoder(cell_name, HIDDEN, VOCAB, 6, direction=direction)
    (_, _), (tokens, lengths) = padded_batches(2)
    variables = init(encoder, tokens, lengths)
    _, summary = apply(encoder, variables, tokens, lengths)
    params = variables["params"]
    embedded = np.asarray(params["input"]["embed"]["embedding"])[tokens]
    layer = params["layer_0"]
    for row, length in enumerate(lengths):
        if direction == "bidirectional":
            expected = np.concatenate([
                python_loop_final_hidden(cell_name, layer["forward"]["cell"], embedded[row], length),
                python_loop_final_hidden(cell_name, layer["backward"]["cell"], embedded[row], length,
                                         reverse=True),
            ])
        else:
            expected = python_loop_final_hidden(cell_name, layer["cell"], embedded[row], length,
                                                reverse=direction == "backward")
        np.testing.assert_allclose(summary[row], expected, rtol=1e-5, atol=1e-6)


def numpy_softmax(scores):
    scores = scores - scores.max(-1, keepdims=True)
    return np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)


def test_multi_head_attention_against_numpy(rng):
    x = rng.normal(size=(2, 3, 8)).astype(np.float32)
    memory = rng.normal(size=(2, 5, 8)).astype(np.float32)
    lengths = np.array([5, 2])
    layer = MultiHeadAttention(num_heads=2)
    mask = key_padding_mask(jnp.asarray(lengths), 5)
    variables = layer.init(jax.random.PRNGKey(0), x, memory, mask)
    out = layer.apply(variables, x, memory, mask)
    p = jax.tree.map(np.asarray, variables["params"])
    project = lambda name, inputs: np.einsum("btw,wnh->bnth", inputs, p[name]["kernel"]) + \
        p[name]["bias"].reshape(1, 2, 1, 4)  # [heads, head_dim], stored flat
    q, k, v = project("query", x), project("key", memory), project("value", memory)
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(4)
    scores = np.where(np.arange(5)[None, None, None, :] < lengths[:, None, None, None], scores, -1e30)
    heads = numpy_softmax(scores) @ v  # [B, N, T, H]
    expected = np.einsum("bnth,nhw->btw", heads, p["output"]["kernel"]) + p["output"]["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_additive_and_dot_attention_weights_against_numpy(rng):
    query = rng.normal(size=(2, 4)).astype(np.float32)
    keys = rng.normal(size=(2, 6, 4)).astype(np.float32)
    score_vector = rng.normal(size=4).astype(np.float32)
    mask = np.arange(6)[None, :] < np.array([[6], [3]])
    additive = numpy_softmax(np.where(mask, np.tanh(query[:, None] + keys) @ score_vector, -1e30))
    dot = numpy_softmax(np.where(mask, np.einsum("ba,bsa->bs", query, keys) / 2.0, -1e30))
    np.testing.assert_allclose(
        additive_attention_weights(query, keys, score_vector, mask), additive, rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(dot_attention_weights(query, keys, mask), dot, rtol=1e-5, atol=1e-7)
    assert not np.asarray(dot_attention_weights(query, keys, mask))[1, 3:].any()


def test_pool_against_numpy(rng):
    states = rng.normal(size=(2, 4, 3)).astype(np.float32)
    lengths = np.array([4, 2])
    for pooling, reference in [("mean", np.mean), ("max", np.max)]:
        expected = np.stack([reference(states[b, :n], axis=0) for b, n in enumerate(lengths)])
        np.testing.assert_allclose(pool(states, lengths, pooling), expected, rtol=1e-6)
    np.testing.assert_allclose(pool(states, lengths, "last"), states[[0, 1], lengths - 1])


def test_heads_from_config_have_the_task_shapes():
    cases = [("parity", "gru", (4, 2)), ("sequence_sum", "transformer", (4, 1)),
             ("seen_before", "transformer", (4, 24, 2)),
             ("sequence_sum", "causal_transformer", (4, 1)),
             ("seen_before", "causal_transformer", (4, 24, 2))]
    for name, kind, expected in cases:
        task = get_task(name)
        batch = task.training_batch(0, 0, 4)
        model = sequence_model_from_config(model_config(kind, **CAUSAL_FIELDS.get(kind, {})), task)
        variables = init(model, batch.inputs, batch.input_lengths)
        assert apply(model, variables, batch.inputs, batch.input_lengths).shape == expected


CAUSAL_FIELDS = {"causal_transformer": {"positional": "rotary", "pooling": "last"}}


SEQ2SEQ = {
    "gru_none": model_config("gru"),
    "lstm_additive": model_config("lstm", attention="additive"),
    "elman_dot_bidirectional": model_config("elman", attention="dot", direction="bidirectional"),
    "transformer": model_config("transformer"),
}


@functools.cache
def seq2seq_model(name):
    task = get_task("reverse", max_length=6)
    model = seq2seq_from_config(SEQ2SEQ[name], task)
    batch = task.training_batch(0, 0, 3)
    decoder_inputs = teacher_forcing_inputs(jnp.asarray(batch.targets))
    variables = init(model, batch.inputs, batch.input_lengths, decoder_inputs)
    return task, model, variables, batch, decoder_inputs


def test_teacher_forcing_inputs_shift_right_behind_bos():
    targets = jnp.array([[5, 6, EOS], [7, EOS, 0]])
    np.testing.assert_array_equal(teacher_forcing_inputs(targets), [[BOS, 5, 6], [BOS, 7, EOS]])


@pytest.mark.parametrize("name", list(SEQ2SEQ))
def test_teacher_forced_logits_equal_step_by_step_decoding(name):
    _, model, variables, batch, decoder_inputs = seq2seq_model(name)
    logits = apply(model, variables, batch.inputs, batch.input_lengths, decoder_inputs)
    state = init_decode_state(model, variables, batch, decoder_inputs.shape[1])
    for t in range(decoder_inputs.shape[1]):
        step_logits, state = apply(model, variables, state, decoder_inputs[:, t], method="decode_step")
        np.testing.assert_allclose(step_logits, logits[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(SEQ2SEQ))
def test_seq2seq_logits_ignore_source_padding(name):
    task, model, variables, batch, decoder_inputs = seq2seq_model(name)
    logits = apply(model, variables, batch.inputs, batch.input_lengths, decoder_inputs)
    junk = np.where(batch.inputs == 0, 3, batch.inputs)  # padding ids replaced by a real symbol
    wider = np.concatenate([junk, np.full((3, 2), 4, np.int32)], axis=1)
    if name == "transformer":  # learned positions: the width must stay within max_length
        wider = junk
    wider_logits = apply(model, variables, wider, batch.input_lengths, decoder_inputs)
    np.testing.assert_allclose(logits, wider_logits, rtol=1e-5, atol=1e-6)


def test_transformer_decoder_is_causal():
    _, model, variables, batch, decoder_inputs = seq2seq_model("transformer")
    changed = decoder_inputs.at[:, 3].set((decoder_inputs[:, 3] + 1) % 5 + 3)
    before = apply(model, variables, batch.inputs, batch.input_lengths, decoder_inputs)
    after = apply(model, variables, batch.inputs, batch.input_lengths, changed)
    np.testing.assert_allclose(before[:, :3], after[:, :3], rtol=1e-6, atol=1e-7)
    assert not np.allclose(before[:, 3:], after[:, 3:])


def python_greedy(model, variables, batch, num_tokens):
    state = init_decode_state(model, variables, batch, num_tokens)  # BOS and all but the last
    token, tokens = jnp.full((batch.inputs.shape[0],), BOS, jnp.int32), []
    for _ in range(num_tokens):
        logits, state = apply(model, variables, state, token, method="decode_step")
        token = jnp.argmax(logits, -1).astype(jnp.int32)
        tokens.append(np.asarray(token))
    return np.stack(tokens, axis=1)


@pytest.mark.parametrize("name", ["lstm_additive", "transformer"])
def test_greedy_and_beam_decoding_through_the_generation_api(name):
    task, model, variables, batch, _ = seq2seq_model(name)
    num_tokens, source = task.max_target_length, (batch.inputs, batch.input_lengths)
    greedy = jax.jit(functools.partial(greedy_decode, model, num_tokens=num_tokens))(variables, *source)
    np.testing.assert_array_equal(greedy, python_greedy(model, variables, batch, num_tokens))
    # Width-1 beam search is greedy decoding until EOS, then it repeats EOS.
    beam_fn = lambda beam_size: jax.jit(functools.partial(
        beam_decode, model, num_tokens=num_tokens, beam_size=beam_size))(variables, *source)
    beam = np.asarray(beam_fn(1))
    for greedy_row, beam_row in zip(np.asarray(greedy), beam):
        ends = np.flatnonzero(greedy_row == EOS)
        stop = ends[0] + 1 if len(ends) else num_tokens
        np.testing.assert_array_equal(beam_row[:stop], greedy_row[:stop])
        assert np.all(beam_row[stop:] == EOS)
    assert beam_fn(3).shape == (3, num_tokens)


def test_rnn_decoder_without_attention_reads_only_the_summary():
    # Cho et al.: without attention, the encoder states reach the decoder only through c.
    _, model, variables, batch, decoder_inputs = seq2seq_model("gru_none")
    assert isinstance(model, RecurrentSeq2Seq) and "memory_keys" not in variables["params"]
    state = init_decode_state(model, variables, batch, 1)
    state["memory"]["values"] = jnp.zeros_like(state["memory"]["values"])
    logits, _ = apply(model, variables, state, decoder_inputs[:, 0], method="decode_step")
    expected = apply(model, variables, batch.inputs, batch.input_lengths, decoder_inputs)[:, 0]
    np.testing.assert_allclose(logits, expected, rtol=1e-6)


BFLOAT16_MODELS = {  # (task, model config): every encoder family, head kind and decoder
    "gru_bidirectional_classifier": ("parity", model_config("gru", direction="bidirectional")),
    "transformer_regressor": ("sequence_sum", model_config("transformer")),
    "lstm_tagger": ("seen_before", model_config("lstm")),
    "causal_transformer_tagger": ("seen_before", model_config(
        "causal_transformer", **CAUSAL_FIELDS["causal_transformer"])),
    "lstm_additive_seq2seq": ("reverse", model_config("lstm", attention="additive")),
    "elman_dot_seq2seq": ("reverse", model_config("elman", attention="dot")),
    "transformer_seq2seq": ("reverse", model_config("transformer")),
}


@pytest.mark.parametrize("name", list(BFLOAT16_MODELS))
def test_bfloat16_models_keep_float32_params_and_unrounded_outputs(name):
    """``model.dtype = "bfloat16"``: the same float32 parameters, bfloat16 products, float32
    outputs within bfloat16's rounding of float32's and not rounded to bfloat16 themselves."""
    task_name, config = BFLOAT16_MODELS[name]
    task = get_task(task_name, max_length=6)
    build = seq2seq_from_config if task.kind == "seq2seq" else sequence_model_from_config
    model = build(config, task)
    mixed = build(ml_collections.ConfigDict({**config.to_dict(), "dtype": "bfloat16"}), task)
    batch = task.training_batch(0, 0, 3)
    args = (batch.inputs, batch.input_lengths)
    if task.kind == "seq2seq":
        args += (teacher_forcing_inputs(jnp.asarray(batch.targets)),)
    variables = init(model, *args)
    assert jax.eval_shape(mixed.init, jax.random.PRNGKey(0), *args) == jax.eval_shape(
        model.init, jax.random.PRNGKey(0), *args)
    hlo = jax.jit(mixed.apply).lower(variables, *args).as_text()
    assert re.search(r"dot_general.*bf16", hlo)
    outputs, reference = apply(mixed, variables, *args), apply(model, variables, *args)
    assert outputs.dtype == jnp.float32
    np.testing.assert_allclose(outputs, reference, atol=0.02 * float(np.abs(reference).max()))
    assert not np.array_equal(outputs, outputs.astype(jnp.bfloat16).astype(jnp.float32))
