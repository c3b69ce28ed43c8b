"""Training a model on a generated task: many-to-one, tagging, or sequence-to-sequence.

``train_task(config, workdir)`` is the whole job, the task-side twin of
:func:`seqjax.train.train_and_evaluate`: the task's generator gives batch ``step`` as a pure
function of ``(config.seed, step)`` and a fixed held-out set; the model comes from
``config.model``; the optimizer is :func:`seqjax.train.make_optimizer`. The loop logs
``train_loss``, evaluates ``val_loss`` and the task's metrics (``val_accuracy``, ``val_mse``,
``val_exact_match``, ...) into ``metrics.jsonl``, and checkpoints, so a rerun resumes and
reproduces the uninterrupted run.
"""

import json
import math
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import struct
from tqdm import tqdm

from seqjax.checkpointing import RunCheckpoints
from seqjax.errors import CheckpointMismatchError, ConfigError, TrainingDivergedError
from seqjax.metrics_log import MetricsLog, read_metrics
from seqjax.models.seq2seq import (
    ATTENTIONS, beam_decode, greedy_decode, seq2seq_from_config, teacher_forcing_inputs,
)
from seqjax.models.sequence_heads import (
    DIRECTIONS, ENCODER_POSITIONALS, POOLINGS, sequence_model_from_config,
)
from seqjax.tasks import get_task
from seqjax.tasks.objectives import OBJECTIVES, exact_match
from seqjax.train import check_run_identity, is_due, make_optimizer

MODEL_KINDS = ("elman", "lstm", "gru", "transformer")
POSITIVE_INTS = ("num_steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                 "eval_examples")
# Config sections a resumed run must share with the run that wrote the workdir.
RUN_IDENTITY_KEYS = ("seed", "batch_size", "task", "task_options", "model", "eval_examples")


class TaskTrainState(struct.PyTreeNode):
    step: jax.Array
    params: dict
    opt_state: optax.OptState


def _check_choice(value, choices, key):
    if value not in choices:
        raise ConfigError(f"config.{key} must be one of {', '.join(choices)}; got {value!r}")


def check_task_config(config, task):
    """Raise :class:`ConfigError` on the first bad field of a task config, naming the fix."""
    for key in POSITIVE_INTS:
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config.{key} must be a positive integer, got {value!r}")
    model = config.model
    _check_choice(model.kind, MODEL_KINDS, "model.kind")
    if model.kind == "transformer":
        _check_choice(model.positional, ENCODER_POSITIONALS, "model.positional")
        _check_choice(model.pooling, POOLINGS, "model.pooling")
        if model.hidden_size % model.num_heads:
            raise ConfigError(
                f"config.model.hidden_size ({model.hidden_size}) must be a multiple of "
                f"config.model.num_heads ({model.num_heads}): change either"
            )
        if model.positional == "sinusoidal" and model.hidden_size % 2:
            raise ConfigError(
                f"sinusoidal positions need an even config.model.hidden_size, got {model.hidden_size}"
            )
    else:
        _check_choice(model.direction, DIRECTIONS, "model.direction")
        if task.kind == "seq2seq":
            _check_choice(model.attention, ATTENTIONS, "model.attention")
    sees_later_inputs = model.kind == "transformer" or model.get("direction") != "forward"
    if task.causal and sees_later_inputs:
        raise ConfigError(
            f"task {task.name!r} predicts the next input, which a {model.kind} encoder with "
            f"direction={model.get('direction')!r} can read: use an elman, lstm or gru model "
            "with config.model.direction=forward"
        )
    if not 0.0 <= model.dropout < 1.0:
        raise ConfigError(f"config.model.dropout must be in [0, 1), got {model.dropout!r}")
    if config.eval_beam_size < 0:
        raise ConfigError(f"config.eval_beam_size must be >= 0 (0 = greedy only), got "
                          f"{config.eval_beam_size!r}")


def task_from_config(config):
    """The task named ``config.task`` built with ``config.task_options``."""
    return get_task(config.task, **config.get("task_options", {}))


def build_task_model(model_config, task):
    """The Flax model for ``task``: an encoder-decoder for seq2seq, else an encoder and head."""
    if task.kind == "seq2seq":
        return seq2seq_from_config(model_config, task)
    return sequence_model_from_config(model_config, task)


def model_inputs(task_kind, batch):
    """The model's positional arguments for ``batch``: inputs, lengths (and, for seq2seq, the
    teacher-forced decoder inputs)."""
    args = (batch.inputs, batch.input_lengths)
    if task_kind == "seq2seq":
        args += (teacher_forcing_inputs(batch.targets),)
    return args


def model_outputs(model, task_kind, params, batch, **apply_kwargs):
    """The model's outputs on ``batch`` (teacher-forced logits for seq2seq)."""
    return model.apply({"params": params}, *model_inputs(task_kind, batch), **apply_kwargs)


def init_train_state(model, optimizer, task, config):
    """Fresh parameters (from ``config.seed``) and optimizer state."""
    batch = task.training_batch(config.seed, 0, config.batch_size)
    key = jax.random.PRNGKey(config.seed)
    params = jax.jit(model.init)(key, *model_inputs(task.kind, batch))["params"]
    return TaskTrainState(jnp.array(0, jnp.int32), params, optimizer.init(params))


def train_step(model, task_kind, optimizer, seed, state, batch):
    """One optimizer update on ``batch``; dropout keyed by ``(seed, step)``."""
    dropout_key = jax.random.fold_in(jax.random.PRNGKey(seed), state.step)

    def loss_fn(params):
        outputs = model_outputs(model, task_kind, params, batch, deterministic=False,
                                rngs={"dropout": dropout_key})
        return OBJECTIVES[task_kind](outputs, batch)[0]

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), loss


def eval_step(model, task, beam_size, params, batch):
    """The task's metrics on ``batch``; for seq2seq also free-running ``exact_match`` by greedy
    decoding (and ``exact_match_beam`` when ``beam_size > 1``)."""
    _, metrics = OBJECTIVES[task.kind](model_outputs(model, task.kind, params, batch), batch)
    if task.kind == "seq2seq":
        variables, num_tokens = {"params": params}, task.max_target_length
        source = (batch.inputs, batch.input_lengths)
        decoded = greedy_decode(model, variables, *source, num_tokens)
        metrics["exact_match"] = exact_match(decoded, batch.targets, batch.target_lengths).mean()
        if beam_size > 1:
            decoded = beam_decode(model, variables, *source, num_tokens, beam_size)
            metrics["exact_match_beam"] = exact_match(
                decoded, batch.targets, batch.target_lengths
            ).mean()
    return metrics


def _check_finite(loss, done, workdir):
    if not math.isfinite(loss):
        raise TrainingDivergedError(
            f"training loss became {loss} at step {done}; the last good checkpoint in "
            f"{workdir / 'checkpoints'} is intact. Lower --config.optim.learning_rate or "
            "set --config.optim.grad_clip, then rerun to resume"
        )


def load_task_run(workdir):
    """``(config, task, model, params)`` of a task run: its ``config.json`` and the params of
    its best checkpoint (lowest ``val_loss``), ready for ``model.apply`` or decoding."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise CheckpointMismatchError(f"{workdir} holds no task run (no config.json): train first")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    task = task_from_config(config)
    model = build_task_model(config.model, task)
    fresh = init_train_state(model, make_optimizer(config.optim, config.num_steps)[0], task, config)
    params, _ = RunCheckpoints(Path(workdir) / "checkpoints").restore_best(fresh.params)
    return config, task, model, params


def restore_or_start(checkpoints, fresh_state):
    """``(state, best_val_loss)`` of the workdir's latest checkpoint, else of ``fresh_state``."""
    restored = checkpoints.restore_latest(fresh_state)
    if restored is None:
        return fresh_state, math.inf
    state, record = restored
    return state, record["best_val_loss"]


def evaluate(eval_fn, params, held_out):
    """``{"val_loss": ..., "val_<metric>": ...}`` on the held-out set, as Python floats."""
    return {f"val_{name}": float(value) for name, value in eval_fn(params, held_out).items()}


def train_task(config, workdir):
    """Train ``config`` on its task in ``workdir`` (resuming if it holds a checkpoint).

    Returns the last metrics record (the last of ``metrics.jsonl`` when the run was complete).
    """
    task = task_from_config(config)
    check_task_config(config, task)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoints = RunCheckpoints(workdir / "checkpoints")
    check_run_identity(config, workdir, RUN_IDENTITY_KEYS, resuming=checkpoints.has_run())
    model = build_task_model(config.model, task)
    optimizer, schedule = make_optimizer(config.optim, config.num_steps)
    held_out = task.held_out_set(config.seed, config.eval_examples)
    state, best_val_loss = restore_or_start(
        checkpoints, init_train_state(model, optimizer, task, config)
    )
    start = int(state.step)
    metrics = MetricsLog(workdir, resume_step=start)
    step_fn = jax.jit(partial(train_step, model, task.kind, optimizer, config.seed), donate_argnums=0)
    eval_fn = jax.jit(partial(eval_step, model, task, config.eval_beam_size))
    progress = tqdm(total=config.num_steps, initial=start, disable=not config.progress_bar,
                    desc=f"{config.task}/{config.model.kind}")
    record = {}
    for step in range(start, config.num_steps):
        state, loss = step_fn(state, task.training_batch(config.seed, step, config.batch_size))
        loss, done = float(loss), step + 1
        _check_finite(loss, done, workdir)
        progress.update(1)
        record = {}
        if is_due(done, config.log_every, config.num_steps):
            record = {"step": done, "train_loss": loss, "learning_rate": float(schedule(step))}
            progress.set_postfix(loss=f"{loss:.3f}")
        if is_due(done, config.eval_every, config.num_steps):
            record.update(step=done, **evaluate(eval_fn, state.params, held_out))
            if record["val_loss"] < best_val_loss:
                best_val_loss = record["val_loss"]
                checkpoints.save_best(done, state.params, record)
        if record:
            metrics.write(record)
        if is_due(done, config.checkpoint_every, config.num_steps):
            checkpoints.save_latest(done, state, {"step": done, "best_val_loss": best_val_loss})
    progress.close()
    metrics.close()
    return record or (read_metrics(workdir) or [{}])[-1]
