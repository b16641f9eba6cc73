"""Exact totals: what hakwatch adds up in BPF equals the allocator's own HAKMEM_STATS, number for
number, for a multi-threaded program with cross-thread frees, thread exits and large blocks, and for
heap misuse (counted even when the process aborts on it)."""

import json
import os
import signal
import subprocess
from pathlib import Path

from hakwatch_helpers import HAKWATCH, free_port


def run_summary(tmp_path, cmd, env=None):
    own, seen = tmp_path / "own.json", tmp_path / "seen.json"
    env = dict(os.environ, HAKMEM_STATS=str(own), **(env or {}))
    res = subprocess.run(HAKWATCH + ["run", "--listen", f"127.0.0.1:{free_port()}", "--summary", str(seen), "--", *cmd],
                         env=env, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    return json.loads(own.read_text()), json.loads(seen.read_text()), res


def test_run_summary_equals_hakmem_stats(tmp_path, programs):
    own, seen, res = run_summary(tmp_path, [str(programs["churn_threads"]), "20", "4", "3000"])
    assert "churn done" in res.stdout
    assert own["frees"]["ss_remote"] > 0, "the workload should free across threads"
    assert own == seen


def test_exec_starts_the_counts_over(tmp_path, programs):
    """`run -- sh -c 'exec prog'`: the shell's allocator and the program's are two images of one pid;
    the totals are the program's, like its HAKMEM_STATS."""
    own, seen, _ = run_summary(tmp_path, ["/bin/sh", "-c", f"exec {programs['churn_threads']} 2 2 500"])
    assert own == seen


def test_exit_status_is_the_commands(tmp_path):
    res = subprocess.run(HAKWATCH + ["run", "--listen", f"127.0.0.1:{free_port()}", "--", "/bin/sh", "-c", "exit 7"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 7, res.stderr


def misuse_program(c_program):
    return c_program(Path(__file__).resolve().parents[1] / "allocator" / "programs" / "misuse.c", "-fno-builtin")


def test_heap_errors_counted_as_the_allocator_counts_them(tmp_path, c_program):
    """Misuse reported and gone on from (HAKMEM_HEAP_ERRORS=report): hakwatch's heap_errors, like every
    other count, equal the program's own HAKMEM_STATS."""
    misuse = misuse_program(c_program)
    for kind, counter in (("double_free_remote", "double_free"), ("interior", "invalid_pointer"),
                          ("overflow_slab", "corrupt_free_list")):
        own, seen, _ = run_summary(tmp_path, [str(misuse), kind], env={"HAKMEM_HEAP_ERRORS": "report"})
        assert own == seen
        assert seen["heap_errors"] == {k: int(k == counter) for k in seen["heap_errors"]}, (kind, seen["heap_errors"])


def test_a_heap_error_is_counted_before_the_abort(tmp_path, c_program):
    """By default the process aborts on the error: the count was flushed first, so hakwatch has it."""
    seen = tmp_path / "seen.json"
    res = subprocess.run(HAKWATCH + ["run", "--listen", f"127.0.0.1:{free_port()}", "--summary", str(seen), "--",
                                     str(misuse_program(c_program)), "double_free_cache"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 128 + signal.SIGABRT and "double free" in res.stderr, res.stderr
    assert json.loads(seen.read_text())["heap_errors"]["double_free"] == 1
