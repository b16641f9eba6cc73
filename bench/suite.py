"""mimalloc-bench's programs (github.com/daanx/mimalloc-bench), against the same allocators as
bench/run.py, in the same interleaved way, written to bench/RESULTS.md ("mimalloc-bench").

    .venv/bin/python bench/suite.py --dir ~/mimalloc-bench [--reps 3] [--only cfrac,larsonN-sized]

The suite is not part of this repository: build it from its own repository with its own
instructions; DIR is that checkout, with the programs in DIR/out/bench as its build puts them. The
command lines are the suite's own (bench.sh) at 2 threads where a program takes a count, with
mstress and mleak run 10 times longer than bench.sh's defaults so that they last a second or more.
Each cell: the median of the repetitions (the allocators in a rotated order each time), where a
program reports its own measure (larson's relative time, rptest's and glibc-thread's operations,
xmalloc's rtime) that measure, else wall time; peak RSS from programs/peakrss.c, as in run.py. Each
ratio to the best peer is also taken repetition by repetition, and its spread decides ahead, tie or
behind."""

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from report import RESULTS_JSON, keep, rss_verdict, suite_ratios, suite_spread, verdict
from workloads import ALLOCATORS, BUILD, ROOT, choose, env_for, say
from run import build


def relative(pattern: str, scale: float = 1.0, invert: bool = False):
    """A reader of a program's own measure: the number `pattern` captures (scaled), or scale over it."""
    def read(out: str) -> float:
        m = re.search(pattern, out, re.M)
        if not m:
            raise RuntimeError(f"no match for {pattern!r} in: {out[-300:]}")
        x = float(m.group(1))
        return scale / x if invert else x * scale
    return read


def programs(threads: int) -> dict:
    """name -> (argv, stdin file or None, reader or None for wall time); paths as bench.sh has them,
    relative to the build directory (DIR/out/bench), where the programs run."""
    n = str(threads)
    return {
        "cfrac": (["./cfrac", "17545186520507317056371138836327483792789528"], None, None),
        "espresso": (["./espresso", "../../bench/espresso/largest.espresso"], None, None),
        "barnes": (["./barnes"], "../../bench/barnes/input", None),
        "larsonN-sized": (["./larson-sized", "5", "8", "1000", "5000", "100", "4141", n], None,
                          relative(r"relative time: ([0-9.]+)s")),
        "mstressN": (["./mstress", n, "50", "250"], None, None),
        "rptestN": (["./rptest", n, "0", "1", "2", "500", "1000", "100", "8", "16000"], None,
                    relative(r"\.\.\.(\d+) memory ops", 2e6, invert=True)),
        "alloc-test1": (["./alloc-test", "1"], None, None),
        "alloc-testN": (["./alloc-test", n], None, None),
        "xmalloc-testN": (["./xmalloc-test", "-w", n, "-t", "5", "-s", "64"], None,
                          relative(r"^rtime: ([0-9.]+)")),
        "cache-scratch1": (["./cache-scratch", "1", "1000", "1", "2000000", n], None, None),
        "cache-scratchN": (["./cache-scratch", n, "1000", "1", "2000000", n], None, None),
        "cache-thrashN": (["./cache-thrash", n, "1000", "1", "2000000", n], None, None),
        "glibc-simple": (["./glibc-simple"], None, None),
        "glibc-thread": (["./glibc-thread", n], None, relative(r"^\s*([0-9.]+) iterations", 1e9, invert=True)),
        "malloc-large": (["./malloc-large"], None, None),
        "mleak100": (["./mleak", "50"], None, None),
    }


def run_one(argv: list[str], stdin: Path | None, reader, lib, cwd: Path) -> tuple[float, int]:
    """(seconds or the program's own relative time, peak RSS in KiB) of one run."""
    with open(stdin if stdin else "/dev/null") as inp:
        start = time.monotonic()
        p = subprocess.run([str(BUILD / "peakrss"), *argv], stdin=inp, capture_output=True, text=True,
                           env=env_for(lib), cwd=cwd)
        wall = time.monotonic() - start
    peak = re.search(r"^peak_rss_kib (\d+)$", p.stdout, re.M)
    if p.returncode or not peak:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {(p.stdout + p.stderr)[-300:]}")
    return (reader(p.stdout) if reader else wall), int(peak.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, type=Path, help="a mimalloc-bench checkout, built (DIR/out/bench)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per cell (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="the N of the programs that take a thread count")
    ap.add_argument("--only", help="comma-separated programs")
    args = ap.parse_args()
    out = args.dir / "out" / "bench"
    progs = choose(ap, args.only, programs(args.threads), "programs")
    missing = [name for name, (argv, _, _) in progs.items() if not (out / argv[0]).is_file()]
    if missing:
        ap.error(f"not built in {out}: {', '.join(missing)}")
    def commit_of(repo) -> str:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "unknown"
    commit, hakmem = commit_of(args.dir), commit_of(ROOT)
    say("suite: building libhakmem and the launcher")
    build()
    results = {}
    for i, (name, (argv, stdin, reader)) in enumerate(progs.items(), 1):
        say(f"suite: [{i}/{len(progs)}] {name}: {' '.join(argv)} ({args.reps} x {len(ALLOCATORS)} allocators)")
        cells = {a: [] for a in ALLOCATORS}
        order = list(ALLOCATORS.items())
        for rep in range(args.reps):
            # rotated each repetition: on these machines the first of a fixed order gains or loses several percent
            for alloc, lib in order[rep % len(order):] + order[:rep % len(order)]:
                cells[alloc].append(run_one(argv, out / stdin if stdin else None, reader, lib, out))
        results[name] = {
            "command": " ".join(argv) + (f" < {stdin}" if stdin else ""),
            "measure": "relative time" if reader else "seconds",
            "allocators": {a: {"time": statistics.median(t for t, _ in v), "times": [t for t, _ in v],
                               "rss_kib": statistics.median(r for _, r in v), "rss": [r for _, r in v]}
                           for a, v in cells.items()},
        }
        say("suite:   " + summary_line(results[name]))
    if args.only:  # the other programs' rows stay as the last run left them
        previous = json.loads(RESULTS_JSON.read_text()).get("mimalloc_bench", {}).get("programs", {})
        results = {**previous, **results}
    keep("mimalloc_bench", {"commit": commit, "hakmem": hakmem, "reps": args.reps, "threads": args.threads,
                            "programs": results})
    say("suite: wrote bench/RESULTS.md and bench/results.json")


def summary_line(prog: dict) -> str:
    speed, fastest, rss, smallest = suite_ratios(prog)
    lo, hi, rlo, rhi = suite_spread(prog)
    return (f"hakmem {speed:.3f}x the fastest peer ({fastest}; {lo:.2f}-{hi:.2f} by repetition, {verdict(lo, hi)}), "
            f"peak RSS {rss:.2f}x the smallest ({smallest}; {rlo:.2f}-{rhi:.2f}, {rss_verdict(rlo, rhi)})")


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, OSError) as e:
        sys.exit(f"suite: {e}")
