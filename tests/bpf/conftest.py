"""Fixtures of the BPF suite: it loads real BPF programs, so it needs root and a working bcc (the
README's set-up gives both); without them every test skips saying why (a failure in CI)."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HAKWATCH = [str(Path(sys.executable).parent / "hakwatch")]
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except OSError:
        return None


def wait_for(cond, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Hakwatch:
    """A hakwatch process in the background, serving on a free port; stopped at the end of the test."""

    def __init__(self, args, **popen):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.proc = subprocess.Popen(HAKWATCH + args[:1] + ["--listen", f"127.0.0.1:{self.port}"] + args[1:],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)

    def ready(self, timeout=30.0) -> str:
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"hakwatch exited {self.proc.returncode}: {self.proc.stderr.read()}")
            return scrape(self.url)
        return wait_for(up, timeout, "hakwatch to serve /metrics")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


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
    return {p.stem: c_program(p) for p in PROGRAMS.glob("*.c")}
