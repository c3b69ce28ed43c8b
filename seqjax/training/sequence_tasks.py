"""A generated sequence task as a training task: many-to-one, tagging, or sequence-to-sequence.

The training task of a config with ``config.task`` set (a name in :data:`seqjax.tasks.TASKS`):
the task's generator gives training batch ``step`` as a pure function of ``(config.seed,
step)`` and a fixed held-out set; the model comes from ``config.model``; the loss and metrics
are the task kind's objective (:mod:`seqjax.tasks.objectives`). Evaluation reports
``val_loss`` and the task's metrics (``val_accuracy``, ``val_mse``, ``val_exact_match``, ...).
"""

import json
from functools import partial
from pathlib import Path

import jax
import ml_collections

from seqjax.errors import CheckpointMismatchError
from seqjax.models.seq2seq import beam_decode, greedy_decode, seq2seq_from_config, teacher_forcing_inputs
from seqjax.models.sequence_heads import sequence_model_from_config
from seqjax.tasks import get_task
from seqjax.tasks.objectives import OBJECTIVES, exact_match
from seqjax.training.checkpoints import RunCheckpoints
from seqjax.training.config_checks import check_task_config
from seqjax.training.sharding import global_batch, host_value, process_rows


def task_from_config(config):
    """The task named ``config.task`` built with ``config.task_options``."""
    return get_task(config.task, **config.get("task_options", {}))


def build_task_model(model_config, task, mesh=None):
    """The Flax model for ``task``: an encoder-decoder for seq2seq, else an encoder and head
    (whose fused recurrent layers split the batch over ``mesh``, if given)."""
    if task.kind == "seq2seq":
        return seq2seq_from_config(model_config, task)
    return sequence_model_from_config(model_config, task, mesh)


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


class SequenceTask:
    """Batches, loss and evaluation of a run on a generated task (see :mod:`seqjax.training`)."""

    # Config sections a resumed run must share with the run that wrote the workdir.
    identity_keys = ("seed", "batch_size", "task", "task_options", "model", "eval_examples")

    @staticmethod
    def check_config(config):
        check_task_config(config, task_from_config(config))

    def __init__(self, config, workdir=None, mesh=None):
        del workdir  # a generated task keeps nothing in the workdir
        self.config = config
        self.task = task_from_config(config)
        self.model = build_task_model(config.model, self.task, mesh)
        self._eval_step = jax.jit(partial(eval_step, self.model, self.task, config.eval_beam_size))
        self._held_out = None

    def init_params(self, key):
        batch = self.task.training_batch(self.config.seed, 0, self.config.batch_size)
        return self.model.init(key, *model_inputs(self.task.kind, batch))["params"]

    def initial_carry(self, batch_size):
        return None  # every example starts afresh

    def training_batch(self, step, rows):
        """This process's ``rows`` of batch ``step``: the batch's examples come from one random
        stream, so it is drawn whole (cheap: a few arrays of ints) and then sliced."""
        batch = self.task.training_batch(self.config.seed, step, self.config.batch_size)
        return jax.tree.map(lambda x: x[rows], batch)

    def loss(self, params, carry, batch, dropout_key):
        outputs = model_outputs(self.model, self.task.kind, params, batch, deterministic=False,
                                rngs={"dropout": dropout_key})
        return OBJECTIVES[self.task.kind](outputs, batch)[0], carry

    def train_metrics(self, loss):
        return {"train_loss": loss}

    def evaluate(self, params, mesh):
        """``{"val_loss": ..., "val_<metric>": ...}`` on the held-out set, as Python floats."""
        if self._held_out is None:
            count = self.config.eval_examples
            held_out = self.task.held_out_set(self.config.seed, count)
            rows = process_rows(mesh, count)
            self._held_out = global_batch(mesh, jax.tree.map(lambda x: x[rows], held_out), count)
        metrics = self._eval_step(params, self._held_out)
        return {f"val_{name}": float(host_value(value)) for name, value in metrics.items()}


def load_task_run(workdir, which="best"):
    """``(config, task, model, params)`` of a task run: its ``config.json`` and the params of
    its best checkpoint (lowest ``val_loss``; ``which="latest"``: the last one saved), ready
    for ``model.apply`` or decoding."""
    path = Path(workdir) / "config.json"
    if not path.exists():
        raise CheckpointMismatchError(f"{workdir} holds no task run (no config.json): train first")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    training = SequenceTask(config)
    target = jax.eval_shape(training.init_params, jax.random.PRNGKey(0))
    with RunCheckpoints(Path(workdir) / "checkpoints") as checkpoints:
        params, _ = checkpoints.restore_best(target, which,
                                             use_latest='load_task_run(workdir, which="latest")')
    return config, training.task, training.model, params
