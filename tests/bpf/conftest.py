"""Fixtures of the BPF suite: it loads real BPF programs, so it needs root and a working bcc (the
README's set-up gives both); without them every test skips saying why (a failure in CI)."""

import os
from pathlib import Path

import pytest

from hakwatch_helpers import Hakwatch

PROGRAMS = Path(__file__).parent / "programs"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the BPF suite needs root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc is not importable (python3-bpfcc, venv with --system-site-packages)"
    return None


def pytest_collection_modifyitems(config, items):
    why = _why_not()
    if why:
        for item in items:
            if "tests/bpf" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture
def hakwatch():
    started = []

    def start(*args, **popen):
        h = Hakwatch(list(args), **popen)
        started.append(h)
        return h
    yield start
    for h in started:
        h.stop()


@pytest.fixture(scope="session")
def programs(c_program):
    """Built with frame pointers, as profiles' stacks need (hakwatch profile)."""
    return {p.stem: c_program(p, "-fno-omit-frame-pointer") for p in PROGRAMS.glob("*.c")}
