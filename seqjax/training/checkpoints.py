"""Checkpoints of a training run with orbax-checkpoint: the latest state and the best params.

Layout under ``WORKDIR/checkpoints``: ``latest/STEP`` holds the whole train state (params,
optimizer state, recurrent carry) plus a JSON record (step, best validation loss), so that a
rerun resumes exactly; the last two are kept. ``best/STEP`` holds the params with the lowest
validation loss, which sampling loads. Saves are synchronous and atomic (orbax writes to a
temporary folder and renames it), so a run killed at any point leaves the previous checkpoint
intact. A checkpoint whose files are damaged (cut short, overwritten with junk, emptied or
deleted) is moved to ``checkpoints/unreadable/`` with a warning, and the run resumes from the one
before it; a reader (sampling) stops with one line naming the fix. What counts as damage is
decided from the types of the whole exception chain (:func:`read_failure`), never from the top
message alone; any other failure to read (out of memory, a failing disk or network file system)
is raised as it is, so that a good checkpoint is never set aside.

Arrays are restored onto the shardings of the target state's arrays, so a run written on one
mesh (N devices, P processes) resumes on another.
"""

import errno
import gc
import inspect
import json
import logging
import os
import re
import shutil
import sys
import traceback
import warnings
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from seqjax.errors import CheckpointMismatchError, UnreadableCheckpointError

UNFINISHED_SAVE = ".orbax-checkpoint-tmp"  # orbax saves to STEP + this, then renames it
# tensorstore's Python binding raises ValueError for every absl::Status and keeps the status
# only in the message: the code as its prefix, the payloads as suffixes ("[os_error_code='5']")
# (python/tensorstore/status.cc). The prefix is dropped for INVALID_ARGUMENT and UNIMPLEMENTED,
# whose exception types imply them.
STATUS_CODES = ("CANCELLED", "UNKNOWN", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                "OUT_OF_RANGE", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
TENSORSTORE_STATUS = re.compile(rf"^({'|'.join(STATUS_CODES)}): ")
OS_ERROR_CODE = re.compile(r"\[os_error_code='(\d+)'\]")
# Bytes that are not what the checkpoint's index says: a file cut short or emptied
# (OUT_OF_RANGE; DATA_LOSS for a manifest), overwritten (DATA_LOSS, or FAILED_PRECONDITION from
# the decompressor), deleted (NOT_FOUND, or FAILED_PRECONDITION: a data file read as empty).
# With an OS error code, only ENOENT (deleted) is damage: any other is the disk or the file
# system failing (EIO is UNKNOWN, ESTALE ABORTED, ENOTCONN FAILED_PRECONDITION).
DAMAGE_CODES = ("DATA_LOSS", "OUT_OF_RANGE", "NOT_FOUND", "FAILED_PRECONDITION")
DAMAGE, OUTAGE = "damage", "outage"


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


def _chain(error):
    """``error`` and every exception behind it: its ``__cause__`` and ``__context__`` chains
    and the members of exception groups, each once."""
    seen, pending = set(), [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        pending.extend((current.__cause__, current.__context__))


def _kind_of_one(error):
    """:data:`DAMAGE`, :data:`OUTAGE` or ``None`` (says nothing, e.g. orbax's bare
    ``Exception`` that wraps tensorstore's) for one exception, by its type."""
    if isinstance(error, (json.JSONDecodeError, UnicodeDecodeError, FileNotFoundError)):
        return DAMAGE  # a JSON file cut short, emptied or junk; a file deleted
    if isinstance(error, (MemoryError, OSError)):
        return OUTAGE  # out of memory; EIO, ESTALE, EACCES...: the system, not the bytes
    status = TENSORSTORE_STATUS.match(str(error)) if type(error) is ValueError else None
    if status is None:
        return None
    os_error = OS_ERROR_CODE.search(str(error))
    if os_error is not None and int(os_error.group(1)) != errno.ENOENT:
        return OUTAGE
    return DAMAGE if status.group(1) in DAMAGE_CODES else OUTAGE


def read_failure(error):
    """Why reading a checkpoint failed: :data:`DAMAGE` (its files are cut short, junk, empty or
    missing), :data:`OUTAGE` (the system failed: out of memory, an I/O error, a network file
    system gone) or ``None`` (neither: a bug or a mismatch, raised as it is).

    Every exception of the chain (causes, contexts, exception groups) is classified by its type
    (tensorstore's by its status code, the only form in which it exposes one); one outage
    anywhere makes the whole failure an outage, so that a good checkpoint is never set aside.
    """
    kinds = {_kind_of_one(cause) for cause in _chain(error)}
    return OUTAGE if OUTAGE in kinds else DAMAGE if DAMAGE in kinds else None


def _is_damage(error):
    return read_failure(error) == DAMAGE


ORBAX_SOURCE = str(Path(ocp.__file__).parent) + os.sep  # where orbax's read coroutines live


class _SiblingReadFailures(logging.Filter):
    """Drops asyncio's "Task (or Future) exception was never retrieved" for orbax's parallel
    reads of a damaged checkpoint: the first failure is reported (one warning or one error
    line), and the other arrays' reads of the same damaged files fail the same way, later, when
    their tasks and futures are garbage-collected. A task's record names its coroutine's file,
    which must be orbax's; any other asyncio error is logged as usual."""

    TASK, FUTURE = "Task exception was never retrieved", "Future exception was never retrieved"

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        if error is None or not _is_damage(error):
            return True
        message = record.getMessage()
        if message.startswith(self.TASK):
            return ORBAX_SOURCE not in message
        return not message.startswith(self.FUTURE)


_SIBLING_READ_FAILURES = _SiblingReadFailures()


class _AbandonedSiblingReads:
    """A ``sys.unraisablehook`` that drops the echoes of orbax's abandoned reads.

    orbax reads every array at once; when one read fails, the restore raises and the other reads
    are abandoned. Python reports what ends them whenever it happens, in orbax's and
    tensorstore's threads, even before the restore's error reaches :func:`_restore`:
    - each read coroutine turns whatever ends it (the damage itself or, for a read still
      pending, the ``GeneratorExit`` that closes it) into an ``Exception`` raised from it;
    - tensorstore, completing a read, posts its result to orbax's event loop, which is already
      closed (``RuntimeError("Event loop is closed")`` from ``call_soon_threadsafe``).

    The failure itself is reported by the restore's caller, so these are dropped; anything else
    goes on to ``hook``."""

    def __init__(self, hook):
        self.hook = hook

    def __call__(self, unraisable):
        if not (self.read_coroutine_failed(unraisable) or self.loop_closed(unraisable)):
            self.hook(unraisable)

    @staticmethod
    def read_coroutine_failed(unraisable):
        coroutine, error = unraisable.object, unraisable.exc_value
        return (inspect.iscoroutine(coroutine) and error is not None
                and coroutine.cr_code.co_filename.startswith(ORBAX_SOURCE))

    @staticmethod
    def loop_closed(unraisable):
        error = unraisable.exc_value
        if not (unraisable.object is None and isinstance(error, RuntimeError)
                and str(error) == "Event loop is closed"):
            return False
        frames = traceback.walk_tb(unraisable.exc_traceback)
        return any(frame.f_code.co_name == "call_soon_threadsafe" for frame, _ in frames)


def _quiet_abandoned_reads():
    """Keep the failures of a failed restore's sibling reads out of the log and off stderr,
    whenever their tasks and coroutines are collected: installed before every restore."""
    logging.getLogger("asyncio").addFilter(_SIBLING_READ_FAILURES)  # added once at most
    if not isinstance(sys.unraisablehook, _AbandonedSiblingReads):
        sys.unraisablehook = _AbandonedSiblingReads(sys.unraisablehook)


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _arrays(tree):
    """``{path: (shape, dtype)}`` of a tree's arrays, the path as a tuple of key names."""
    def name(key):  # a dict key, a sequence index or an attribute: what orbax writes
        return str(next((getattr(key, f) for f in ("key", "idx", "name") if hasattr(key, f)), key))

    leaves = jax.tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: hasattr(x, "shape"))
    return {tuple(map(name, path)): (tuple(leaf.shape), str(leaf.dtype)) for path, leaf in leaves}


def _stored_arrays(state_directory):
    """``(arrays, failure)``: the stored arrays (:func:`_arrays`) from the checkpoint's metadata,
    or ``None`` and why the metadata cannot be read (:func:`read_failure`; a missing metadata
    file is damage). Read by orbax's handler itself: its ``Checkpointer.metadata`` hides why."""
    handler = ocp.StandardCheckpointHandler()
    try:
        return _arrays(handler.metadata(state_directory).tree), None
    except Exception as error:  # noqa: BLE001 - classified by the caller
        return None, read_failure(error)
    finally:
        handler.close()


def _fits(stored, target):
    """Whether the stored arrays include every array of ``target`` (path, shape and dtype)."""
    return all(stored.get(path) == layout for path, layout in _arrays(target).items())


def _reason(error):
    """The first line of the first exception in ``error``'s chain that shows damage (else of
    ``error``), without tensorstore's spec payload: what the warning or error line quotes."""
    shown = next((cause for cause in _chain(error) if _kind_of_one(cause) == DAMAGE), error)
    line = (str(shown).splitlines() or [type(shown).__name__])[0]
    return line.split(" [tensorstore_spec")[0][:200]


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
    _quiet_abandoned_reads()
    try:
        return manager.restore(
            step, args=ocp.args.Composite(state=state, record=ocp.args.JsonRestore())
        )
    except Exception as error:  # noqa: BLE001 - orbax and tensorstore raise many kinds
        failure, reason = read_failure(error), _reason(error)
        directory = Path(manager.directory) / str(step)
        if failure == OUTAGE:
            raise  # e.g. out of memory, or a network file system that failed: not the files
        stored, metadata_failure = _stored_arrays(directory / "state")
        if stored is not None and not _fits(stored, abstract):
            raise CheckpointMismatchError(
                f"the {what} checkpoint at step {step} in {manager.directory} does not fit this "
                f"model ({reason}); use a fresh --workdir or the run's own config"
            ) from None
        if DAMAGE not in (failure, metadata_failure) or metadata_failure == OUTAGE:
            raise  # neither damage nor a mismatch (a bug), or the metadata read hit an outage
        if failure != DAMAGE:  # e.g. orbax's guess of the tree without its metadata file
            reason = "the metadata of its arrays is missing or damaged"
        gc.collect()  # the abandoned reads' echoes now, while the hooks drop them
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

    def restore_best(self, target_params, which="best", use_latest="--checkpoint=latest"):
        """``(params, record)`` of the ``best`` checkpoint (lowest validation loss; the latest
        if none was evaluated) or, with ``which="latest"``, of the latest one. A damaged best
        checkpoint is an :class:`UnreadableCheckpointError` whose fix is ``use_latest`` (how the
        caller asks for the latest one)."""
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
            fix = (f"load the latest one instead ({use_latest})" if what == "best"
                   else "rerun the training command, which sets it aside and resumes from the "
                        "one before, or restore the folder from a backup")
            raise UnreadableCheckpointError(f"{error}: {fix}") from None
