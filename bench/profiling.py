"""The cost of profiling: every bench workload under libhakmem while hakwatch's profile program is
attached (allocation samples at the default interval, with their stacks; the stacks of SuperSlab,
large-block and syscall events; the counters), against the same runs on a copy of the library that
it does not watch, in interleaved pairs of alternating order (the ratio is the median of the pairs'
ratios).

    sudo .venv/bin/python bench/profiling.py            # into bench/results.json and RESULTS.md
    sudo .venv/bin/python bench/profiling.py --reps 2 --no-write

Needs root (it loads the BPF program, as `hakwatch profile` does).
"""

import argparse
import json
import os
import statistics
import sys

from run import build
from workloads import HAKMEM, ROOT, env_for, run_once, say, workloads

sys.path.insert(0, str(ROOT))


def measure(reps: int, quick: bool) -> dict:
    from hakwatch.attach.bpf import Probes

    unwatched = HAKMEM.with_name("libhakmem-unprofiled.so")  # same code, another inode: not watched
    unwatched.write_bytes(HAKMEM.read_bytes())
    out = {"reps": reps, "workloads": {}}
    try:
        with Probes(str(HAKMEM), follow_init=True, profile=True) as probes:
            for name, w in workloads(quick).items():
                for threads in (1, 2):
                    cmd = w["cmd"](threads)
                    before = _sampled_bytes(probes)
                    watched, plain = [], []
                    for i in range(reps):  # the pair's order alternates: what runs first gains or loses
                        for lib, into in ((unwatched, plain), (HAKMEM, watched))[::1 if i % 2 else -1]:
                            into.append(run_once(cmd, env_for(lib, w.get("env")))[0])
                    ratio = statistics.median(a / b for a, b in zip(watched, plain))
                    sampled = (_sampled_bytes(probes) - before) / reps
                    say(f"profiling: {name} {threads}t: {ratio:.3f} of unwatched, {sampled / 2**20:,.0f} MiB "
                        "allocated a run (the samples' estimate)")
                    out["workloads"].setdefault(name, {})[threads] = {
                        "ratio": ratio, "watched": statistics.median(watched), "unwatched": statistics.median(plain),
                        "sampled_bytes_per_run": sampled}
                    probes.table("sites").clear()  # the next workload's samples, and room for its stacks
                    probes.table("live").clear()
                    probes.table("stacks").clear()
    finally:
        unwatched.unlink()
    return out


def _sampled_bytes(probes) -> int:
    """The bytes the allocation samples so far stand for (their weights): the bytes allocated, estimated;
    over the mean interval (2 MiB), about the number of samples."""
    return sum(v.bytes for k, v in probes.table("sites").items() if k.event == 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=6, help="pairs of runs per workload and thread count")
    ap.add_argument("--quick", action="store_true", help="the workloads' shorter forms")
    ap.add_argument("--no-write", action="store_true", help="print only; leave bench/results.json and RESULTS.md")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/profiling.py: needs root (it loads BPF programs)")
    build()
    res = measure(args.reps, args.quick)
    res["argv"] = " ".join(sys.argv[1:])
    print(json.dumps(res, indent=1))
    if not args.no_write:
        from report import keep
        keep("profiling", res)
        say("profiling: wrote bench/results.json and bench/RESULTS.md")


if __name__ == "__main__":
    main()
