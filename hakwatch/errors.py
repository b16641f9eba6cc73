"""The one exception type a user ever sees: a one-line message, printed as `hakwatch: <message>`."""


class HakwatchError(Exception):
    """A user-facing failure (bad input, missing privilege or kernel feature). `status` is the exit
    status the CLI ends with: 1 for failures, 2 for usage errors (click's convention)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status
