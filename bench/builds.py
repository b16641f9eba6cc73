"""Two builds of libhakmem head to head: "measure before and after" a change to the allocator.

    .venv/bin/python bench/builds.py --base 5493b06            # the work tree's libhakmem against that commit's
    .venv/bin/python bench/builds.py --base HEAD~1 --pairs 16 --only xmalloc,random_mixed
    .venv/bin/python bench/builds.py --base HEAD --floor       # that build against a copy of itself

Per workload and thread count: the median (min-max) of the ratios of interleaved pairs, new over base,
the pair's order alternating (new first, then base first, ...): on these machines whichever runs first
in a fixed order gains or loses several percent. `--floor` compares the base with a copy of itself, the
noise floor that a difference must clear. Then what timing cannot blur: instructions under callgrind
per malloc/free pair and for fixed work (random_mixed and xmalloc at 1 thread, xmalloc at 2).
Prints a table; writes nothing. Time nothing else meanwhile: a busy second core moves ratios by 20%.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import build, callgrind_instructions, callgrind_pairs
from workloads import BUILD, HAKMEM, ROOT, env_for, run_once, say, workloads

FIXED_WORK = {
    "random_mixed 1 thread": [BUILD / "random_mixed", "200000", "4096", "1234567", "1", "1"],
    "xmalloc 1 thread": [BUILD / "xmalloc", "1", "400000"],
    "xmalloc 2 threads": [BUILD / "xmalloc", "2", "400000"],
}


def build_at(rev: str, into: Path) -> Path:
    """libhakmem as commit `rev` has it, built in `into`."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                      capture_output=True).returncode:
        sys.exit(f"bench/builds.py: {rev!r} is no commit of this repository")
    tree = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "libhakmem", "probes"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=tree.stdout, check=True)
    subprocess.run(["make", "-s", "-C", str(into / "libhakmem")], check=True)
    return into / "libhakmem" / "build" / "libhakmem.so"


def head_to_head(new: Path, base: Path, pairs: int, only: list[str], quick: bool) -> list[tuple]:
    rows = []
    for name, wl in workloads(quick).items():
        if only and name not in only:
            continue
        for threads in (1, 2):
            say(f"builds: {name}, {threads} thread(s), {pairs} pairs")
            ratios = []
            for i in range(pairs):
                order = (new, base) if i % 2 == 0 else (base, new)
                ops = {lib: run_once(wl["cmd"](threads), env_for(lib, wl.get("env")))[0] for lib in order}
                ratios.append(ops[new] / ops[base])
            rows.append((name, threads, statistics.median(ratios), min(ratios), max(ratios)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare with (its libhakmem is built apart)")
    ap.add_argument("--floor", action="store_true", help="compare the base with a copy of itself instead")
    ap.add_argument("--pairs", type=int, default=16, help="interleaved pairs per workload and thread count")
    ap.add_argument("--only", default="", help="comma-separated workloads: larson,xmalloc,random_mixed,large,python")
    ap.add_argument("--quick", action="store_true", help="the workloads' shorter forms")
    ap.add_argument("--record", metavar="TITLE", help="also keep the tables in bench/results.json and RESULTS.md, "
                    "under this title (what the change is)")
    args = ap.parse_args()
    only = [w for w in args.only.split(",") if w]
    unknown = set(only) - set(workloads(args.quick))
    if unknown:
        ap.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    build()
    with tempfile.TemporaryDirectory(prefix="hakmem-base-") as tmp:
        base = build_at(args.base, Path(tmp))
        new = HAKMEM
        if args.floor:
            new = Path(tmp) / "libhakmem-copy.so"
            shutil.copy2(base, new)
        what = f"{args.base} against a copy of itself" if args.floor else f"the work tree against {args.base}"
        rows = head_to_head(new, base, args.pairs, only, args.quick)
        say("builds: callgrind")
        pair = callgrind_pairs({"new": new, "base": base})
        fixed = {k: (callgrind_instructions(cmd, new), callgrind_instructions(cmd, base)) for k, cmd in FIXED_WORK.items()}
    lines = [f"Throughput, new / base: median of {args.pairs} interleaved pairs (min-max), order alternating.", "",
             "| workload | threads | new / base |", "| --- | --- | --- |"]
    lines += [f"| {name} | {threads} | {med:.3f} ({lo:.2f}-{hi:.2f}) |" for name, threads, med, lo, hi in rows]
    lines += ["", "Instructions (callgrind):", "", "| what | new | base | new / base |", "| --- | --- | --- | --- |",
              f"| per malloc/free pair | {pair['new']:.1f} | {pair['base']:.1f} | {pair['new'] / pair['base']:.4f} |"]
    lines += [f"| {k}, whole run | {a:,} | {b:,} | {a / b:.4f} |" for k, (a, b) in fixed.items()]
    print(f"## libhakmem builds: {what}\n\n" + "\n".join(lines))
    if args.record:
        record(args.record, " ".join(sys.argv[1:]), lines)


def record(title: str, argv: str, lines: list[str]):
    """Into bench/results.json's `builds`, by title, and RESULTS.md (bench/report.py)."""
    from report import keep
    keep("builds", {title: {"argv": argv, "lines": lines}}, merge=True)
    say("builds: wrote bench/results.json and bench/RESULTS.md")


if __name__ == "__main__":
    main()
