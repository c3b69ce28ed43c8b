"""Shared exit paths of the command-line tools: a user's mistake becomes one line on stderr
(``PROGRAM: error: MESSAGE``) and a non-zero exit, never a traceback."""

import re
import sys
from contextlib import contextmanager

from absl import flags

from seqjax.errors import SeqjaxError


def _fail(program, message, status=1):
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(status)


def _unknown_config_key_message(argv, error):
    while error.args and isinstance(error.args[0], Exception):  # AttributeError(KeyError(...))
        error = error.args[0]
    key, _, suggestion = str(error.args[0] if error.args else error).strip("\"").partition("\n")
    key = key.strip("'")
    overrides = [a for a in argv if re.match(rf"--config\.(\S*\.)?{re.escape(key)}(=|$)", a)]
    where = f" (from {overrides[0]})" if overrides else ""
    hint = suggestion.strip() or "check its spelling against the config file"
    return f"the config has no key {key!r}{where}: {hint}"


def flags_parser(program):
    """An ``app.run(..., flags_parser=...)`` that reports bad flags and configs in one line."""
    def parse(argv):
        try:
            remaining = flags.FLAGS(argv)
            if "config" in flags.FLAGS and flags.FLAGS["config"].present:
                flags.FLAGS.config.keys()  # loads the file now, so a bad path fails here
            return remaining
        except flags.Error as error:
            _fail(program, f"{error} (see --helpshort)", status=2)
        except (AttributeError, KeyError) as error:
            _fail(program, _unknown_config_key_message(argv, error), status=2)
        except OSError as error:
            _fail(program, f"cannot load the config: {' '.join(str(error).split())}", status=2)

    return parse


@contextmanager
def user_errors_as_messages(program):
    """Turn a :class:`seqjax.errors.SeqjaxError` into ``program: error: MESSAGE`` and exit 1."""
    try:
        yield
    except SeqjaxError as error:  # a preempted run exits 143, as SIGTERM would have ended it
        _fail(program, str(error), getattr(error, "exit_status", 1))
