"""Checkpoints of a training run with orbax-checkpoint: the latest state and the best params.

Layout under ``WORKDIR/checkpoints``: ``latest/STEP`` holds the whole train state (params,
optimizer state, recurrent carry) plus a JSON record (step, best validation loss), so that a
rerun resumes exactly; the last two are kept. ``best/STEP`` holds the params with the lowest
validation loss, which sampling loads. Saves are synchronous and atomic (orbax writes to a
temporary folder and renames it), so a run killed at any point leaves the previous checkpoint
intact. A checkpoint that cannot be read (a damaged disk, a file cut short by a copy) is moved
to ``checkpoints/unreadable/`` with a warning, and the run resumes from the one before it.

Arrays are restored onto the shardings of the target state's arrays, so a run written on one
mesh (N devices, P processes) resumes on another.
"""

import gc
import json
import logging
import shutil
import warnings
from collections import Counter
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from seqjax.errors import CheckpointMismatchError, UnreadableCheckpointError

UNFINISHED_SAVE = ".orbax-checkpoint-tmp"  # orbax saves to STEP + this, then renames it
# What tensorstore and orbax say about damaged or missing checkpoint files.
DAMAGE_SIGNS = ("DATA_LOSS", "OUT_OF_RANGE", "NOT_FOUND", "Error reading", "Error opening",
                "was not found in the checkpoint", "Expecting value")


class UnreadableCheckpointWarning(UserWarning):
    """A damaged latest checkpoint was set aside; the run resumes from the one before it."""


def _manager(directory, max_to_keep, writer):
    """A writer creates the folder and first removes the temporary folders of saves cut short
    by a kill (here, not by orbax's own option, whose thread can outlive the process); a reader
    (e.g. sampling while the run trains) touches nothing."""
    if writer and jax.process_index() == 0:
        for unfinished in Path(directory).glob(f"*{UNFINISHED_SAVE}*"):
            shutil.rmtree(unfinished)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False, create=writer,
        save_root_metadata=writer,
    )
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def _is_damage(error):
    """Whether a restore failed on damaged or missing files (not on a mismatch or an outage)."""
    if isinstance(error, (json.JSONDecodeError, FileNotFoundError)):
        return True
    return any(sign in str(error) for sign in DAMAGE_SIGNS)


class _SiblingReadFailures(logging.Filter):
    """Drops asyncio's "Task (or Future) exception was never retrieved" for orbax's parallel
    reads of a damaged checkpoint: the first failure is reported (one warning or one error
    line), and the other arrays' reads of the same damaged files fail the same way, later, when
    their tasks and futures are garbage-collected. Any other asyncio error is logged as usual."""

    UNRETRIEVED = ("Task exception was never retrieved", "Future exception was never retrieved")

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        sibling = record.getMessage().startswith(self.UNRETRIEVED)
        return not (sibling and error is not None and _is_damage(error))


_SIBLING_READ_FAILURES = _SiblingReadFailures()


def _quiet_sibling_read_failures():
    """After a damaged read: keep its sibling reads' failures out of the log (now and when
    their tasks are collected later)."""
    asyncio_log = logging.getLogger("asyncio")
    if _SIBLING_READ_FAILURES not in asyncio_log.filters:
        asyncio_log.addFilter(_SIBLING_READ_FAILURES)
    gc.collect()


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _layout(leaves):
    return Counter((tuple(leaf.shape), str(leaf.dtype)) for leaf in leaves)


def _fits(step_directory, target):
    """Whether the stored arrays include the target's shapes and dtypes (None: unreadable)."""
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            stored = checkpointer.metadata(step_directory / "state").item_metadata.tree
    except Exception:  # noqa: BLE001 - any failure to read the metadata means damaged files
        return None
    stored_leaves = jax.tree.leaves(stored, is_leaf=lambda x: hasattr(x, "shape"))
    return not _layout(jax.tree.leaves(target)) - _layout(stored_leaves)


def _fields(state):
    """A train state as the dict that is saved: its fields, without a ``carry`` of None (so a
    run that carries nothing saves what it did before the carry existed)."""
    fields = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
    return fields if state.carry is None else {**fields, "carry": state.carry}


def _restore(manager, step, target, what, part=False):
    """``Composite(state, record)`` of ``step`` (``part``: only the subtree ``target``); a
    checkpoint of another model is a :class:`CheckpointMismatchError`, damaged files an
    :class:`UnreadableCheckpointError`."""
    abstract = _abstract(target)
    state = ocp.args.StandardRestore(abstract)
    if part:
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
        state = ocp.args.PyTreeRestore(abstract, restore_args=restore_args, partial_restore=True)
    try:
        return manager.restore(
            step, args=ocp.args.Composite(state=state, record=ocp.args.JsonRestore())
        )
    except Exception as error:  # noqa: BLE001 - orbax and tensorstore raise many kinds
        reason = (str(error).splitlines() or [type(error).__name__])[0][:200]
        directory = Path(manager.directory) / str(step)
        if "structure" in reason or _fits(directory, target) is False:
            raise CheckpointMismatchError(
                f"the {what} checkpoint at step {step} in {manager.directory} does not fit this "
                f"model ({reason}); use a fresh --workdir or the run's own config"
            ) from None
        if not _is_damage(error):
            raise  # e.g. out of memory, or a network file system that failed: not the files
        _quiet_sibling_read_failures()
        raise UnreadableCheckpointError(
            f"the {what} checkpoint {directory} cannot be read ({reason})"
        ) from None


class RunCheckpoints:
    """The ``latest`` and ``best`` checkpoints of one run directory; only the run itself is a
    ``writer`` (readers never create, delete or move anything)."""

    def __init__(self, directory, writer=False):
        self.directory, self.writer = Path(directory), writer
        self.latest = _manager(self.directory / "latest", 2, writer)
        self.best = _manager(self.directory / "best", 1, writer)

    def close(self):
        """Stop orbax's background threads (before the process exits)."""
        self.latest.close()
        self.best.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def has_run(self):
        """Whether a latest checkpoint exists (a run to resume, whose config must be kept)."""
        return self.latest.latest_step() is not None

    def save_latest(self, step, state, record):
        self.latest.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(_fields(state)),
                                    record=ocp.args.JsonSave(record)),
        )

    def save_best(self, step, params, record):
        if step in self.best.all_steps():  # recomputed after a resume: same params, keep them
            return
        self.best.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(params), record=ocp.args.JsonSave(record)),
        )

    def _set_aside(self, step):
        """Move the unreadable ``latest/STEP`` to ``unreadable/latest-STEP`` (nothing deleted)."""
        destination = self.directory / "unreadable" / f"latest-{step}"
        copies = 1
        while destination.exists():  # set aside before: keep both
            copies += 1
            destination = destination.with_name(f"latest-{step}-{copies}")
        destination.parent.mkdir(exist_ok=True)
        if jax.process_index() == 0:
            shutil.move(str(self.directory / "latest" / str(step)), str(destination))
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"set aside latest checkpoint {step}")
        self.latest.reload()
        return destination

    def _tidy_after_restore(self, unreadable):
        for step, error in unreadable:
            moved = self._set_aside(step)
            warnings.warn(f"{error}; moved it to {moved} and resuming from the checkpoint before "
                          "it", UnreadableCheckpointWarning, stacklevel=3)
        step = self.latest.latest_step()
        for newer in [s for s in self.best.all_steps() if step is None or s > step]:
            self.best.delete(newer)

    def restore_latest(self, target_state):
        """``(state, record)`` of the newest readable latest checkpoint, or ``None`` if none.

        A writer sets unreadable newer ones aside, each with an
        :class:`UnreadableCheckpointWarning`; when none is readable, nothing is moved and
        :class:`UnreadableCheckpointError` names the fix. A writer also drops best checkpoints
        newer than the restored one (saved by a run killed before its next latest checkpoint;
        all of them when there is none): the run recomputes them.
        """
        steps, unreadable, restored = sorted(self.latest.all_steps(), reverse=True), [], None
        for step in steps:
            try:
                restored = _restore(self.latest, step, _fields(target_state), "latest")
                break
            except UnreadableCheckpointError as error:
                unreadable.append((step, error))
        if unreadable and restored is None:
            raise UnreadableCheckpointError(
                f"{unreadable[0][1]}, and so cannot the {len(steps) - 1} before it: restore "
                f"{self.directory} from a backup, or start over in a fresh --workdir"
            )
        if unreadable and not self.writer:
            raise UnreadableCheckpointError(f"{unreadable[0][1]}: rerun the training command, "
                                            "which sets it aside and resumes from the one before")
        if self.writer:
            self._tidy_after_restore(unreadable)
        if restored is None:
            return None
        return target_state.replace(**restored.state), dict(restored.record)

    def restore_best(self, target_params, which="best"):
        """``(params, record)`` of the ``best`` checkpoint (lowest validation loss; the latest
        if none was evaluated) or, with ``which="latest"``, of the latest one."""
        manager = self.best if which == "best" and self.best.latest_step() is not None else self.latest
        step = manager.latest_step()
        if step is None:
            raise CheckpointMismatchError(
                f"no checkpoint in {self.directory}: train first with "
                "python -m experiments.train --config=... --workdir=..."
            )
        what = "best" if manager is self.best else "latest"
        try:
            if manager is self.latest:
                restored = _restore(manager, step, {"params": target_params}, what, part=True)
                return restored.state["params"], dict(restored.record)
            restored = _restore(manager, step, target_params, what)
            return restored.state, dict(restored.record)
        except UnreadableCheckpointError as error:
            fix = ("load the latest one instead (--checkpoint=latest)" if what == "best"
                   else "retrain, or restore the folder from a backup")
            raise UnreadableCheckpointError(f"{error}: {fix}") from None
