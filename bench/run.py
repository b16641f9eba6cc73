"""Benchmarks: libhakmem against glibc, mimalloc, jemalloc and tcmalloc (Debian's, by LD_PRELOAD), at 1
and 2 threads, in one run, interleaved so that drift of the machine hits every allocator alike.

    make bench                        # everything (about 10 minutes on 2 cores)
    bench/run.sh --quick              # 2 repetitions, shorter runs: a quick look
    bench/run.sh --only larson,random_mixed --allocators glibc,hakmem

Writes bench/RESULTS.md (tables), bench/results.png (throughput per allocator) and bench/results.json.
(Two builds of libhakmem against each other, before and after a change: bench/builds.py.)
Per workload and thread count: ops/s (median of the repetitions, with min and max), peak RSS (median
of the workload's own ru_maxrss, taken by programs/peakrss.c, not by this harness), memory syscalls from one extra run under `strace -f -c` (of fixed work where the
workload is timed: larson). Then: the cost of the
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
from pathlib import Path

from watching import scrape_cost, watching_cost
from report import OTHER_SECTIONS
from workloads import (ALLOCATORS, BENCH, BUILD, DEBIAN_PACKAGES, HAKMEM, MEMORY_SYSCALLS, NOPROBES, ROOT, choose,
                       env_for, run_once, say, workloads)


def build():
    BUILD.mkdir(exist_ok=True)
    subprocess.run(["make", "-s", "-C", str(ROOT / "libhakmem"), "all", "noprobes"], check=True)
    headers = [h.stat().st_mtime for h in (BENCH / "programs").glob("*.h")]
    for src in (BENCH / "programs").glob("*.c"):
        out = BUILD / src.stem
        if not out.exists() or out.stat().st_mtime < max([src.stat().st_mtime, *headers]):
            subprocess.run(["gcc", "-O2", "-g", "-pthread", "-o", str(out), str(src)], check=True)


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
            results[t][name]["syscalls"] = strace_counts(wl.get("count_cmd", wl["cmd"])(t), lib, wl.get("env"))
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
    ap.add_argument("--only", help="comma-separated workloads: larson,xmalloc,random_mixed,large,python")
    ap.add_argument("--allocators", help="comma-separated subset of " + ",".join(ALLOCATORS))
    ap.add_argument("--no-watch", action="store_true", help="skip the cost-of-watching part")
    ap.add_argument("--watch-only", action="store_true",
                    help="measure only the cost of watching, keeping the rest of bench/results.json")
    args = ap.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    wls = choose(ap, args.only, workloads(args.quick), "workloads")
    allocators = choose(ap, args.allocators, ALLOCATORS, "allocators")
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
    if (BENCH / "results.json").exists():  # what the other scripts measured stays
        previous = json.loads((BENCH / "results.json").read_text())
        results.update({k: previous[k] for k in OTHER_SECTIONS if k in previous})
    for i, (name, wl) in enumerate(wls.items(), 1):
        say(f"bench: [{i}/{len(wls)}] {name} ({reps} runs x {len(allocators)} allocators x 2 thread counts, then strace)")
        raw = measure(wl, allocators, (1, 2), reps)
        results["workloads"][name] = {t: {a: summary(r) for a, r in by.items()} for t, by in raw.items()}
        results["about"][name] = wl["about"] + f". Command: {' '.join(str(c) for c in wl['cmd']('N'))}" + (
            f"; {wl['count_about']}." if "count_about" in wl else "")
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
