"""Helpers the BPF and end-to-end suites share: starting hakwatch on a free port, scraping it,
waiting for a condition with a deadline (never a blind sleep), starting the known-syscalls program."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HAKWATCH = [str(Path(sys.executable).parent / "hakwatch")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> str | None:
    """One try: the page, or None when nothing answered (not listening yet, or too slow). An HTTP error
    is an answer: it raises."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()
    except urllib.error.HTTPError:
        raise
    except OSError:
        return None


def scrape(url: str, timeout=30.0, what=None) -> str:
    """The page, asked for again until it comes: a scrape is slow while hakwatch attaches to a new
    process, and a test needs the page, not None."""
    return wait_for(lambda: fetch(url), timeout, what or f"a scrape of {url}")


def start_known_syscalls(program, libhakmem) -> subprocess.Popen:
    """tests/bpf/programs/known_syscalls.c under libhakmem, once it says it is ready: it then makes its
    known syscalls on "go" and exits on "end" (lines on its stdin)."""
    proc = subprocess.Popen([program], env=dict(os.environ, LD_PRELOAD=str(libhakmem)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


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
            return fetch(self.url)
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


