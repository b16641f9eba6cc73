"""attach --pid and attach --lib on real processes; the exposition as Prometheus parses it;
syscall counts against a program that makes a known number of calls; retention and expiry."""

import json
import os
import shutil
import subprocess
import time

from prometheus_client.parser import text_string_to_metric_families

from hakwatch_helpers import HAKWATCH, scrape, start_known_syscalls, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DESIGN_METRICS = {
    "hakmem_allocs": ("counter", {"pid", "comm", "class"}),
    "hakmem_frees": ("counter", {"pid", "comm", "route"}),
    "hakmem_refills": ("counter", {"pid", "comm", "class", "stage"}),
    "hakmem_refill_objects": ("counter", {"pid", "comm", "class"}),
    "hakmem_superslab_events": ("counter", {"pid", "comm", "event"}),
    "hakmem_superslabs": ("gauge", {"pid", "comm", "state"}),
    "hakmem_large_events": ("counter", {"pid", "comm", "event"}),
    "hakmem_syscalls": ("counter", {"pid", "comm", "syscall"}),
    "hakmem_syscall_bytes": ("counter", {"pid", "comm", "syscall"}),
    "hakmem_syscall_duration_seconds": ("histogram", {"pid", "comm", "syscall"}),
    "hakmem_page_faults": ("counter", {"pid", "comm"}),
    "hakwatch_target_info": ("gauge", {"pid", "comm", "library", "version", "cgroup", "hidden_by"}),
    "hakwatch_targets": ("gauge", set()),
    "hakwatch_targets_dropped": ("counter", set()),
    "hakwatch_scrape_duration_seconds": ("gauge", set()),
    "hakwatch_build_info": ("gauge", {"version", "bcc_version", "kernel"}),
    "hakmem_requested_bytes": ("counter", {"pid", "comm"}),
    "hakmem_allocated_bytes": ("counter", {"pid", "comm"}),
    "hakmem_live_bytes": ("gauge", {"pid", "comm", "class"}),
    "hakmem_memory_bytes": ("gauge", {"pid", "comm", "layer"}),
    "hakmem_mapped_bytes": ("gauge", {"pid", "comm"}),
    "hakmem_resident_estimate_bytes": ("gauge", {"pid", "comm"}),
    "hakmem_process_resident_bytes": ("gauge", {"pid", "comm", "kind"}),
}


def samples(text, name, **labels):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(text, name, **labels):
    return sum(samples(text, name, **labels).values())


def start_workload(libhakmem, seconds=60):
    env = dict(os.environ, LD_PRELOAD=str(libhakmem), PYTHONMALLOC="malloc")
    return subprocess.Popen(["/usr/bin/python3", os.path.join(ROOT, "scripts", "demo_workload.py"), str(seconds)],
                            env=env, stdout=subprocess.DEVNULL)


def test_attach_to_a_running_process_and_parse_the_exposition(hakwatch, libhakmem):
    proc = start_workload(libhakmem)
    try:
        wait_for(lambda: "libhakmem" in open(f"/proc/{proc.pid}/maps").read(), what="the workload to start")
        h = hakwatch("attach", "--pid", str(proc.pid))
        h.ready()
        pid = str(proc.pid)
        first = wait_for(lambda: total(scrape(h.url), "hakmem_allocs_total", pid=pid), what="allocations counted")
        later = wait_for(lambda: (n := total(scrape(h.url), "hakmem_allocs_total", pid=pid)) > first and n,
                         what="the counters to move")
        assert later > first
        text = scrape(h.url)
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        for name, (kind, labels) in DESIGN_METRICS.items():
            assert name in fams, f"{name} missing from /metrics"
            assert fams[name].type == kind, f"{name} is a {fams[name].type}, DESIGN.md says {kind}"
            for s in fams[name].samples:
                if s.name.endswith(("_bucket",)):
                    assert set(s.labels) == labels | {"le"}, s
                else:
                    assert set(s.labels) == labels, f"{s.name} has labels {set(s.labels)}, expected {labels}"
        assert total(text, "hakwatch_targets") >= 1
        assert scrape(h.url.replace("/metrics", "/")).startswith("<!doctype html>")
    finally:
        proc.kill()
        proc.wait()


def test_attach_lib_picks_up_a_process_started_later(hakwatch, libhakmem, programs):
    h = hakwatch("attach", "--lib", str(libhakmem), "--retention", "300")
    h.ready()
    proc = subprocess.run([programs["churn_threads"], "2", "2", "500"], env=dict(os.environ, LD_PRELOAD=str(libhakmem)),
                          capture_output=True, text=True, check=True)
    assert "churn done" in proc.stdout
    text = wait_for(lambda: 'comm="churn_threads"' in (t := scrape(h.url)) and t, what="the new process's series")
    assert total(text, "hakmem_allocs_total", comm="churn_threads") > 1000


def test_syscall_counts_are_exact(hakwatch, libhakmem, programs):
    proc = start_known_syscalls(programs["known_syscalls"], libhakmem)
    try:
        h = hakwatch("attach", "--pid", str(proc.pid))
        h.ready()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "done\n"
        text = scrape(h.url)
        pid = str(proc.pid)
        calls = {s: total(text, "hakmem_syscalls_total", pid=pid, syscall=s) for s in ("mmap", "munmap", "madvise", "mremap", "brk", "mincore")}
        assert calls == {"mmap": 100, "munmap": 100, "madvise": 50, "mremap": 0, "brk": 0, "mincore": 0}
        assert total(text, "hakmem_syscall_bytes_total", pid=pid, syscall="mmap") == 100 * 65536
        assert total(text, "hakmem_syscall_duration_seconds_count", pid=pid, syscall="munmap") == 100
        assert total(text, "hakmem_page_faults_total", pid=pid) >= 100  # one per mapping touched
        proc.stdin.write("end\n")
        proc.stdin.flush()
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()


def test_an_exited_target_is_kept_for_retention_then_goes(hakwatch, libhakmem, programs):
    h = hakwatch("attach", "--lib", str(libhakmem), "--group-by", "pid", "--retention", "3")
    h.ready()
    subprocess.run([programs["churn_threads"], "1", "1", "100"], env=dict(os.environ, LD_PRELOAD=str(libhakmem)),
                   capture_output=True, check=True)
    exited = time.monotonic()
    wait_for(lambda: 'comm="churn_threads"' in scrape(h.url), what="the exited process's final values")
    wait_for(lambda: 'comm="churn_threads"' not in scrape(h.url), timeout=20, what="its series to go")
    assert time.monotonic() - exited >= 2.5, "series went before --retention passed"


def test_attach_pid_ends_when_its_targets_are_gone(hakwatch, libhakmem, programs):
    proc = start_known_syscalls(programs["known_syscalls"], libhakmem)
    h = hakwatch("attach", "--pid", str(proc.pid), "--retention", "0")
    h.ready()
    proc.stdin.write("go\nend\n")
    proc.stdin.close()
    proc.wait(10)
    assert h.proc.wait(20) == 0


def test_probes_of_a_process_are_listed_under_its_own_file_names(libhakmem):
    proc = subprocess.Popen(["sleep", "30"], env=dict(os.environ, LD_PRELOAD=str(libhakmem)))
    try:
        wait_for(lambda: str(libhakmem) in open(f"/proc/{proc.pid}/maps").read(), what="the library to be mapped")
        res = subprocess.run(HAKWATCH + ["probes", "--pid", str(proc.pid)], capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        rows = [line for line in res.stdout.splitlines() if line.startswith("hakmem ")]
        assert {r.split()[1] for r in rows} >= {"init", "flush", "ss_map"}
        assert all(r.endswith(f"[{libhakmem}]") for r in rows), rows
    finally:
        proc.kill()
        proc.wait()



def test_groups_add_up_to_their_members_hakmem_stats(hakwatch, libhakmem, programs, tmp_path):
    """attach --lib groups by comm: two programs, three processes each, run and gone (forgotten after a
    1 s --retention): each group's counters equal the sum of its members' own HAKMEM_STATS, and it has
    no live member and no memory left."""
    h = hakwatch("attach", "--lib", str(libhakmem), "--retention", "1")
    h.ready()
    again = tmp_path / "bin" / "churn_again"  # the same program under another name: another comm
    again.parent.mkdir()
    shutil.copy(programs["churn_threads"], again)
    for comm, prog in (("churn_threads", programs["churn_threads"]), ("churn_again", again)):
        (tmp_path / comm).mkdir()
        env = dict(os.environ, LD_PRELOAD=str(libhakmem), HAKMEM_STATS=str(tmp_path / comm / "%p.json"))
        for _ in range(3):
            subprocess.run([str(prog), "2", "2", "300"], env=env, capture_output=True, check=True)
    time.sleep(3)  # past --retention: the entries are forgotten, their counts stay with their group
    text = scrape(h.url)
    assert 'pid="' not in text
    for comm in ("churn_threads", "churn_again"):
        stats = [json.loads(p.read_text()) for p in (tmp_path / comm).glob("*.json")]
        assert len(stats) == 3
        assert total(text, "hakmem_allocs_total", comm=comm) == sum(sum(s["allocs"].values()) for s in stats)
        for route in stats[0]["frees"]:
            assert total(text, "hakmem_frees_total", comm=comm, route=route) == sum(s["frees"][route] for s in stats)
        assert total(text, "hakmem_requested_bytes_total", comm=comm) == sum(s["bytes"]["requested"] for s in stats)
        assert total(text, "hakwatch_group_processes", comm=comm) == 0
        assert total(text, "hakmem_mapped_bytes", comm=comm) == 0
