"""The benchmarks' workloads, the allocators they run under, and how one run is made and read: shared
by run.py (throughput, RSS, syscalls) and watching.py (the cost of hakwatch)."""

import os
import re
import subprocess
import sys
import tempfile
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
            # Every exiting thread costs a madvise of its stack (glibc's, whatever the allocator), so a
            # timed run's syscalls grow with its speed: they are counted on fixed work, 2,000 hand-offs.
            "count_cmd": lambda t: [BUILD / "larson", "60", "8", "1000", "5000", "100", "4141", str(t), "2000"],
            "count_about": "syscalls counted on fixed work: `larson 60 8 1000 5000 100 4141 N 2000` stops after "
                           "2,000 hand-offs, so every allocator's run creates and ends the same 2,000 threads "
                           "(glibc madvises each exiting thread's stack: about 2,000 of every count below)",
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
        "large": {
            "about": "large_blocks 500 20 5 25 N: the shape of mimalloc-bench's malloc-large; 20 live blocks of "
                     "5-25 MiB, each step replaces a random one by a new one zeroed whole, allocated before the "
                     "old is freed (N threads share the slots out)",
            "cmd": lambda t: [BUILD / "large_blocks", "200" if quick else "500", "20", "5", "25", str(t)],
        },
        "python": {
            "about": "python3 bench/programs/py_workload.py N with PYTHONMALLOC=malloc: JSON documents and "
                     "an in-memory sqlite table across N threads (ops = documents)",
            "cmd": lambda t: ["/usr/bin/python3", BENCH / "programs" / "py_workload.py", str(t)],
            "env": {"PYTHONMALLOC": "malloc"},
        },
    }


def choose(ap, only: str | None, known: dict, what: str) -> dict:
    """The entries of `known` a comma-separated --only-style option names (all without it); an unknown
    name is a usage error."""
    if not only:
        return known
    unknown = set(only.split(",")) - set(known)
    if unknown:
        ap.error(f"unknown {what}: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return {k: v for k, v in known.items() if k in only.split(",")}


def say(msg: str):
    print(msg, file=sys.stderr, flush=True)


def env_for(lib, extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_") and k != "LD_PRELOAD"}
    if lib:
        env["LD_PRELOAD"] = str(lib)
    env.update(extra or {})
    return env


def run_once(cmd, env) -> tuple[float, int, float]:
    """ops/s, peak RSS (KiB) and CPU seconds (user + system) of one run. The command runs under
    programs/peakrss.c, which reports its peak RSS: ru_maxrss of a child of this harness would be at
    least the harness's own (Linux keeps the high-water mark across fork and exec)."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([str(BUILD / "peakrss"), *map(str, cmd)], env=env, stdout=out,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)  # the launcher's usage includes its child's CPU
        out.seek(0)
        text = out.read()
    m, peak = re.search(r"ops_per_sec (\d+)", text), re.search(r"^peak_rss_kib (\d+)$", text, re.M)
    if os.waitstatus_to_exitcode(status) != 0 or not m or not peak:
        raise RuntimeError(f"{cmd} failed (status {status}): {text[-300:]}")
    return float(m.group(1)), int(peak.group(1)), usage.ru_utime + usage.ru_stime
