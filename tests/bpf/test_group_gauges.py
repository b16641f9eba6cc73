"""attach --lib --group-by comm on real processes (the arithmetic alone: tests/unit/test_groups.py): a
group's gauges are the sum of its live members' own, as a second hakwatch reads them per pid; once a
member has exited and --retention has passed, they are the other member's alone, and the group's
counters still hold what the gone one counted."""

import os
import shutil
import subprocess

from prometheus_client.parser import text_string_to_metric_families

from hakwatch_helpers import scrape, wait_for
from test_attach import samples, total

COMM = "idle_pool"
# Two runs of one program with different live sets (threads, blocks each, bytes): a group that showed
# one member twice, or the wrong one after the other left, would not add up.
MEMBERS = (("4", "3000", "256"), ("2", "1000", "1024"))
GAUGES = {"hakmem_live_bytes": "class", "hakmem_memory_bytes": "layer"}


def gauges(text, **match):
    """Each gauge by its class or layer, for the samples with these labels."""
    return {name: {dict(k)[label]: v for k, v in samples(text, name, **match).items()}
            for name, label in GAUGES.items()}


def counters(text, **match):
    """Every counter sample with these labels, by name and labels (pid aside)."""
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "pid"))): s.value
            for f in text_string_to_metric_families(text) if f.type == "counter"
            for s in f.samples if all(s.labels.get(k) == v for k, v in match.items())}


def add(*views):
    out = {}
    for view in views:
        for k, v in view.items():
            out[k] = out.get(k, 0) + v
    return out


def test_a_groups_gauges_are_its_live_members_sum(hakwatch, libhakmem, programs, tmp_path):
    # a copy of the library of its own: other processes under the suite's libhakmem (another test run
    # on the host) are neither in the group nor among hakwatch_targets
    lib = tmp_path / "libhakmem.so"
    shutil.copy(libhakmem, lib)
    grouped = hakwatch("attach", "--lib", str(lib), "--group-by", "comm", "--retention", "3")
    per_pid = hakwatch("attach", "--lib", str(lib), "--group-by", "pid", "--retention", "300")
    grouped.ready()
    per_pid.ready()
    procs = []
    try:
        for args in MEMBERS:
            procs.append(subprocess.Popen([str(programs["idle_pool"]), *args], env=dict(os.environ, LD_PRELOAD=str(lib)),
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            assert procs[-1].stdout.readline() == "ready\n"  # then idle: its gauges stay as they are
        pids = [str(p.pid) for p in procs]
        wait_for(lambda: all(f'pid="{pid}"' in scrape(per_pid.url) for pid in pids), what="both members per pid")
        wait_for(lambda: total(scrape(grouped.url), "hakwatch_group_processes", comm=COMM) == 2, what="a group of 2")

        text, own = scrape(grouped.url), scrape(per_pid.url)
        each = [gauges(own, pid=pid) for pid in pids]
        assert each[0] != each[1] and all(view["hakmem_live_bytes"] for view in each), each
        assert gauges(text, comm=COMM) == {name: add(*(view[name] for view in each)) for name in GAUGES}
        before = counters(text, comm=COMM)

        procs[0].stdin.close()
        assert procs[0].wait(30) == 0
        # gone from the gauges at its exit, while hakwatch still keeps it (--retention 3)...
        text = wait_for(lambda: total(t := scrape(grouped.url), "hakwatch_group_processes", comm=COMM) == 1 and t,
                        what="the group to count one member")
        assert gauges(text, comm=COMM) == gauges(own, pid=pids[1])
        # ...and once forgotten, when hakwatch watches the other member alone
        wait_for(lambda: total(scrape(grouped.url), "hakwatch_targets") == 1, 30, "the member that exited to go")
        text, own = scrape(grouped.url), scrape(per_pid.url)
        assert total(text, "hakwatch_group_processes", comm=COMM) == 1
        assert gauges(text, comm=COMM) == gauges(own, pid=pids[1])
        after = counters(text, comm=COMM)
        went_down = {k: (v, after.get(k, 0)) for k, v in before.items() if after.get(k, 0) < v}
        assert not went_down, went_down
        # and exactly: the other hakwatch still shows the one gone (--retention 300) with its last counts
        assert after == add(counters(own, pid=pids[0]), counters(own, pid=pids[1]))
    finally:
        for p in procs:
            p.kill()
            p.wait()

