"""Shared exit path of the command-line tools: user errors become one line on stderr, exit 1."""

import sys
from contextlib import contextmanager

from seqjax.errors import SeqjaxError


@contextmanager
def user_errors_as_messages(program):
    """Turn a :class:`seqjax.errors.SeqjaxError` into ``program: error: MESSAGE`` and exit 1."""
    try:
        yield
    except SeqjaxError as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        sys.exit(1)
