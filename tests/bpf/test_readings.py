"""Readings as of now (DESIGN.md, "Readings"): what threads did since their last flush is in every
scrape, idle thread pools and exited workers included, attached late or under `run`; no layer is ever
negative, the layers add up to the mapped bytes and no counter goes down, at every scrape of a process
whose threads hand blocks to one another; a process that scribbles over its own state gets one line
on hakwatch's stderr and none of its garbage shown."""

import json
import os
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from hakwatch_helpers import fetch, scrape, wait_for

POOL = ("32", "3000", "256")            # threads, blocks each, bytes: a third freed by a neighbour
POOL_LIVE = 32 * (3000 - 3000 // 3) * 256
WORKERS = ("8", "2000", "512")          # threads one after another, blocks each left to main, bytes
WORKERS_LIVE = 8 * 2000 * 512


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(text, name, **labels):
    """The one sample of `name` with these labels (0 when absent, as Prometheus has no series)."""
    found = [s.value for f in text_string_to_metric_families(text) for s in f.samples
             if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else 0


def started(program, libhakmem, args):
    """The program under libhakmem, once it says it is ready (it then waits for its stdin to end)."""
    proc = subprocess.Popen([str(program), *args], env=dict(os.environ, LD_PRELOAD=str(libhakmem)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def watched_both_ways(hakwatch, program, libhakmem, args):
    """The program attached to late, and another copy under `run`: (hakwatch, pid) of each."""
    late = started(program, libhakmem, args)
    attached = hakwatch("attach", "--pid", str(late.pid))
    ran = hakwatch("run", "--", str(program), *args, stdin=subprocess.PIPE)
    assert ran.proc.stdout.readline() == "ready\n"
    wait_for(lambda: ran.ready() and value(scrape(ran.url), "hakwatch_targets") == 1, 30, "run's target")
    attached.ready()
    return [(attached, late.pid, late), (ran, ran.proc.pid, ran.proc)]


def live_of(text, cls):
    return value(text, "hakmem_live_bytes", **{"class": cls})


def test_an_idle_thread_pool_is_exact_at_the_first_scrape_and_a_minute_later(hakwatch, programs, libhakmem):
    """32 threads allocate, free a third of a neighbour's blocks, then wait on a condition variable:
    no flush since, so only what their caches and counters blocks say makes the live bytes."""
    both = watched_both_ways(hakwatch, programs["idle_pool"], libhakmem, POOL)
    try:
        for h, pid, _ in both:
            assert live_of(scrape(h.url), "256") == POOL_LIVE, h.proc.args
        time.sleep(60)
        for h, pid, _ in both:
            text = scrape(h.url)
            assert live_of(text, "256") == POOL_LIVE, h.proc.args
            layers = {s.labels["layer"]: s.value for s in families(text)["hakmem_memory_bytes"].samples}
            assert layers["remote_free"] == 32 * (3000 // 3) * 256  # the neighbours' frees, never drained
    finally:
        for _, _, proc in both:
            proc.stdin.close()
            proc.wait(30)


def test_workers_that_exited_into_an_idle_process_are_exact(hakwatch, programs, libhakmem):
    """8 workers one after another leave their blocks to main and exit; main idles. Under `run` their
    counts wait in the exited batch, which an idle process never flushes: the reading includes it."""
    both = watched_both_ways(hakwatch, programs["finished_workers"], libhakmem, WORKERS)
    try:
        for h, pid, _ in both:
            assert live_of(scrape(h.url), "512") == WORKERS_LIVE, h.proc.args
    finally:
        for _, _, proc in both:
            proc.stdin.close()
            proc.wait(30)


def test_a_process_killed_before_its_exit_flush_keeps_its_last_reading(hakwatch, programs, libhakmem):
    """SIGKILL: the allocator's exit flush never runs, so the BPF map holds only what threads flushed
    before. What the last reading showed stays (counters never go down), not those older counts."""
    proc = started(programs["idle_pool"], libhakmem, POOL)
    h = hakwatch("attach", "--pid", str(proc.pid), "--retention", "300")
    h.ready()
    before = scrape(h.url)
    allocs = value(before, "hakmem_allocs_total", **{"class": "256"})
    assert live_of(before, "256") == POOL_LIVE and allocs >= 32 * 3000
    proc.kill()
    proc.wait(30)  # its exit is in the targets map by then (sched_process_exit)
    after = scrape(h.url)
    assert value(after, "hakmem_allocs_total", **{"class": "256"}) == allocs
    assert live_of(after, "256") == POOL_LIVE


COUNTERS = ("hakmem_allocs_total", "hakmem_frees_total", "hakmem_refills_total", "hakmem_refill_objects_total",
            "hakmem_superslab_events_total", "hakmem_large_events_total", "hakmem_requested_bytes_total",
            "hakmem_allocated_bytes_total")


def test_hand_offs_between_threads_never_show_a_negative_layer(hakwatch, programs, tmp_path):
    """Producers allocate, consumers free (remote frees, drained by the producers), in bursts: at every
    one of 40 scrapes or more, every layer >= 0, the layers add up to mapped, no counter went down;
    and at exit the totals are the allocator's own."""
    own, seen = tmp_path / "own.json", tmp_path / "seen.json"
    h = hakwatch("run", "--summary", str(seen), "--", str(programs["handoff"]), "2", "2", "15",
                 env=dict(os.environ, HAKMEM_STATS=str(own)))
    assert h.proc.stdout.readline() == "ready\n"
    before, scrapes = {}, 0
    while h.proc.poll() is None:
        fam = families(fetch(h.url) or "")  # None once the program and so `run` have ended
        if "hakmem_memory_bytes" not in fam or not fam["hakmem_memory_bytes"].samples:
            continue
        layers = {s.labels["layer"]: s.value for s in fam["hakmem_memory_bytes"].samples}
        assert min(layers.values()) >= 0, layers
        assert sum(layers.values()) == fam["hakmem_mapped_bytes"].samples[0].value, layers
        now = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for name in COUNTERS for s in fam[name.removesuffix("_total")].samples if s.name == name}
        went_down = {k: (before[k], v) for k, v in now.items() if v < before.get(k, 0)}
        assert not went_down
        before.update(now)
        scrapes += 1
        time.sleep(0.2)
    assert h.proc.wait() == 0, h.proc.stderr.read()
    assert scrapes >= 40
    assert json.loads(own.read_text()) == json.loads(seen.read_text())


def test_a_process_that_scribbles_over_its_state_is_not_believed(hakwatch, programs, libhakmem):
    """What a process's memory says is untrusted input: counts that go down or make a layer negative are
    not shown (the last good reading stands), a list of threads that loops ends the reading of that
    process with one line on stderr, and hakwatch goes on serving."""
    proc = started(programs["scribble"], libhakmem, [])
    h = hakwatch("attach", "--pid", str(proc.pid))
    h.ready()

    def tell(command):
        proc.stdin.write(command + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "ok\n"

    def shown():
        text = scrape(h.url)
        layers = {s.labels["layer"]: s.value for s in families(text)["hakmem_memory_bytes"].samples}
        return layers, value(text, "hakmem_allocs_total", **{"class": "64"})

    try:
        good = shown()
        assert good[1] >= 2000  # the two keepers' blocks, unflushed: read from their caches
        for scribble in ("lower", "negative"):
            tell(scribble)
            assert shown() == good, scribble
            tell("restore")
        tell("loop")
        assert shown()[0] == good[0]  # the reading that found the loop is not shown: the last good one is
        tell("restore")
    finally:
        proc.stdin.close()
        proc.wait(30)
    h.stop()
    stderr = h.proc.stderr.read()
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "loops" in line] == [
        f"hakwatch: process {proc.pid}: its list of threads loops or runs past 65536; its allocator state is not "
        "read from its memory any more (counts as of its flushes only)"]


def test_a_python_without_pythonmalloc_is_said_to_hide_its_small_objects(hakwatch, libhakmem):
    """CPython's pymalloc serves objects up to 512 bytes from its own arenas: libhakmem never sees them.
    hakwatch says so once (with the fix) and labels the process; with PYTHONMALLOC=malloc it does not."""
    code = "import sys; print('ready', flush=True); sys.stdin.read()"
    pythons = {}
    for setting in ("", "malloc"):
        env = dict(os.environ, LD_PRELOAD=str(libhakmem))
        env.pop("PYTHONMALLOC", None)
        if setting:
            env["PYTHONMALLOC"] = setting
        p = subprocess.Popen(["/usr/bin/python3", "-c", code], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline() == "ready\n"
        pythons[setting] = p
    h = hakwatch("attach", "--lib", str(libhakmem), "--group-by", "pid")
    try:
        h.ready()
        def labelled():
            text = scrape(h.url)
            return text if value(text, "hakwatch_target_info", pid=str(pythons[""].pid), hidden_by="pymalloc") else None
        text = wait_for(labelled, 30, "the pymalloc process labelled")
        assert value(text, "hakwatch_target_info", pid=str(pythons["malloc"].pid), hidden_by="") == 1
        scrape(h.url)  # a second scrape says nothing more
    finally:
        for p in pythons.values():
            p.stdin.close()
            p.wait(30)
    h.stop()
    said = [line for line in h.proc.stderr.read().splitlines() if "pymalloc" in line]
    assert len(said) == 1 and f"process {pythons[''].pid} " in said[0] and "PYTHONMALLOC=malloc" in said[0], said
