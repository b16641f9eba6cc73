"""The cost of watching: larson under libhakmem with hakwatch attached against the same runs unwatched,
the BPF handlers' run time as the kernel counts it, hakwatch's own CPU, RSS and time to serve, and its
CPU against the number of processes it exports."""

import os
import re
import statistics
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from workloads import BUILD, HAKMEM, ROOT, env_for, run_once, workloads


def watching_cost(reps: int, quick: bool) -> dict | str:
    """larson under libhakmem, with and without hakwatch attached; hakwatch's own cost. At 1 thread the
    other core is free for hakwatch, so the ratio is the in-process cost (probe traps, BPF handlers); at
    2 threads hakwatch's scrapes also take CPU from the workload.

    This machine's speed drifts by up to 30% over tens of seconds, more than the effect measured, so the
    runs go in watched/unwatched pairs and the ratio is the median of the pairs' ratios; and the kernel's
    own account of the BPF handlers' run time (kernel.bpf_stats_enabled) gives the in-process cost
    without timing noise."""
    if os.geteuid() != 0:
        return "skipped: needs root (hakwatch loads BPF programs)"
    hakwatch = ROOT / ".venv" / "bin" / "hakwatch"
    # The unwatched runs use a copy of the library: same code, another inode, so hakwatch (attached to
    # HAKMEM's inode) does not see them. Same directory, so both come from the same filesystem.
    unwatched_lib = HAKMEM.with_name("libhakmem-unwatched.so")
    unwatched_lib.write_bytes(HAKMEM.read_bytes())
    stats_sysctl = Path("/proc/sys/kernel/bpf_stats_enabled")
    stats_before = stats_sysctl.read_text()
    stats_sysctl.write_text("1")
    try:
        return {_watch_mode_key(threads, detail): _watch_mode(hakwatch, unwatched_lib, threads, detail, reps, quick)
                for threads, detail in ((1, ()), (2, ()), (2, ("--detail", "refill")))}
    except RuntimeError as e:
        return f"skipped: {e}"
    finally:
        stats_sysctl.write_text(stats_before)
        unwatched_lib.unlink()


def _watch_mode_key(threads: int, detail: tuple) -> str:
    return f"{'--detail refill' if detail else 'default'}, {threads} thread{'s' if threads > 1 else ''}"


def _watch_mode(hakwatch: Path, unwatched_lib: Path, threads: int, detail: tuple, reps: int, quick: bool) -> dict:
    cmd = workloads(quick)["larson"]["cmd"](threads)
    # --retention 5: each larson run is a process of its own; kept the default 60 s, twenty dead ones
    # would be exported at every scrape, which no long-running service being watched looks like.
    proc, url, ready = _start_hakwatch(hakwatch, 10900 + threads + len(detail), "--retention", "5", *detail)
    stop = threading.Event()

    def scraper():
        while not stop.wait(1.0):
            try:
                urllib.request.urlopen(url, timeout=2).read()
            except OSError:
                pass
    threading.Thread(target=scraper, daemon=True).start()
    try:
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        watched, plain, bpf_ns, workload_cpu = [], [], 0, 0.0
        for _ in range(2 * reps):
            plain.append(run_once(cmd, env_for(unwatched_lib))[0])
            ns0 = _bpf_run_ns(proc.pid)
            ops, _, cpu = run_once(cmd, env_for(HAKMEM))
            bpf_ns += _bpf_run_ns(proc.pid) - ns0
            workload_cpu += cpu
            watched.append(ops)
        busy = time.monotonic() - t0
        cpu = _cpu_seconds(proc.pid) - cpu0
        idle_s = 3 if quick else 10
        idle_cpu0 = _cpu_seconds(proc.pid)
        time.sleep(idle_s)
        idle_cpu = (_cpu_seconds(proc.pid) - idle_cpu0) / idle_s
        rss = _rss_kib(proc.pid)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(20)
    return {"ratio": statistics.median(w / p for w, p in zip(watched, plain)),
            "watched": statistics.median(watched), "unwatched": statistics.median(plain), "pairs": len(watched),
            "bpf_share": bpf_ns / 1e9 / workload_cpu,
            "ready_s": ready, "cpu_busy": cpu / busy, "cpu_idle": idle_cpu, "rss_kib": rss}


def _bpf_run_ns(pid: int) -> int:
    """The run time of every BPF program process `pid` holds, as the kernel counts it (bpf_stats)."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) != "anon_inode:bpf-prog":
                continue
            m = re.search(r"run_time_ns:\s+(\d+)", Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text())
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total


def scrape_cost(hakwatch: Path, counts=(1, 5, 20)) -> dict:
    """hakwatch's CPU at a 1 s scrape interval against the number of targets it exports (exited larson
    processes kept by --retention), and how long one scrape takes."""
    out = {}
    for n in counts:
        proc, url, _ = _start_hakwatch(hakwatch, 10950 + n, "--retention", "600")
        try:
            for _ in range(n):
                run_once([BUILD / "larson", "0.2", "8", "1000", "5000", "100", "4141", "1"], env_for(HAKMEM))
            cpu0, t0, took, size = _cpu_seconds(proc.pid), time.monotonic(), [], 0
            for _ in range(10):
                s = time.perf_counter()
                size = len(urllib.request.urlopen(url, timeout=10).read())
                took.append(time.perf_counter() - s)
                time.sleep(1)
            out[n] = {"cpu": (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0),
                      "scrape_s": statistics.median(took), "bytes": size}
        finally:
            proc.terminate()
            proc.wait(20)
    return out


def _start_hakwatch(hakwatch: Path, port: int, *args: str) -> tuple[subprocess.Popen, str, float]:
    """`hakwatch attach --lib` on HAKMEM, once it serves: the process, its /metrics URL, and the seconds
    from start to the first good scrape."""
    start = time.monotonic()
    proc = subprocess.Popen([str(hakwatch), "attach", "--lib", str(HAKMEM), "--listen", f"127.0.0.1:{port}", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    while time.monotonic() - start < 60 and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=30).read()  # a first scrape of a thousand processes takes a while
            return proc, url, time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("hakwatch did not start (run `sudo .venv/bin/hakwatch doctor`)")


def _family(pid: int) -> list[int]:
    """The process and its descendants: hakwatch's root helpers (they read the processes' memory and
    symbols for the server) are its cost too."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass  # gone meanwhile
    return out


def _cpu_seconds(pid: int) -> float:
    """User and system time of hakwatch and its helpers."""
    total = 0
    for p in _family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    """Resident memory of hakwatch and its helpers: their proportional sets (Pss), so that the pages the
    forked helpers still share with hakwatch count once."""
    total = 0
    for p in _family(pid):
        try:
            m = re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{p}/smaps_rollup").read_text(), re.M)
        except OSError:
            continue
        total += int(m.group(1)) if m else 0
    return total
