"""The one exception type a user ever sees, and the decorator that turns it into one line on stderr."""

import functools
import sys

import click


class HakwatchError(Exception):
    """A user-facing failure (bad input, missing privilege or kernel feature). `status` is the exit
    status the CLI ends with: 1 for failures, 2 for usage errors (click's convention)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def friendly(fn):
    """For click commands: a HakwatchError ends as `hakwatch: <message>` and its status; Ctrl-C quietly."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HakwatchError as e:
            click.echo(f"hakwatch: {e}", err=True)
            sys.exit(e.status)
        except KeyboardInterrupt:
            sys.exit(130)
    return wrapper
