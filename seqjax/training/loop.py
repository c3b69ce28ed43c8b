"""The training loop of every seqjax run: ``train_and_evaluate(config, workdir)``.

What is trained is a *training task* (:class:`~seqjax.training.language_modeling.LanguageModeling`
for configs without ``config.task``, :class:`~seqjax.training.sequence_tasks.SequenceTask` for
the generated tasks), built as ``TaskType(config, workdir, mesh)``, which provides::

    identity_keys                      config sections a resumed run must share
    check_config(config)               raise ConfigError on a bad field
    init_params(key) -> params
    initial_carry(batch_size)          carried recurrent state (None when nothing is carried)
    training_batch(step, rows)         this process's rows of batch `step` (host arrays)
    loss(params, carry, batch, dropout_key) -> (loss, new_carry)
    train_metrics(loss) -> dict        e.g. train_loss, train_bits
    evaluate(params, mesh) -> dict     val_loss first, then the task's metrics

The loop builds the device mesh (:mod:`seqjax.training.sharding`), resumes from the workdir's
latest checkpoint if there is one, and runs jitted updates (:func:`~seqjax.training.step.train_step`)
without waiting for the device: it reads the loss and the divergence flag only at the steps
that log, evaluate or checkpoint, while the next batch is built during the current update
(after dispatching a step, it waits for the one :data:`MAX_STEPS_AHEAD` steps before it).
Every batch and dropout key is a function of ``(config.seed, step)`` and the recurrent carry is
checkpointed, so a run resumed after any interruption, on any number of devices, reproduces
the uninterrupted run's metrics. SIGTERM (a preemption) or SIGINT checkpoints the current step
and stops the run (:mod:`seqjax.training.preemption`).
"""

import collections
import math
import os
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from tqdm import tqdm

from seqjax.errors import TrainingDivergedError
from seqjax.training.checkpoints import RunCheckpoints
from seqjax.training.config_checks import check_mesh
from seqjax.training.language_modeling import LanguageModeling
from seqjax.training.metrics_log import MetricsLog, read_metrics
from seqjax.training.optimizer import make_optimizer
from seqjax.training.preemption import Preempted, PreemptionSignal
from seqjax.training.sequence_tasks import SequenceTask
from seqjax.training.sharding import (
    DEFAULT_MESH, batch_shards, global_batch, host_value, make_mesh, process_rows, replicated,
    state_shardings,
)
from seqjax.training.step import init_train_state, train_step
from seqjax.training.timing import PhaseClock
from seqjax.training.workdir import check_run_identity, claim_workdir, disk_full_as_message


# How many dispatched steps may be unfinished after the host dispatches one (so MAX + 1 while it
# dispatches the next). XLA's CPU client runs at most 32 programs per device at once; with
# several CPU devices (JAX_NUM_CPU_DEVICES) a host further ahead than that stalls their
# all-reduces until XLA aborts the process (docs/training.md). A device needs one queued step
# to stay busy.
MAX_STEPS_AHEAD = 16


def wait_for_steps_ahead(pending, step_output, limit=MAX_STEPS_AHEAD):
    """Record a dispatched step's ``step_output`` in ``pending`` (a deque), then wait until at
    most ``limit`` recorded steps are unfinished, the oldest first."""
    pending.append(step_output)
    while len(pending) > limit:
        pending.popleft().block_until_ready()


def training_task_type(config):
    """:class:`LanguageModeling` unless ``config.task`` names a generated task."""
    if config.get("task", "language_modeling") == "language_modeling":
        return LanguageModeling
    return SequenceTask


def is_due(done, every, num_steps):
    """Whether step ``done`` logs/evaluates/checkpoints: every ``every`` steps and at the end."""
    return done % every == 0 or done == num_steps


def start_state(training, optimizer, config, mesh):
    """``(state, shardings)``: the fresh state of ``config.seed``, laid out on ``mesh``."""
    def init():
        params = training.init_params(jax.random.PRNGKey(config.seed))
        return init_train_state(params, optimizer, training.initial_carry(config.batch_size))

    min_size = config.get("mesh", DEFAULT_MESH).get("fsdp_min_size", DEFAULT_MESH["fsdp_min_size"])
    shardings = state_shardings(jax.eval_shape(init), mesh, min_size)
    initialize = jax.jit(init, out_shardings=shardings).lower().compile(init_compiler_options())
    return initialize(), shardings


def init_compiler_options():
    """XLA's options for the state's initialization, a program that runs once per run.

    On the CPU, XLA's backend optimization level 1 compiles it in about two thirds of the
    default's time (``nanogpt_cpu.py`` on a Zen 4: 1.35 against 2.1 s) and gave the same bits
    for every model kind there (``tests/test_train.py`` checks one on each machine). A level
    asked for (``JAX_DISABLE_MOST_OPTIMIZATIONS``, or ``XLA_FLAGS``) stays.
    """
    asked = jax.config.read("jax_disable_most_optimizations") or (
        "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", ""))
    if jax.default_backend() != "cpu" or asked:
        return None
    return {"xla_backend_optimization_level": 1}


def check_not_diverged(diverged_at, checkpoint_dir):
    step = int(host_value(diverged_at))
    if step:
        raise TrainingDivergedError(
            f"training diverged at step {step} (a non-finite loss or parameters); the last good "
            f"checkpoint in {checkpoint_dir} is intact. Lower --config.optim.learning_rate, then "
            "rerun to resume"
        )


def train_and_evaluate(config, workdir):
    """Train ``config`` in ``workdir`` (resuming if it holds a checkpoint); returns the last record."""
    clock = PhaseClock()
    task_type = training_task_type(config)
    task_type.check_config(config)
    mesh = make_mesh(config.get("mesh", DEFAULT_MESH))
    check_mesh(config, batch_shards(mesh))
    writes = jax.process_index() == 0  # process 0 writes config, tokenizer, metrics, timing
    with claim_workdir(workdir, lock=writes) as workdir, \
            RunCheckpoints(workdir / "checkpoints", writer=True) as checkpoints:
        resuming = checkpoints.has_run()
        check_run_identity(config, workdir, task_type.identity_keys, resuming=resuming, write=writes)
        if writes and not resuming:  # a tokenizer left by an attempt that never checkpointed
            (workdir / "tokenizer.json").unlink(missing_ok=True)
        training = task_type(config, workdir, mesh) if writes else None
        if jax.process_count() > 1:  # the others read the tokenizer process 0 wrote
            multihost_utils.sync_global_devices("workdir ready")
        training = training or task_type(config, workdir, mesh)
        optimizer, schedule = make_optimizer(config.optim, config.num_steps)
        state, shardings = start_state(training, optimizer, config, mesh)
        best_val_loss, restored = math.inf, checkpoints.restore_latest(state)
        if restored is not None:
            state, record = restored
            best_val_loss = record["best_val_loss"]
        step_fn = jax.jit(partial(train_step, training.loss, optimizer, config.seed),
                          donate_argnums=0, out_shardings=(shardings, replicated(mesh), replicated(mesh)))
        loop = TrainingLoop(config, workdir, training, mesh, checkpoints, schedule, best_val_loss,
                            clock, writes)
        return loop.run(step_fn, state)


class TrainingLoop:
    """The steps of one run from its current state to ``config.num_steps``."""

    def __init__(self, config, workdir, training, mesh, checkpoints, schedule, best_val_loss,
                 clock, writes):
        self.config, self.workdir, self.training, self.mesh = config, Path(workdir), training, mesh
        self.checkpoints, self.schedule, self.best_val_loss = checkpoints, schedule, best_val_loss
        self.clock, self.writes = clock, writes  # process 0 writes metrics and timing

    def run(self, step_fn, state):
        config, start = self.config, int(host_value(state.step))
        with disk_full_as_message(self.workdir, "metrics.jsonl"):
            self.metrics = MetricsLog(self.workdir, resume_step=start, enabled=self.writes)
        rows = process_rows(self.mesh, config.batch_size)
        batches = (global_batch(self.mesh, self.training.training_batch(step, rows), config.batch_size)
                   for step in range(start, config.num_steps))
        diverged_at = jax.jit(lambda: jnp.zeros((), jnp.int32), out_shardings=replicated(self.mesh))()
        progress = tqdm(total=config.num_steps, initial=start, desc=config.get("task", "train"),
                        disable=not (config.progress_bar and self.writes))
        self.clock.all_so_far_is("setup")
        record, pending = {}, collections.deque()
        try:
            with PreemptionSignal() as preemption:
                for step, batch in zip(range(start, config.num_steps), batches):
                    if step == start:
                        with self.clock.phase("compile"):
                            step_fn = step_fn.lower(state, diverged_at, batch).compile()
                    state, loss, diverged_at = step_fn(state, diverged_at, batch)
                    wait_for_steps_ahead(pending, loss)
                    progress.update(1)
                    record = self.after_step(step + 1, state, loss, diverged_at, progress)
                    if preemption.stop_now(step + 1):
                        self.stop_preempted(step + 1, state, diverged_at, preemption)
        finally:  # TensorBoard's buffered events too
            progress.close()
            self.metrics.close()
        if self.writes:
            self.clock.write(self.workdir, config.num_steps - start)
        return record or (read_metrics(self.workdir) or [{}])[-1]  # a finished run: its last record

    saved_at = None  # the step of the latest checkpoint this loop wrote

    def save_latest(self, done, state):
        record_of_run = {"step": done, "best_val_loss": self.best_val_loss}
        with disk_full_as_message(self.workdir, "the latest checkpoint"), \
                self.clock.phase("checkpoints"):
            self.checkpoints.save_latest(done, state, record_of_run)
        self.saved_at = done

    def stop_preempted(self, done, state, diverged_at, preemption):
        """Checkpoint step ``done`` (unless it just was) and raise :class:`Preempted`."""
        check_not_diverged(diverged_at, self.checkpoints.directory)  # never save a bad state
        if self.saved_at != done:
            self.save_latest(done, state)
        raise Preempted(f"stopped by {preemption.name()} after step {done}; its checkpoint is "
                        f"saved in {self.checkpoints.directory}: rerun the same command to "
                        "resume", preemption.received)

    def after_step(self, done, state, loss, diverged_at, progress):
        """Log, evaluate and checkpoint when due (the only points the host reads the loss)."""
        config = self.config
        due_log, due_eval, due_checkpoint = (
            is_due(done, every, config.num_steps)
            for every in (config.log_every, config.eval_every, config.checkpoint_every)
        )
        if not (due_log or due_eval or due_checkpoint):
            return {}
        check_not_diverged(diverged_at, self.checkpoints.directory)  # waits for the steps
        record = {}
        if due_log:
            loss = float(host_value(loss))
            record = {"step": done, **self.training.train_metrics(loss),
                      "learning_rate": float(self.schedule(done - 1))}
            progress.set_postfix(loss=f"{loss:.3f}")
        if due_eval:
            with self.clock.phase("evaluation"):
                record.update(step=done, **self.training.evaluate(state.params, self.mesh))
            if record["val_loss"] < self.best_val_loss:
                self.best_val_loss = record["val_loss"]
                with disk_full_as_message(self.workdir, "the best checkpoint"), \
                        self.clock.phase("checkpoints"):
                    self.checkpoints.save_best(done, state.params, record)
        if record:
            with disk_full_as_message(self.workdir, "metrics.jsonl"):
                self.metrics.write(record)
        if due_checkpoint:
            self.save_latest(done, state)
        return record
