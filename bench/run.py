"""Benchmarks: libhakmem against glibc, mimalloc, jemalloc and tcmalloc (Debian's, by LD_PRELOAD), at 1
and 2 threads, in one run, interleaved so that drift of the machine hits every allocator alike.

    make bench                        # everything (about 10 minutes on 2 cores)
    bench/run.sh --quick              # 2 repetitions, shorter runs: a quick look
    bench/run.sh --only larson,random_mixed --allocators glibc,hakmem

Writes bench/RESULTS.md (tables), bench/results.png (throughput per allocator) and bench/results.json.
Per workload and thread count: ops/s (median of the repetitions, with min and max), peak RSS (median
of ru_maxrss), memory syscalls from one extra run under `strace -f -c`. Then: the cost of the
compiled-in, unattached probes (libhakmem against libhakmem-noprobes), instructions per malloc/free
pair under callgrind, and the cost of watching with hakwatch (needs root and bcc).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / "build"
LIBDIR = Path("/usr/lib/x86_64-linux-gnu")
HAKMEM = ROOT / "libhakmem" / "build" / "libhakmem.so"
NOPROBES = ROOT / "libhakmem" / "build" / "libhakmem-noprobes.so"
ALLOCATORS = {
    "glibc": None,
    "mimalloc": LIBDIR / "libmimalloc.so.2",
    "jemalloc": LIBDIR / "libjemalloc.so.2",
    "tcmalloc": LIBDIR / "libtcmalloc_minimal.so.4",
    "hakmem": HAKMEM,
}
DEBIAN_PACKAGES = {"glibc": "libc6", "mimalloc": "libmimalloc2.0", "jemalloc": "libjemalloc2",
                   "tcmalloc": "libtcmalloc-minimal4"}
MEMORY_SYSCALLS = ("mmap", "munmap", "madvise", "mremap", "brk")


def workloads(quick: bool) -> dict:
    larson_s = "1" if quick else "2"
    return {
        "larson": {
            "about": f"larson {larson_s} 8 1000 5000 100 4141 N: the timed form of the notes' larson; N threads "
                     "churn windows of 5000 blocks of 8-1000 bytes and hand them to fresh threads",
            "cmd": lambda t: [BUILD / "larson", larson_s, "8", "1000", "5000", "100", "4141", str(t)],
        },
        "xmalloc": {
            "about": "xmalloc N 4000000: N/2 producer threads allocate 16-512 bytes, the other threads free "
                     "them (every free is remote); 1 thread alternates both roles",
            "cmd": lambda t: [BUILD / "xmalloc", str(t), "2000000" if quick else "4000000"],
        },
        "random_mixed": {
            "about": "random_mixed 200000 4096 1234567 N 20: the notes' loop (200,000 cycles, 4,096 slots, "
                     "sizes 16-1024), repeated 20 times per thread so it lasts long enough to time",
            "cmd": lambda t: [BUILD / "random_mixed", "200000", "4096", "1234567", str(t), "20"],
        },
        "python": {
            "about": "python3 bench/programs/py_workload.py N with PYTHONMALLOC=malloc: JSON documents and "
                     "an in-memory sqlite table across N threads (ops = documents)",
            "cmd": lambda t: ["/usr/bin/python3", BENCH / "programs" / "py_workload.py", str(t)],
            "env": {"PYTHONMALLOC": "malloc"},
        },
    }


def say(msg: str):
    print(msg, file=sys.stderr, flush=True)


def build():
    BUILD.mkdir(exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(ROOT / "libhakmem"), "all", "noprobes"], check=True)
    for src in (BENCH / "programs").glob("*.c"):
        out = BUILD / src.stem
        if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
            subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", str(out), str(src)], check=True)


def env_for(lib, extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_") and k != "LD_PRELOAD"}
    if lib:
        env["LD_PRELOAD"] = str(lib)
    env.update(extra or {})
    return env


def run_once(cmd, env) -> tuple[float, int, float]:
    """ops/s, peak RSS (KiB) and CPU seconds (user + system) of one run."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        text = out.read()
    m = re.search(r"ops_per_sec (\d+)", text)
    if os.waitstatus_to_exitcode(status) != 0 or not m:
        raise RuntimeError(f"{cmd} failed (status {status}): {text[-300:]}")
    return float(m.group(1)), usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def strace_counts(cmd, lib, extra_env) -> dict:
    """Memory syscalls of one run, counted by strace -f -c (LD_PRELOAD given to the traced command only)."""
    with tempfile.NamedTemporaryFile("r") as out:
        st = ["strace", "-f", "-c", "-o", out.name, "-e", "trace=" + ",".join(MEMORY_SYSCALLS)]
        if lib:
            st += ["-E", f"LD_PRELOAD={lib}"]
        for k, v in (extra_env or {}).items():
            st += ["-E", f"{k}={v}"]
        subprocess.run(st + [str(c) for c in cmd], env=env_for(None), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        counts = dict.fromkeys(MEMORY_SYSCALLS, 0)
        for line in Path(out.name).read_text().splitlines():
            parts = line.split()
            if parts and parts[-1] in counts and len(parts) >= 5:
                counts[parts[-1]] = int(parts[3])
    return counts


def measure(wl: dict, allocators: dict, threads, reps: int) -> dict:
    """results[threads][allocator] = {ops: [...], rss: [...], syscalls: {...}}"""
    results = {t: {a: {"ops": [], "rss": []} for a in allocators} for t in threads}
    for t in threads:
        for rep in range(reps):
            for name, lib in allocators.items():
                ops, rss, _ = run_once(wl["cmd"](t), env_for(lib, wl.get("env")))
                results[t][name]["ops"].append(ops)
                results[t][name]["rss"].append(rss)
        for name, lib in allocators.items():
            results[t][name]["syscalls"] = strace_counts(wl["cmd"](t), lib, wl.get("env"))
    return results


def summary(r: dict) -> dict:
    return {"ops": statistics.median(r["ops"]), "ops_min": min(r["ops"]), "ops_max": max(r["ops"]),
            "rss_kib": statistics.median(r["rss"]), "syscalls": r.get("syscalls", {})}


def callgrind_instructions(cmd, lib) -> int | None:
    with tempfile.TemporaryDirectory() as d:
        res = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg", *map(str, cmd)],
                             env=env_for(lib), capture_output=True, text=True)
    m = re.search(r"refs:\s+([\d,]+)", res.stderr)
    return int(m.group(1).replace(",", "")) if m else None


def probe_instructions() -> dict:
    """The unattached probes' cost without timing noise: instructions of single-threaded, fixed-work runs
    under callgrind, libhakmem against libhakmem-noprobes."""
    runs = {"random_mixed": [BUILD / "random_mixed", "200000", "4096", "1234567", "1", "1"],
            "xmalloc": [BUILD / "xmalloc", "1", "400000"]}
    out = {}
    for name, cmd in runs.items():
        a, b = callgrind_instructions(cmd, HAKMEM), callgrind_instructions(cmd, NOPROBES)
        out[name] = {"hakmem": a, "noprobes": b, "ratio": a / b if a and b else None}
    return out


def callgrind_pairs(allocators: dict) -> dict:
    """Instructions per malloc(32)/free pair: (pair program - empty program) / 1e6, under callgrind."""
    out = {}
    for name, lib in allocators.items():
        counts = []
        for prog in ("pair", "empty"):
            with tempfile.TemporaryDirectory() as d:
                res = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={d}/cg", str(BUILD / prog)],
                                     env=env_for(lib), capture_output=True, text=True)
                m = re.search(r"refs:\s+([\d,]+)", res.stderr)
                counts.append(int(m.group(1).replace(",", "")) if m else None)
        out[name] = (counts[0] - counts[1]) / 1e6 if None not in counts else None
    return out


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
    port = 10900 + threads + len(detail)
    start = time.monotonic()
    # --retention 5: each larson run is a process of its own; kept the default 60 s, twenty dead ones
    # would be exported at every scrape, which no long-running service being watched looks like.
    proc = subprocess.Popen([str(hakwatch), "attach", "--lib", str(HAKMEM), "--listen", f"127.0.0.1:{port}",
                             "--retention", "5", *detail], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    ready = None
    while ready is None and time.monotonic() - start < 60 and proc.poll() is None:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            ready = time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    if ready is None:
        proc.kill()
        raise RuntimeError("hakwatch did not start (run `sudo .venv/bin/hakwatch doctor`)")
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
        port = 10950 + n
        proc = subprocess.Popen([str(hakwatch), "attach", "--lib", str(HAKMEM), "--listen", f"127.0.0.1:{port}",
                                 "--retention", "600"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
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
        proc.terminate()
        proc.wait(20)
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kib(pid: int) -> int:
    m = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(m.group(1)) if m else 0


def versions() -> dict:
    v = {"kernel": platform.release(), "cpus": os.cpu_count()}
    for name, pkg in DEBIAN_PACKAGES.items():
        res = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
        v[name] = res.stdout or "?"
    v["hakmem"] = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                                 capture_output=True, text=True).stdout.strip()
    v["gcc"] = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    v["cpu"] = cpu.group(1) if cpu else "?"
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 repetitions and shorter runs")
    ap.add_argument("--reps", type=int, help="repetitions per measurement (default 5, 2 with --quick)")
    ap.add_argument("--only", help="comma-separated workloads: larson,xmalloc,random_mixed,python")
    ap.add_argument("--allocators", help="comma-separated subset of " + ",".join(ALLOCATORS))
    ap.add_argument("--no-watch", action="store_true", help="skip the cost-of-watching part")
    ap.add_argument("--watch-only", action="store_true",
                    help="measure only the cost of watching, keeping the rest of bench/results.json")
    args = ap.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    wls = workloads(args.quick)
    if args.only:
        unknown = set(args.only.split(",")) - set(wls)
        if unknown:
            ap.error(f"unknown workloads: {', '.join(sorted(unknown))}")
        wls = {k: v for k, v in wls.items() if k in args.only.split(",")}
    allocators = ALLOCATORS
    if args.allocators:
        unknown = set(args.allocators.split(",")) - set(ALLOCATORS)
        if unknown:
            ap.error(f"unknown allocators: {', '.join(sorted(unknown))}")
        allocators = {k: v for k, v in ALLOCATORS.items() if k in args.allocators.split(",")}
    say("bench: building")
    build()
    if args.watch_only:
        results = json.loads((BENCH / "results.json").read_text())
        say("bench: the cost of watching (hakwatch attach --lib, scraped every second)")
        results["watching"] = watching_cost(reps, args.quick)
        results["scrape_cost"] = scrape_cost(ROOT / ".venv" / "bin" / "hakwatch")
        results["watching_argv"] = " ".join(sys.argv[1:])
        return _write(results, results.get("argv", ""))
    results = {"versions": versions(), "reps": reps, "workloads": {}, "about": {}, "argv": " ".join(sys.argv[1:])}
    for i, (name, wl) in enumerate(wls.items(), 1):
        say(f"bench: [{i}/{len(wls)}] {name} ({reps} runs x {len(allocators)} allocators x 2 thread counts, then strace)")
        raw = measure(wl, allocators, (1, 2), reps)
        results["workloads"][name] = {t: {a: summary(r) for a, r in by.items()} for t, by in raw.items()}
        results["about"][name] = wl["about"] + f". Command: {' '.join(str(c) for c in wl['cmd']('N'))}"
    if "hakmem" in allocators:
        say("bench: unattached probes: libhakmem against libhakmem-noprobes")
        probe = {}
        for name in [w for w in ("larson", "random_mixed") if w in wls]:
            raw = measure(wls[name], {"hakmem": HAKMEM, "noprobes": NOPROBES}, (1,), max(reps, 5))
            a, b = raw[1]["hakmem"]["ops"], raw[1]["noprobes"]["ops"]
            probe[name] = {"ratio": statistics.median(a) / statistics.median(b), "hakmem": statistics.median(a),
                           "noprobes": statistics.median(b), "spread": (min(a) / max(b), max(a) / min(b))}
        results["probes"] = probe
        results["probe_instructions"] = probe_instructions()
    say("bench: callgrind, instructions per malloc/free pair")
    results["callgrind"] = callgrind_pairs(allocators)
    if not args.no_watch and "hakmem" in allocators:
        say("bench: the cost of watching (hakwatch attach --lib, scraped every second)")
        results["watching"] = watching_cost(reps, args.quick)
        if isinstance(results["watching"], dict):
            results["scrape_cost"] = scrape_cost(ROOT / ".venv" / "bin" / "hakwatch")
    _write(results, results["argv"])


def _write(results: dict, argv: str):
    (BENCH / "results.json").write_text(json.dumps(results, indent=1, default=str))
    from report import plot, write_markdown
    write_markdown(results, BENCH / "RESULTS.md", argv)
    plot(results, BENCH / "results.png")
    say("bench: wrote bench/RESULTS.md, bench/results.png, bench/results.json")


if __name__ == "__main__":
    main()
