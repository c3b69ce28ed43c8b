"""The run directory: one run per folder, its config kept, nothing written twice at once.

``claim_workdir`` makes the folder (refusing a path that is a file) and holds an advisory lock
on ``WORKDIR/.lock`` for the run's lifetime, so a second run started on the same workdir stops
with one line instead of interleaving its checkpoints and metrics with the first; the lock
dies with its process, so a killed run never leaves a stale one. ``check_run_identity`` keeps a
resumed run from continuing another config's run. Paths inside the workdir are relative to it,
so a run folder that was copied or moved resumes from its new place.
"""

import contextlib
import errno
import fcntl
import json
import os
import socket
import warnings
from pathlib import Path

from seqjax.attention import DEFAULT_IMPLEMENTATION
from seqjax.errors import CheckpointMismatchError, WorkdirError
from seqjax.precision import DEFAULT_COMPUTE_DTYPE

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


def is_disk_full(error):
    """An ``OSError`` of a full disk or quota, or orbax's (tensorstore's) report of one."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text and ("os_error_code='28'" in text or "No space" in text)


@contextlib.contextmanager
def claim_workdir(workdir, lock=True):
    """Create ``workdir`` and hold its lock (``lock=False``: only create it) while in the block."""
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(f"--workdir {workdir} is a file, not a folder: pass a folder path "
                           "(it is created if missing)")
    workdir.mkdir(parents=True, exist_ok=True)
    if not lock:
        yield workdir
        return
    with open(workdir / ".lock", "a+") as lock_file:
        locked = _lock(lock_file, workdir)
        lock_file.truncate(0)
        lock_file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        lock_file.flush()
        try:
            yield workdir
        finally:
            if locked:
                fcntl.flock(lock_file, fcntl.LOCK_UN)


def _lock(lock_file, workdir):
    """Take the workdir's lock; False (with a warning) on a file system without locks."""
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or "another process"
        raise WorkdirError(f"--workdir {workdir} is in use by another training run ({holder}): "
                           "wait for it to finish, or use another --workdir") from None
    except OSError as error:  # some NFS, Lustre and FUSE mounts have no locks
        if error.errno not in NO_LOCKS:
            raise
        warnings.warn(f"the file system of {workdir} has no file locks: nothing stops a second "
                      "run on this workdir", RuntimeWarning, stacklevel=4)
        return False


@contextlib.contextmanager
def disk_full_as_message(workdir, what):
    """Turn running out of disk space while writing ``what`` into one line naming the fix."""
    try:
        yield
    except (OSError, ValueError) as error:
        if not is_disk_full(error):
            raise
        raise WorkdirError(
            f"no space left on the disk of {workdir} while writing {what}; the last complete "
            "checkpoint is intact: free some space, then rerun the same command to resume"
        ) from None


# Identity keys added after runs were first saved, with the value those runs used: a saved
# config.json without one still matches a config that states the old value.
ADDED_LATER = {"model": {"dtype": DEFAULT_COMPUTE_DTYPE, "attention_impl": DEFAULT_IMPLEMENTATION,
                         "scan": "auto", "block": "none"}}


def _with_later_defaults(section, key):
    if not isinstance(section, dict):
        return section
    return {**ADDED_LATER.get(key, {}), **section}


def check_run_identity(config, workdir, identity_keys, *, resuming=True, write=True):
    """Write ``WORKDIR/config.json`` (if ``write``); when ``resuming`` a checkpointed run, first
    insist the run's identity (the config sections named by ``identity_keys``) matches the saved
    one. A workdir without a checkpoint (e.g. a first attempt that stopped at a missing corpus)
    is reused freely."""
    path = Path(workdir) / "config.json"
    current = json.loads(config.to_json())
    if resuming and path.exists():
        saved = json.loads(path.read_text())
        for key in identity_keys:
            before, now = (_with_later_defaults(c.get(key), key) for c in (saved, current))
            if before != now:
                raise CheckpointMismatchError(
                    f"workdir {workdir} holds a run with "
                    f"{key}={json.dumps(saved.get(key), sort_keys=True)} but the config says "
                    f"{key}={json.dumps(current.get(key), sort_keys=True)}; use a fresh "
                    "--workdir, or the run's own settings to resume it"
                )
    if not write:
        return
    temporary = path.with_suffix(".json.tmp")  # e.g. a longer num_steps; never half-written
    temporary.write_text(json.dumps(current, indent=2, sort_keys=True))
    temporary.replace(path)
