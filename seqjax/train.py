"""Training a language model: state, optimizer, jitted steps, and the loop.

``train_and_evaluate(config, workdir)`` is the whole job: build the data and model, resume
from the workdir's latest checkpoint if there is one, then loop over steps, logging,
evaluating and checkpointing through small helpers. Every batch and dropout key is a function
of ``(config.seed, step)``, and the recurrent carry is part of the checkpointed state, so a run
resumed after any interruption reproduces the uninterrupted run's metrics step for step.
"""

import json
import math
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from tqdm import tqdm

from seqjax.checkpointing import RunCheckpoints
from seqjax.config_checks import check_config
from seqjax.data import num_stream_windows, random_windows, stream_windows
from seqjax.errors import CheckpointMismatchError, TrainingDivergedError
from seqjax.language_data import prepare_language_data
from seqjax.losses import mean_cross_entropy, nats_to_bits, token_cross_entropy
from seqjax.metrics_log import MetricsLog, read_metrics
from seqjax.models import build_model

# Config sections a resumed run must share with the run that wrote the workdir.
RUN_IDENTITY_KEYS = ("seed", "batch_size", "seq_len", "data", "model")


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params: dict
    opt_state: optax.OptState
    carry: object  # per-layer recurrent carries of the training stream (None for Transformers)


def make_optimizer(optim_config, num_steps):
    """AdamW with linear warmup and cosine decay, after global-norm clipping (all from config)."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=optim_config.learning_rate,
        warmup_steps=min(optim_config.warmup_steps, num_steps),
        decay_steps=max(num_steps, optim_config.warmup_steps + 1),
        end_value=optim_config.end_learning_rate,
    )
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)
    adamw = optax.adamw(
        schedule, b1=optim_config.b1, b2=optim_config.b2,
        weight_decay=optim_config.weight_decay, mask=decay_mask,
    )
    if optim_config.grad_clip > 0:
        return optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), adamw), schedule
    return adamw, schedule


def init_train_state(model, optimizer, config):
    """Fresh parameters and optimizer state from ``config.seed``."""
    carry = model.initial_carry(config.batch_size)
    tokens = jnp.zeros((config.batch_size, config.seq_len), jnp.int32)
    params = jax.jit(model.init)(jax.random.PRNGKey(config.seed), tokens, carry)["params"]
    return TrainState(jnp.array(0, jnp.int32), params, optimizer.init(params), carry)


def train_step(model, optimizer, seed, state, inputs, targets, reset):
    """One update on ``inputs, targets [B, T]``; ``reset [B]`` zeroes those rows' carried state first.

    Returns ``(state, loss, finite)``; ``finite`` is False when the loss or the new params are
    not finite, and then the caller must not keep (or checkpoint) the new state.
    """
    carry = jax.tree.map(lambda c: jnp.where(reset[:, None], jnp.zeros_like(c), c), state.carry)
    dropout_key = jax.random.fold_in(jax.random.PRNGKey(seed), state.step)

    def loss_fn(params):
        logits, new_carry = model.apply(
            {"params": params}, inputs, carry, deterministic=False, rngs={"dropout": dropout_key}
        )
        return mean_cross_entropy(logits, targets), new_carry

    (loss, new_carry), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_carry = jax.lax.stop_gradient(new_carry)  # truncated BPTT: no gradient across windows
    finite = jnp.isfinite(loss) & jnp.isfinite(optax.tree.norm(params))
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state, carry=new_carry)
    return new_state, loss, finite


def eval_step(model, params, carry, inputs, targets):
    """Summed loss (nats) of one validation window and the carry for the next window."""
    logits, carry = model.apply({"params": params}, inputs, carry)
    return jnp.sum(token_cross_entropy(logits, targets)), carry


def training_batch(config, tokens, step):
    """``(inputs, targets, reset [B])`` for ``step``: a pure function of (seed, step).

    Stream batching carries each row's state into its next window; a row starts from zeros at
    the start of every pass over the data and, with probability
    ``data.stream_reset_probability``, at any window, so the model also learns to start from
    a zero state anywhere in the text (as sampling from a prompt does).
    """
    if config.data.batching == "stream":
        inputs, targets, new_pass = stream_windows(
            tokens, batch_size=config.batch_size, seq_len=config.seq_len, step=step
        )
        draws = np.random.default_rng([config.seed, step, 1]).random(config.batch_size)
        return inputs, targets, new_pass | (draws < config.data.stream_reset_probability)
    inputs, targets = random_windows(
        tokens, batch_size=config.batch_size, seq_len=config.seq_len, seed=config.seed, step=step
    )
    return inputs, targets, np.ones(config.batch_size, bool)


def evaluate(config, model, params, val_tokens, eval_fn):
    """Validation loss in nats/token over contiguous streams (RNN state carried across windows)."""
    carry = model.initial_carry(config.batch_size)
    num_windows = num_stream_windows(len(val_tokens), config.batch_size, config.seq_len)
    if config.eval_batches:
        num_windows = min(num_windows, config.eval_batches)
    total, count = 0.0, 0
    for k in range(num_windows):
        inputs, targets, _ = stream_windows(
            val_tokens, batch_size=config.batch_size, seq_len=config.seq_len, step=k
        )
        loss_sum, carry = eval_fn(params, carry, inputs, targets)
        total += float(loss_sum)
        count += targets.size
    return total / count


def check_run_identity(config, workdir, identity_keys=RUN_IDENTITY_KEYS, *, resuming=True):
    """Write ``WORKDIR/config.json``; when ``resuming`` a checkpointed run, first insist the run's
    identity (the config sections named by ``identity_keys``) matches the saved one. A workdir
    without a checkpoint (e.g. a first attempt that stopped at a missing corpus) is reused freely."""
    path = Path(workdir) / "config.json"
    current = json.loads(config.to_json())
    if not resuming or not path.exists():
        path.write_text(json.dumps(current, indent=2, sort_keys=True))
        return
    saved = json.loads(path.read_text())
    for key in identity_keys:
        if saved.get(key) != current.get(key):
            raise CheckpointMismatchError(
                f"workdir {workdir} holds a run with {key}={json.dumps(saved.get(key), sort_keys=True)}"
                f" but the config says {key}={json.dumps(current.get(key), sort_keys=True)}; "
                "use a fresh --workdir, or the run's own settings to resume it"
            )
    path.write_text(json.dumps(current, indent=2, sort_keys=True))  # e.g. a longer num_steps


def is_due(done, every, num_steps):
    """Whether step ``done`` logs/evaluates/checkpoints: every ``every`` steps and at the end."""
    return done % every == 0 or done == num_steps


def train_and_evaluate(config, workdir):
    """Train ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the last record."""
    check_config(config)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoints = RunCheckpoints(workdir / "checkpoints")
    check_run_identity(config, workdir, resuming=checkpoints.has_run())
    if not checkpoints.has_run():  # a tokenizer left by an attempt that never checkpointed
        (workdir / "tokenizer.json").unlink(missing_ok=True)
    data = prepare_language_data(config.data, workdir, config.batch_size * config.seq_len + 1)
    model = build_model(config.model, data.tokenizer.vocab_size, config.seq_len)
    optimizer, schedule = make_optimizer(config.optim, config.num_steps)
    state = init_train_state(model, optimizer, config)
    best_val_loss = math.inf
    restored = checkpoints.restore_latest(state)
    if restored is not None:
        state, record = restored
        best_val_loss = record["best_val_loss"]
    start = int(state.step)
    metrics = MetricsLog(workdir, resume_step=start)
    step_fn = jax.jit(partial(train_step, model, optimizer, config.seed), donate_argnums=0)
    eval_fn = jax.jit(partial(eval_step, model))
    record = {}
    progress = tqdm(
        total=config.num_steps, initial=start, disable=not config.progress_bar, desc="train"
    )
    for step in range(start, config.num_steps):
        state, loss, finite = step_fn(state, *training_batch(config, data.train_tokens, step))
        loss, done = float(loss), step + 1
        if not bool(finite):
            raise TrainingDivergedError(
                f"training diverged at step {done} (loss {loss}, or non-finite parameters); "
                f"the last good checkpoint in "
                f"{workdir / 'checkpoints'} is intact. Lower --config.optim.learning_rate or "
                "set --config.optim.grad_clip, then rerun to resume"
            )
        progress.update(1)
        record = {}
        if is_due(done, config.log_every, config.num_steps):
            record = {"step": done, "train_loss": loss, "train_bits": nats_to_bits(loss),
                      "learning_rate": float(schedule(step))}
            progress.set_postfix(loss=f"{loss:.3f}")
        if is_due(done, config.eval_every, config.num_steps):
            val_loss = evaluate(config, model, state.params, data.val_tokens, eval_fn)
            record.update(step=done, val_loss=val_loss, val_bits=nats_to_bits(val_loss))
            if val_loss < best_val_loss:
                best_val_loss = val_loss
                checkpoints.save_best(done, state.params, {"step": done, "val_loss": val_loss})
        if record:
            metrics.write(record)
        if is_due(done, config.checkpoint_every, config.num_steps):
            checkpoints.save_latest(done, state, {"step": done, "best_val_loss": best_val_loss})
    progress.close()
    metrics.close()
    return record or (read_metrics(workdir) or [{}])[-1]  # a finished run: its last record
