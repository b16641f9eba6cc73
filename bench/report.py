"""bench/RESULTS.md and bench/results.png from the results run.py gathered."""

import json
import math
from pathlib import Path

RESULTS_JSON = Path(__file__).resolve().parent / "results.json"
# Sections other scripts write (fleet.py, profiling.py, builds.py, suite.py): a run of run.py keeps them.
OTHER_SECTIONS = ("fleet", "profiling", "builds", "mimalloc_bench")


def keep(section: str, value: dict, merge: bool = False):
    """One section of bench/results.json replaced (merge: its entries updated), the rest kept as the
    last runs left it; RESULTS.md written again from them all."""
    results = json.loads(RESULTS_JSON.read_text())
    results[section] = {**results.get(section, {}), **value} if merge else value
    RESULTS_JSON.write_text(json.dumps(results, indent=1, default=str))
    write_markdown(results, RESULTS_JSON.with_name("RESULTS.md"), results.get("argv", ""))


def _fmt_ops(x: float) -> str:
    return f"{x / 1e6:.2f} M" if x >= 1e5 else f"{x / 1e3:.1f} k"


def write_markdown(res: dict, path: Path, argv: str):
    v = res["versions"]
    lines = [
        "# Benchmark results",
        "",
        f"Made by `bench/run.sh {argv}`".rstrip() + f" ({res['reps']} repetitions per cell, interleaved across "
        "allocators). ops/s is the median (min-max); RSS the median peak RSS (the workload's own ru_maxrss, "
        "through the small launcher `bench/programs/peakrss.c`: a child of the Python harness would report at "
        "least the harness's ~60 MiB, which Linux carries across fork and exec); syscalls the memory syscalls "
        "(mmap, munmap, madvise, mremap, brk) of one more run under `strace -f -c` (for larson, a run of fixed "
        "work: see there).",
        "",
        f"Machine: {v['cpu']}, {v['cpus']} CPUs, kernel {v['kernel']}, gcc {v['gcc']}. Allocators: glibc "
        f"{v['glibc']}, mimalloc {v['mimalloc']}, jemalloc {v['jemalloc']}, tcmalloc {v['tcmalloc']} (Debian "
        f"packages, by LD_PRELOAD), libhakmem {v['hakmem']}. No benchmark here calls aligned_alloc, so Debian "
        "mimalloc 2.0.9's misaligned aligned_alloc for alignments of 256-1024 plays no part.",
        "",
    ]
    for name, by_threads in res["workloads"].items():
        lines += [f"## {name}", "", res["about"][name], ""]
        for t, by_alloc in by_threads.items():
            best_peer = max(r["ops"] for a, r in by_alloc.items() if a != "hakmem") if len(by_alloc) > 1 else None
            lines += [f"{t} thread{'s' if int(t) > 1 else ''}:", "",
                      "| allocator | ops/s | vs best peer | peak RSS | mmap | munmap | madvise | mremap | brk | total |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for a, r in sorted(by_alloc.items(), key=lambda kv: -kv[1]["ops"]):
                sc = r["syscalls"]
                vs = f"{r['ops'] / best_peer:.2f}x" if best_peer and a == "hakmem" else ""
                lines.append(f"| {a} | {_fmt_ops(r['ops'])} ({_fmt_ops(r['ops_min'])}-{_fmt_ops(r['ops_max'])}) | {vs} | "
                             f"{r['rss_kib'] / 1024:.1f} MiB | " + " | ".join(str(sc.get(k, 0)) for k in
                             ("mmap", "munmap", "madvise", "mremap", "brk")) + f" | {sum(sc.values())} |")
            lines.append("")
    if res.get("probes"):
        lines += ["## Compiled-in probes, nothing attached", "",
                  "libhakmem against the same source built with every probe compiled out "
                  "(`make -C libhakmem noprobes`), 1 thread:", "",
                  "| workload | with probes | without | ratio | spread (worst-best) |", "| --- | --- | --- | --- | --- |"]
        for w, p in res["probes"].items():
            lines.append(f"| {w} | {_fmt_ops(p['hakmem'])} | {_fmt_ops(p['noprobes'])} | {p['ratio']:.3f} | "
                         f"{p['spread'][0]:.3f}-{p['spread'][1]:.3f} |")
        lines.append("")
    if res.get("probe_instructions"):
        lines += ["The same without timing noise: instructions of fixed-work, single-threaded runs under callgrind "
                  "(`random_mixed 200000 4096 1234567 1 1`, `xmalloc 1 400000`):", "",
                  "| workload | with probes | without | ratio |", "| --- | --- | --- | --- |"]
        for w, p in res["probe_instructions"].items():
            lines.append(f"| {w} | {p['hakmem']:,} | {p['noprobes']:,} | {p['ratio']:.4f} |")
        lines.append("")
    lines += ["## Instructions per malloc/free pair (callgrind)", "",
              "`valgrind --tool=callgrind bench/build/pair` (1M pairs of malloc(32)/free served by the thread "
              "cache) minus `bench/build/empty`, divided by 1M; loop included.", "",
              "| allocator | instructions per pair |", "| --- | --- |"]
    for a, n in res["callgrind"].items():
        lines.append(f"| {a} | {n:.1f} |" if n is not None else f"| {a} | (failed) |")
    lines.append("")
    w = res.get("watching")
    lines += ["## The cost of watching", ""]
    if res.get("watching_argv"):
        lines += [f"(Measured again, later than the tables above, by `bench/run.sh {res['watching_argv']}`.)", ""]
    if isinstance(w, dict):
        pairs = next(iter(w.values()))["pairs"]
        lines += ["larson under libhakmem with `hakwatch attach --lib --retention 5` running and scraped every second, against "
                  "the same runs on a copy of the library that hakwatch does not watch, in "
                  f"{pairs} interleaved pairs; the ratio is the median of the pairs' ratios (this machine's speed "
                  "drifts by up to 30% over tens of seconds). The BPF column is the run time of hakwatch's BPF "
                  "programs during the watched runs, as the kernel counts it (`kernel.bpf_stats_enabled`), over "
                  "those runs' CPU time: the in-process cost without timing noise (probe traps not included). "
                  "hakwatch's CPU is its user+system time over the runs (busy) and over a quiet stretch after "
                  "them (idle), as a share of one core.", "",
                  "| mode | watched / unwatched | BPF share of the workload's CPU | ready to serve | "
                  "hakwatch CPU busy | CPU idle | hakwatch RSS |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for mode, r in w.items():
            lines.append(f"| {mode} | {r['ratio']:.3f} ({_fmt_ops(r['watched'])} / {_fmt_ops(r['unwatched'])}) | "
                         f"{100 * r['bpf_share']:.2f}% | {r['ready_s']:.2f} s | {100 * r['cpu_busy']:.2f}% | {100 * r['cpu_idle']:.2f}% | "
                         f"{r['rss_kib'] / 1024:.0f} MiB |")
        lines += ["", "At 1 thread the other core is free for hakwatch, so the ratio is the in-process cost (probe "
                  "traps and BPF handlers in the workload's threads); at 2 threads hakwatch's scrapes also take CPU "
                  "from the workload. `--detail refill` adds the per-event refill probe: one trap per thread-cache refill."]
        sc = res.get("scrape_cost")
        if sc:
            lines += ["", "hakwatch's own CPU at a 1 s scrape interval against the number of processes it exports "
                      "(exited larson runs kept by `--retention`), 10 scrapes each:", "",
                      "| targets | hakwatch CPU | one scrape | /metrics size |", "| --- | --- | --- | --- |"]
            for n, r in sc.items():
                lines.append(f"| {n} | {100 * r['cpu']:.2f}% | {1000 * r['scrape_s']:.1f} ms | {r['bytes'] / 1024:.0f} KiB |")
    else:
        lines.append(str(w or "not measured (--no-watch)"))
    lines.append("")
    lines += _suite(res.get("mimalloc_bench"))
    lines += _fleet(res.get("fleet"))
    lines += _profiling(res.get("profiling"))
    lines += _builds(res.get("builds"))
    path.write_text("\n".join(lines))


def _fleet(f: dict | None) -> list[str]:
    if not f:
        return []
    command = f"sudo .venv/bin/python bench/fleet.py {f['argv']}".rstrip()
    threads = f.get("threads", 1)
    lines = ["## Many watched processes", "",
             f"Made by `{command}`: {f['processes']} processes of {threads} thread{'s' if threads > 1 else ''} under "
             f"libhakmem (`bench/programs/idle.c`, {f['commands']} command names), one `hakwatch attach --lib` exporting "
             "them, with series per pid, then per command (`--group-by comm`, attach --lib's default), scraped every "
             "15 s and then every 1 s; the processes idle, then busy (each thread allocating every "
             f"{f.get('busy_ms', 1000)} ms, so that every process's counters change between two scrapes). "
             "CPU is hakwatch's user+system time over each window, as a share of one core; "
             "a scrape's duration is the median; RSS is hakwatch's after the scrapes. CPU and RSS include hakwatch's root "
             "helpers (they read the processes' memory for the server; RSS as their proportional sets, shared pages once)"
             " since the runs of 8-thread processes.", ""]
    lines += _fleet_table(f)
    before = f.get("before")
    if before:
        lines += ["", f"Before it, at {before.get('revision', 'an earlier commit')} ({before['processes']} processes of "
                  f"{before.get('threads', 1)} thread, counts as of their flushes only):", ""]
        lines += _fleet_table(before)
    return lines + [""]


def _fleet_table(f: dict) -> list[str]:
    lines = ["| series | scrape interval | hakwatch CPU | one scrape | /metrics size | series | hakwatch RSS | ready in |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for mode, by in f["modes"].items():
        for interval in ("15s", "1s"):
            r = by[interval]
            lines.append(f"| {mode} | {r['interval_s']:.0f} s | {100 * r['cpu']:.2f}% | {1000 * r['scrape_s']:.0f} ms | "
                         f"{r['bytes'] / 1024:,.0f} KiB | {r['series']:,} | {by['rss_kib'] / 1024:.0f} MiB | {by['ready_s']:.1f} s |")
    return lines


def suite_ratios(prog: dict) -> tuple[float, str, float, str]:
    """hakmem's speed against the fastest peer's (>1: faster) and its peak RSS against the smallest's."""
    cells = prog["allocators"]
    peers = {a: c for a, c in cells.items() if a != "hakmem"}
    fastest = min(peers, key=lambda a: peers[a]["time"])
    smallest = min(peers, key=lambda a: peers[a]["rss_kib"])
    return (peers[fastest]["time"] / cells["hakmem"]["time"], fastest,
            cells["hakmem"]["rss_kib"] / peers[smallest]["rss_kib"], smallest)


def suite_spread(prog: dict) -> tuple[float, float, float, float] | None:
    """The same two ratios repetition by repetition (the i-th run of hakmem against the i-th of the
    peer that is fastest, smallest, by median): (speed min, speed max, RSS min, RSS max), or None for a
    row recorded before the runs' peaks were kept."""
    _, fastest, _, smallest = suite_ratios(prog)
    cells = prog["allocators"]
    me = cells["hakmem"]
    if "rss" not in me:
        return None
    speed = [p / h for p, h in zip(cells[fastest]["times"], me["times"])]
    rss = [h / p for h, p in zip(me["rss"], cells[smallest]["rss"])]
    return min(speed), max(speed), min(rss), max(rss)


# The peak-RSS bar a program is held to: at most this many times the smallest peer's.
RSS_BAR = 1.2


def verdict(lo: float, hi: float) -> str:
    """Ahead when every repetition says so, behind when every one says the other, else a tie."""
    return "ahead" if lo > 1 else "behind" if hi < 1 else "tie"


def rss_verdict(lo: float, hi: float) -> str:
    """Where the repetitions' peak-RSS ratios fall against the bar."""
    return f"within {RSS_BAR}x" if hi <= RSS_BAR else f"over {RSS_BAR}x" if lo > RSS_BAR else f"around {RSS_BAR}x"


def geomean(xs) -> float:
    xs = list(xs)
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def _suite(s: dict | None) -> list[str]:
    if not s:
        return []
    lines = ["## mimalloc-bench", "",
             f"Made by `.venv/bin/python bench/suite.py --dir DIR --reps {s['reps']}` on a build of "
             f"github.com/daanx/mimalloc-bench at {s['commit']} (not part of this repository: see bench/suite.py), "
             f"libhakmem at {s.get('hakmem', 'unknown')}. "
             f"Its programs, its command lines (bench.sh) with {s['threads']} threads where they take a count; each "
             "allocator by LD_PRELOAD, repetitions interleaved across allocators. Time: the median of the "
             "repetitions, in seconds or, where the program reports its own measure, mimalloc-bench's relative time "
             "(larson, rptest, xmalloc-test, glibc-thread); lower is better. Speed is the fastest peer's time over "
             "hakmem's (>1: hakmem faster); peak RSS is hakmem's over the smallest peer's. In brackets, the same "
             "ratio repetition by repetition (min-max; each repetition runs the allocators in a rotated order) and "
             "the verdict it gives: for speed, ahead when every repetition says so, behind when every one says the "
             f"other, else a tie; for peak RSS, whether every repetition is within {RSS_BAR}x the smallest peer's, "
             "every one over it, or some each way.", "",
             "| program | command | glibc | mimalloc | jemalloc | tcmalloc | hakmem | speed vs fastest peer | "
             "peak RSS vs smallest |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    speeds, rsss, verdicts, rss_verdicts = [], [], [], []
    for name, prog in s["programs"].items():
        speed, fastest, rss, smallest = suite_ratios(prog)
        speeds.append(speed)
        rsss.append(rss)
        cells = " | ".join(f"{c['time']:.3f} ({c['rss_kib'] / 1024:.1f} MiB)" for c in prog["allocators"].values())
        spread = suite_spread(prog)
        speed_cell, rss_cell = f"{speed:.3f}x ({fastest})", f"{rss:.2f}x ({smallest})"
        if spread:
            lo, hi, rlo, rhi = spread
            verdicts.append(verdict(lo, hi))
            rss_verdicts.append(rss_verdict(rlo, rhi))
            speed_cell += f" [{lo:.2f}-{hi:.2f}: {verdicts[-1]}]"
            rss_cell += f" [{rlo:.2f}-{rhi:.2f}: {rss_verdicts[-1]}]"
        lines.append(f"| {name} | `{prog['command']}` | {cells} | {speed_cell} | {rss_cell} |")
    lines += ["", f"Geometric mean: hakmem {geomean(speeds):.3f}x the fastest peer's speed, {geomean(rsss):.2f}x the "
              f"smallest peer's peak RSS; at or above the fastest peer on {sum(x >= 1 for x in speeds)} of "
              f"{len(speeds)} programs" + (f" (by the repetitions: ahead on {verdicts.count('ahead')}, tied on "
                                          f"{verdicts.count('tie')}, behind on {verdicts.count('behind')}; peak RSS "
                                          f"within {RSS_BAR}x the smallest peer's in every repetition on "
                                          f"{rss_verdicts.count(rss_verdict(0, 0))})" if verdicts else "") + ".", ""]
    return lines


def _builds(b: dict | None) -> list[str]:
    if not b:
        return []
    lines = ["## Allocator changes, head to head", "",
             "Each made by `.venv/bin/python bench/builds.py ...` (the command is under its title): the work tree's "
             "libhakmem against an earlier commit's, in interleaved pairs, and their instructions under callgrind.", ""]
    for title, r in b.items():
        lines += [f"### {title}", "", f"`.venv/bin/python bench/builds.py {r['argv']}`", "", *r["lines"], ""]
    return lines


def _profiling(p: dict | None) -> list[str]:
    if not p:
        return []
    command = f"sudo .venv/bin/python bench/profiling.py {p['argv']}".rstrip()
    lines = ["## The cost of profiling", "",
             f"Made by `{command}`: each workload under libhakmem while the BPF program of `hakwatch profile` "
             "is attached to it (allocation samples at the default 2 MiB mean interval, each with its user stack; "
             "the stacks of SuperSlab, large-block and memory-syscall events; the counters), against the same runs "
             f"on a copy of the library it does not watch, in {p['reps']} interleaved pairs of alternating order; the "
             "ratio is the median of the pairs' ratios. The allocated bytes are the samples' estimate (their weights' "
             "sum); a process takes at most ~500 samples a second (HAKMEM_SAMPLE_MAX_RATE), so where it allocates "
             "GB/s each sample stands for more.", "",
             "| workload | threads | profiled / unprofiled | allocated a run (estimate) |", "| --- | --- | --- | --- |"]
    for name, by_threads in p["workloads"].items():
        for threads, r in by_threads.items():
            lines.append(f"| {name} | {threads} | {r['ratio']:.3f} | {r['sampled_bytes_per_run'] / 2**20:,.0f} MiB |")
    return lines + [""]


def plot(res: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wls = list(res["workloads"])
    fig, axes = plt.subplots(1, len(wls), figsize=(4.2 * len(wls), 3.8), squeeze=False)
    for ax, name in zip(axes[0], wls):
        by_threads = res["workloads"][name]
        allocs = list(next(iter(by_threads.values())))
        width = 0.8 / len(by_threads)
        for i, (t, by_alloc) in enumerate(by_threads.items()):
            xs = [k + i * width for k in range(len(allocs))]
            ax.bar(xs, [by_alloc[a]["ops"] / 1e6 for a in allocs], width, label=f"{t} thread{'s' if int(t) > 1 else ''}")
        ax.set_xticks([k + width * (len(by_threads) - 1) / 2 for k in range(len(allocs))], allocs, rotation=30)
        ax.set_title(name)
        ax.set_ylabel("M ops/s")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
