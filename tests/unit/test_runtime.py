"""Which Python processes hide their small objects from libhakmem (hakwatch/read/runtime.py): the
interpreter's own options decide whether PYTHONMALLOC is read at all."""

import pytest

from hakwatch.read.runtime import _ignores_environment


@pytest.mark.parametrize("argv,ignores", [
    ([b"python3", b"-E", b"app.py"], True),
    ([b"python3", b"-IE"], True),
    ([b"python3", b"-Ic", b"code"], True),
    ([b"python3", b"-X", b"dev", b"-E", b"app.py"], True),   # -X takes the next argument
    ([b"python3", b"-Xdev", b"-I", b"app.py"], True),         # or the rest of its own
    ([b"python3", b"app.py", b"-E"], False),                  # the script's arguments, not the interpreter's
    ([b"python3", b"-c", b"code", b"-E"], False),
    ([b"python3", b"-u", b"-m", b"module", b"-I"], False),
    ([b"python3", b"-W", b"error", b"app.py"], False),
    ([b"python3", b"-"], False),
    ([b"python3", b""], False),
])
def test_options_that_make_python_ignore_pythonmalloc(argv, ignores):
    assert _ignores_environment(argv) is ignores
