"""Language modeling as a training task: next-token prediction on a corpus.

The training task of a config without ``config.task`` (or with ``task = "language_modeling"``):
windows of the corpus's token ids (:mod:`seqjax.language_data`), the mean cross-entropy of the
next token, and the validation loss over contiguous streams. Stream batching carries each row's
recurrent state into its next window; that carry is part of the training state.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.data import num_stream_windows, random_windows, stream_window_block, stream_windows
from seqjax.language_data import prepare_language_data
from seqjax.losses import mean_cross_entropy, nats_to_bits, token_cross_entropy
from seqjax.models import build_model
from seqjax.training.config_checks import check_config
from seqjax.training.sharding import global_batch, host_value, process_rows


def training_batch(config, tokens, step, rows=slice(None)):
    """``(inputs, targets, reset)`` of ``step``'s batch, only its ``rows``: a pure function of
    (seed, step, rows).

    Stream batching carries each row's state into its next window; a row starts from zeros at
    the start of every pass over the data and, with probability
    ``data.stream_reset_probability``, at any window, so the model also learns to start from
    a zero state anywhere in the text (as sampling from a prompt does).
    """
    if config.data.batching == "stream":
        inputs, targets, new_pass = stream_windows(
            tokens, batch_size=config.batch_size, seq_len=config.seq_len, step=step, rows=rows
        )
        draws = np.random.default_rng([config.seed, step, 1]).random(config.batch_size)[rows]
        return inputs, targets, new_pass | (draws < config.data.stream_reset_probability)
    inputs, targets = random_windows(
        tokens, batch_size=config.batch_size, seq_len=config.seq_len, seed=config.seed, step=step,
        rows=rows,
    )
    return inputs, targets, np.ones(len(inputs), bool)


def language_model_loss(model, params, carry, batch, dropout_key):
    """``(loss, new_carry)``: the mean next-token cross-entropy of ``batch = (inputs, targets,
    reset)``, the rows flagged in ``reset [B]`` started from a zero carry."""
    inputs, targets, reset = batch
    def zero_reset_rows(c):  # c: [B, ...] (a conv history is [B, width-1, H])
        return jnp.where(reset.reshape((-1,) + (1,) * (c.ndim - 1)), jnp.zeros_like(c), c)

    carry = jax.tree.map(zero_reset_rows, carry)
    logits, new_carry = model.apply(
        {"params": params}, inputs, carry, deterministic=False, rngs={"dropout": dropout_key}
    )
    return mean_cross_entropy(logits, targets), new_carry


# One evaluation call reads at most this many tokens; a bigger validation split goes through
# the same compiled program in segments (the last one padded with windows that weigh nothing).
EVAL_SEGMENT_TOKENS = 2**22
# A model without a carry reads several windows per forward pass, about this many tokens, as
# long as its logits stay under EVAL_LOGITS_BYTES. Measured by experiments.benchmarks.evaluation
# for nanogpt_cpu.py on 2 Zen 4 cores: 1,536 tokens a pass is fastest (1.39 s an evaluation,
# 1.44 s at 768, 1.60 s at 6,144, 1.76 s at 24,576): the forward pass is bound by arithmetic.
EVAL_TOKENS_PER_PASS = 1536
EVAL_LOGITS_BYTES = 2**28


def eval_segment(model, windows_per_pass, params, carry, inputs, targets):
    """Summed loss (nats) of each window of a segment, and the carry after it.

    ``inputs, targets [B, S, T]``: window ``k`` of stream ``b`` at ``[b, k]``; a target of -1
    is padding and weighs nothing. The windows run in order, ``windows_per_pass`` of them (a
    divisor of ``S``; more than 1 only for a model without a carry) as one ``[B g, T]`` batch.
    """
    batch, num_windows, seq_len = inputs.shape
    group = windows_per_pass

    def one_pass(carry, window):  # window: ([B, g, T], [B, g, T])
        x, y = (a.reshape(batch * group, seq_len) for a in window)
        logits, carry = model.apply({"params": params}, x, carry)
        losses = jnp.where(y >= 0, token_cross_entropy(logits, jnp.maximum(y, 0)), 0.0)
        return carry, losses.reshape(batch, group, seq_len).sum(axis=(0, 2))

    windows = tuple(a.reshape(batch, num_windows // group, group, seq_len).swapaxes(0, 1)
                    for a in (inputs, targets))
    carry, sums = jax.lax.scan(one_pass, carry, windows)
    return sums.reshape(num_windows), carry


def windows_per_pass(model, batch_size, seq_len, vocab_size, num_windows):
    """How many windows one forward pass of evaluation reads: 1 for a model with a carry (its
    windows follow one another), else about ``EVAL_TOKENS_PER_PASS`` tokens' worth."""
    if model.initial_carry(1) is not None:
        return 1
    by_tokens = EVAL_TOKENS_PER_PASS // (batch_size * seq_len)
    by_memory = EVAL_LOGITS_BYTES // (4 * batch_size * seq_len * vocab_size)
    group = max(1, min(by_tokens, by_memory, num_windows))
    passes = -(-num_windows // group)
    return -(-num_windows // passes)  # as few padding windows as that many passes allow


def num_eval_windows(config, num_tokens):
    """Windows per stream that evaluation reads (``config.eval_batches > 0`` caps them)."""
    num_windows = num_stream_windows(num_tokens, config.batch_size, config.seq_len)
    return min(num_windows, config.eval_batches) if config.eval_batches else num_windows


def evaluate(config, model, params, tokens, mesh, eval_fn=None, group=1):
    """Loss in nats/token over ``config.batch_size`` contiguous streams of ``tokens``, the RNN
    state carried across windows (``config.eval_batches > 0`` keeps the first windows).

    The windows go to the device in segments of up to ``EVAL_SEGMENT_TOKENS`` tokens (one for
    Tiny Shakespeare's split), each evaluated by one compiled call (:func:`eval_segment`, ``group``
    windows per pass), laid out on ``mesh`` like training batches; the windows' sums add up in
    float64 at the end. ``eval_fn``: that function of ``model`` and ``group`` already jitted
    (else it is jitted here).
    """
    batch, seq_len = config.batch_size, config.seq_len
    num_windows = num_eval_windows(config, len(tokens))
    eval_fn = eval_fn or jax.jit(partial(eval_segment, model, group))
    per_segment = max(1, EVAL_SEGMENT_TOKENS // (batch * seq_len * group)) * group
    num_segments = -(-num_windows // per_segment)  # then as even as whole passes allow
    windows_per_segment = -(-num_windows // num_segments)
    per_segment = -(-windows_per_segment // group) * group
    rows = process_rows(mesh, batch)
    carry = jax.tree.map(lambda c: np.zeros((rows.stop - rows.start,) + c.shape[1:], c.dtype),
                         model.initial_carry(batch))
    carry = global_batch(mesh, carry, batch)
    sums = []
    for start in range(0, num_windows, per_segment):
        block = stream_window_block(tokens, batch_size=batch, seq_len=seq_len, start=start,
                                    count=min(per_segment, num_windows - start),
                                    pad_to=per_segment, rows=rows)
        window_sums, carry = eval_fn(params, carry, *global_batch(mesh, block, batch))
        sums.append(window_sums)
    total = sum(np.sum(host_value(window_sums), dtype=np.float64) for window_sums in sums)
    return float(total) / (num_windows * batch * seq_len)


class LanguageModeling:
    """Batches, loss and evaluation of a language-modeling run (see :mod:`seqjax.training`)."""

    # Config sections a resumed run must share with the run that wrote the workdir.
    identity_keys = ("seed", "batch_size", "seq_len", "data", "model")
    check_config = staticmethod(check_config)

    def __init__(self, config, workdir, mesh=None):
        self.config = config
        self.data = prepare_language_data(config.data, workdir, config.batch_size * config.seq_len + 1)
        self.model = build_model(config.model, self.data.tokenizer.vocab_size, config.seq_len, mesh)
        vocab_size = self.data.tokenizer.vocab_size
        num_windows = num_eval_windows(config, len(self.data.val_tokens))
        self._eval_group = windows_per_pass(self.model, config.batch_size, config.seq_len,
                                            vocab_size, num_windows)
        self._eval_segment = jax.jit(partial(eval_segment, self.model, self._eval_group))

    def init_params(self, key):
        tokens = jnp.zeros((self.config.batch_size, self.config.seq_len), jnp.int32)
        carry = self.initial_carry(self.config.batch_size)
        return self.model.init(key, tokens, carry)["params"]

    def initial_carry(self, batch_size):
        return self.model.initial_carry(batch_size)

    def training_batch(self, step, rows):
        return training_batch(self.config, self.data.train_tokens, step, rows)

    def loss(self, params, carry, batch, dropout_key):
        return language_model_loss(self.model, params, carry, batch, dropout_key)

    def train_metrics(self, loss):
        return {"train_loss": loss, "train_bits": nats_to_bits(loss)}

    def evaluate(self, params, mesh):
        val_loss = evaluate(self.config, self.model, params, self.data.val_tokens, mesh,
                            self._eval_segment, self._eval_group)
        return {"val_loss": val_loss, "val_bits": nats_to_bits(val_loss)}
