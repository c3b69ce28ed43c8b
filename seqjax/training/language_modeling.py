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

from seqjax.data import num_stream_windows, random_windows, stream_windows
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


def eval_step(model, params, carry, inputs, targets):
    """Summed loss (nats) of one validation window and the carry for the next window."""
    logits, carry = model.apply({"params": params}, inputs, carry)
    return jnp.sum(token_cross_entropy(logits, targets)), carry


def evaluate(config, model, params, tokens, mesh, eval_fn=None):
    """Loss in nats/token over ``config.batch_size`` contiguous streams of ``tokens``, the RNN
    state carried across windows (``config.eval_batches > 0`` keeps the first windows).

    The batches are laid out on ``mesh`` like training batches; the windows' sums stay on the
    device until the end (one wait), then add up in float64. ``eval_fn``: ``eval_step`` of
    ``model`` already jitted (else it is jitted).
    """
    eval_fn = eval_fn or jax.jit(partial(eval_step, model))
    rows = process_rows(mesh, config.batch_size)
    num_windows = num_stream_windows(len(tokens), config.batch_size, config.seq_len)
    if config.eval_batches:
        num_windows = min(num_windows, config.eval_batches)
    carry = jax.tree.map(lambda c: np.zeros((rows.stop - rows.start,) + c.shape[1:], c.dtype),
                         model.initial_carry(config.batch_size))
    carry = global_batch(mesh, carry, config.batch_size)
    sums = []
    for k in range(num_windows):
        inputs, targets, _ = stream_windows(
            tokens, batch_size=config.batch_size, seq_len=config.seq_len, step=k, rows=rows
        )
        loss_sum, carry = eval_fn(params, carry, *global_batch(mesh, (inputs, targets),
                                                               config.batch_size))
        sums.append(loss_sum)
    total = np.sum([host_value(loss_sum) for loss_sum in sums], dtype=np.float64)
    return float(total) / (num_windows * config.batch_size * config.seq_len)


class LanguageModeling:
    """Batches, loss and evaluation of a language-modeling run (see :mod:`seqjax.training`)."""

    # Config sections a resumed run must share with the run that wrote the workdir.
    identity_keys = ("seed", "batch_size", "seq_len", "data", "model")
    check_config = staticmethod(check_config)

    def __init__(self, config, workdir, mesh=None):
        self.config = config
        self.data = prepare_language_data(config.data, workdir, config.batch_size * config.seq_len + 1)
        self.model = build_model(config.model, self.data.tokenizer.vocab_size, config.seq_len, mesh)
        self._eval_step = jax.jit(partial(eval_step, self.model))

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
                            self._eval_step)
        return {"val_loss": val_loss, "val_bits": nats_to_bits(val_loss)}
