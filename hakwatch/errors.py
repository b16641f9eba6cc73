"""The one exception type a user ever sees, and the decorator that turns it into one line on stderr."""

import functools
import os
import sys

import click


class HakwatchError(Exception):
    """A user-facing failure (bad input, missing privilege or kernel feature). `status` is the exit
    status the CLI ends with: 1 for failures, 2 for usage errors (click's convention)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def friendly(fn):
    """For click commands: a HakwatchError ends as `hakwatch: <message>` and its status; Ctrl-C quietly.
    An OSError nobody turned into a sentence still ends in one line naming the file; anything else is
    a bug, reported in one line too (HAKWATCH_DEBUG=1 lets the traceback through)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HakwatchError as e:
            click.echo(f"hakwatch: {e}", err=True)
            sys.exit(e.status)
        except KeyboardInterrupt:
            sys.exit(130)
        except BrokenPipeError:  # `hakwatch probes ... | head`: the reader has all it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            sys.exit(141)
        except OSError as e:
            where = f": {e.filename}" if e.filename else ""
            click.echo(f"hakwatch: {e.strerror or e}{where}", err=True)
            sys.exit(1)
        except Exception as e:
            if os.environ.get("HAKWATCH_DEBUG"):
                raise
            click.echo(f"hakwatch: internal error ({type(e).__name__}: {e}); please report it "
                       "(HAKWATCH_DEBUG=1 shows where)", err=True)
            sys.exit(70)
    return wrapper
