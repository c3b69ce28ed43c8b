"""Errors a user can act on. The command-line tools print their message as one line on stderr
and exit with status 1, with no traceback; every message names the fix."""


class SeqjaxError(Exception):
    """Base class of the errors caused by the user's input rather than by a bug."""


class ConfigError(SeqjaxError, ValueError):
    """A config value is missing, of the wrong type or out of range."""


class CheckpointMismatchError(SeqjaxError, ValueError):
    """A workdir holds a run that does not match the config (or is no run at all)."""


class TrainingDivergedError(SeqjaxError, FloatingPointError):
    """The training loss became non-finite; the last good checkpoint is left as it was."""


class UnreadableCheckpointError(SeqjaxError, ValueError):
    """A checkpoint's files are damaged or incomplete."""


class WorkdirError(SeqjaxError, OSError):
    """The workdir cannot hold this run: a file, in use by another run, or out of space."""
