"""A host with many watched processes: N processes of T threads under libhakmem (bench/programs/idle.c,
started under 10 command names, N/10 each), one `hakwatch attach --lib` exporting them, and what that costs:
a scrape's duration and size, hakwatch's CPU at 15 s and 1 s scrape intervals, its RSS; with series per
pid (--group-by pid) and per command (--group-by comm, attach --lib's default); the processes idle,
then busy (each allocating every second, so that every counters block changes between two scrapes).

    sudo .venv/bin/python bench/fleet.py               # 1,000 processes of 8 threads; into bench/results.json and RESULTS.md
    sudo .venv/bin/python bench/fleet.py --processes 200 --threads 1 --no-write

Needs root (hakwatch loads BPF).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from watching import _cpu_seconds, _rss_kib, _start_hakwatch
from workloads import BENCH, BUILD, HAKMEM, ROOT, env_for, say

COMMANDS = 10


BUSY_MS = 1000


def start_idle(n: int, where: Path, threads: int, busy: bool = False) -> list[subprocess.Popen]:
    """n processes, idle or busy, under COMMANDS names (copies of one program: the name is its comm)."""
    names = []
    for i in range(COMMANDS):
        names.append(where / f"idle{i}")
        shutil.copy(BUILD / "idle", names[-1])
    procs = []
    for i in range(n):
        procs.append(subprocess.Popen([str(names[i % COMMANDS]), str(BUSY_MS if busy else 0), str(threads)],
                                      env=env_for(HAKMEM), stdout=subprocess.PIPE, text=True))
    for p in procs:
        if p.stdout.readline() != "ready\n":
            raise RuntimeError("an idle process did not start")
    return procs


def scrapes(url: str, interval: float, seconds: float, pid: int) -> dict:
    """Scrape every `interval` s for `seconds`: hakwatch's CPU (share of one core) over the whole time,
    the median scrape duration, the body's size and its number of series."""
    cpu0, t0, took, body = _cpu_seconds(pid), time.monotonic(), [], b""
    while time.monotonic() - t0 < seconds:
        s = time.perf_counter()
        body = urllib.request.urlopen(url, timeout=60).read()
        took.append(time.perf_counter() - s)
        time.sleep(max(0.0, interval - (time.perf_counter() - s)))
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return {"interval_s": interval, "cpu": (_cpu_seconds(pid) - cpu0) / (time.monotonic() - t0),
            "scrape_s": statistics.median(took), "bytes": len(body), "series": series, "scrapes": len(took)}


def measure(n: int, threads: int, quick: bool) -> dict:
    hakwatch = ROOT / ".venv" / "bin" / "hakwatch"
    out = {"processes": n, "threads": threads, "commands": COMMANDS, "busy_ms": BUSY_MS, "modes": {}}
    for activity in ("idle", "busy"):
        with tempfile.TemporaryDirectory() as tmp:
            say(f"fleet: starting {n} {activity} processes")
            procs = start_idle(n, Path(tmp), threads, busy=activity == "busy")
            try:
                for mode, key in (("per pid", "pid"), ("grouped by comm", "comm")):
                    proc, url, ready = _start_hakwatch(hakwatch, 10990, "--max-targets", str(max(1024, 2 * n)),
                                                       "--group-by", key)
                    try:
                        time.sleep(2)
                        say(f"fleet: {activity}, {mode}: scraping every 15 s, then every 1 s")
                        slow = scrapes(url, 15.0, 30 if quick else 60, proc.pid)
                        fast = scrapes(url, 1.0, 10 if quick else 30, proc.pid)
                        out["modes"][f"{mode}, {activity}"] = {"15s": slow, "1s": fast, "ready_s": ready,
                                                               "rss_kib": _rss_kib(proc.pid)}
                    finally:
                        proc.terminate()
                        proc.wait(20)
            finally:
                for p in procs:
                    p.kill()
                for p in procs:
                    p.wait()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--processes", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=8, help="threads of each process, each with its own blocks")
    ap.add_argument("--quick", action="store_true", help="shorter scrape windows")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/results.json and RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/fleet.py: needs root (hakwatch loads BPF programs)")
    subprocess.run(["make", "-s", "-C", str(ROOT / "libhakmem")], check=True)
    subprocess.run(["gcc", "-O2", "-pthread", "-o", str(BUILD / "idle"), str(BENCH / "programs" / "idle.c")], check=True)
    res = measure(args.processes, args.threads, args.quick)
    res["argv"] = " ".join(sys.argv[1:])
    res["revision"] = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True).stdout.strip()
    print(json.dumps(res, indent=1))
    if not args.no_write:
        from report import RESULTS_JSON, keep
        # the run before this one, shown next to it (its own "before" dropped: one step back is enough)
        before = json.loads(RESULTS_JSON.read_text()).get("fleet")
        if before:
            res["before"] = {k: v for k, v in before.items() if k != "before"}
        keep("fleet", res)
        say("fleet: wrote bench/results.json and bench/RESULTS.md")


if __name__ == "__main__":
    main()
