"""Byte accounting through hakwatch, real BPF: a process attached after it allocated shows its exact
memory at the first scrape (its totals are read from its memory at attach) and hakwatch's totals
equal its HAKMEM_STATS at exit; the layers add up to the mapped bytes at every scrape of a busy
multi-threaded process; the kernel's RSS is exported beside the allocator's estimate."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hakwatch_helpers import scrape, wait_for
from test_attach import samples, total

ALLOCATOR_TESTS = Path(__file__).resolve().parents[1] / "allocator"
sys.path.insert(0, str(ALLOCATOR_TESTS))
from live_set import LIVE_PER_UNIT, REQUESTED_PER_UNIT  # noqa: E402  (the allocator suite's set)

UNITS = 4


@pytest.fixture(scope="module")
def alloc_live(c_program):
    return c_program(ALLOCATOR_TESTS / "programs" / "alloc_live.c", "-fno-builtin")


def by_label(text, name, label, pid):
    return {dict(k)[label]: v for k, v in samples(text, name, pid=pid).items()}


def view(text, pid):
    """What a scrape says of one process, keyed like HAKMEM_STATS."""
    return {
        "allocs": {k: int(v) for k, v in by_label(text, "hakmem_allocs_total", "class", pid).items()},
        "frees": {k: int(v) for k, v in by_label(text, "hakmem_frees_total", "route", pid).items()},
        "live_bytes": {k: int(v) for k, v in by_label(text, "hakmem_live_bytes", "class", pid).items()},
        "layers": {k: int(v) for k, v in by_label(text, "hakmem_memory_bytes", "layer", pid).items()},
        "mapped": int(total(text, "hakmem_mapped_bytes", pid=pid)),
        "resident_estimate": int(total(text, "hakmem_resident_estimate_bytes", pid=pid)),
        "requested": int(total(text, "hakmem_requested_bytes_total", pid=pid)),
        "allocated": int(total(text, "hakmem_allocated_bytes_total", pid=pid)),
        "superslab_events": {k: int(v) for k, v in by_label(text, "hakmem_superslab_events_total", "event", pid).items()},
    }


def stats_view(s):
    return {
        "allocs": s["allocs"], "frees": s["frees"], "live_bytes": s["live_bytes"],
        "layers": s["memory"]["layers"], "mapped": s["memory"]["mapped"],
        "resident_estimate": s["memory"]["resident_estimate"], "requested": s["bytes"]["requested"],
        "allocated": s["bytes"]["allocated"], "superslab_events": s["superslab_events"],
    }


def test_late_attach_is_exact_from_the_first_scrape_and_at_exit(hakwatch, libhakmem, alloc_live, tmp_path):
    stats = tmp_path / "own.json"
    proc = subprocess.Popen([alloc_live, "hold", str(UNITS), "wait", "thread"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, LD_PRELOAD=str(libhakmem), HAKMEM_STATS=str(stats)))
    try:
        assert proc.stdout.readline() == "ready\n"
        h = hakwatch("attach", "--pid", str(proc.pid), "--retention", "300")
        pid = str(proc.pid)
        first = view(wait_for(lambda: (t := scrape(h.url)) and f'pid="{pid}"' in t and t, what="the first scrape"), pid)
        for cls, n in LIVE_PER_UNIT.items():
            assert first["live_bytes"].get(cls, 0) >= UNITS * n, f"class {cls}: {first['live_bytes']}"
        assert first["requested"] >= UNITS * REQUESTED_PER_UNIT
        proc.communicate("go\n", timeout=60)
        assert proc.returncode == 0
        last = view(wait_for(lambda: (t := scrape(h.url)) and 'hakwatch_targets 1' in t and t, what="the final values"), pid)
    finally:
        proc.kill()
    own = stats_view(json.loads(stats.read_text()))
    assert last == own, "hakwatch's totals at exit differ from the process's own HAKMEM_STATS"
    assert first == own, "the process did nothing after 'ready': the first scrape must already be exact"


def test_layers_add_up_at_every_scrape_of_a_busy_process(hakwatch, libhakmem, programs, tmp_path):
    stats = tmp_path / "own.json"
    # 2,000 rounds: seconds of work (60 rounds, 0.1 s since large blocks reuse free runs, left room for
    # only 3 scrapes in one CI run)
    h = hakwatch("run", "--summary", str(tmp_path / "seen.json"), "--", str(programs["churn_threads"]), "2000", "4",
                 "3000", env=dict(os.environ, HAKMEM_STATS=str(stats)))
    h.ready()
    checked = 0
    while h.proc.poll() is None and checked < 60:
        text = scrape(h.url)
        if not text:
            continue
        for labels in samples(text, "hakmem_mapped_bytes"):
            pid = dict(labels)["pid"]
            v = view(text, pid)
            assert sum(v["layers"].values()) == v["mapped"], f"scrape {checked}: {v['layers']} vs mapped {v['mapped']}"
            checked += 1
    assert checked >= 5, f"only {checked} scrapes while the workload ran"
    assert h.proc.wait(120) == 0
    assert json.loads((tmp_path / "seen.json").read_text()) == json.loads(stats.read_text())


def test_the_kernels_rss_is_exported_beside_the_estimate(hakwatch, libhakmem, alloc_live):
    proc = subprocess.Popen([alloc_live, "hold", "8", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, LD_PRELOAD=str(libhakmem)))
    try:
        assert proc.stdout.readline() == "ready\n"
        h = hakwatch("attach", "--pid", str(proc.pid), "--user", "nobody")
        pid = str(proc.pid)
        text = wait_for(lambda: (t := scrape(h.url)) and "hakmem_process_resident_bytes" in t and t, what="RSS series")
        rss = by_label(text, "hakmem_process_resident_bytes", "kind", pid)
        assert set(rss) == {"anon", "file", "shmem"}
        estimate = total(text, "hakmem_resident_estimate_bytes", pid=pid)
        # the allocator's memory is anonymous: the kernel's anon RSS holds it (and the program's stack, libc's own)
        assert estimate > 16 << 20 and rss["anon"] >= 0.95 * estimate, (rss, estimate)
        assert rss["file"] > 0  # the program and its libraries
        proc.communicate("go\n", timeout=60)
    finally:
        proc.kill()
