"""`hakwatch top` (a live view a person leaves open) and `hakwatch snapshot` (the same, once).

Both attach to one process like `attach --pid`, read the maps every interval and show where its
memory is (the layers, the biggest live classes, the kernel's RSS beside the allocator's estimate)
and rates: blocks per class, frees per route, refills per stage, SuperSlabs, memory syscalls per
second and per thousand allocations, page faults.
"""

import json
import os
import time

import click

from hakwatch.errors import friendly
from hakwatch.contract.layout import load
from hakwatch.read.reader import Target

MIB = 1 << 20


def _delta(a: dict, b: dict) -> dict:
    return {k: b.get(k, 0) - a.get(k, 0) for k in b}


def view(prev: Target, cur: Target, seconds: float) -> dict:
    """Rates between two reads of one target, as a plain dict (what --json prints)."""
    allocs = cur.total_allocs - prev.total_allocs
    sc = {n: (cur.syscalls[n].calls if n in cur.syscalls else 0) - (prev.syscalls[n].calls if n in prev.syscalls else 0)
          for n in load().syscalls}
    stages: dict[str, int] = {}
    for size, st in cur.refills.items():
        for stage, n in st.items():
            stages[stage] = stages.get(stage, 0) + n - prev.refills.get(size, {}).get(stage, 0)
    per_class = _delta(prev.allocs, cur.allocs)
    mem = cur.memory
    return {
        "pid": cur.pid, "comm": cur.comm, "seconds": round(seconds, 3),
        "allocs_per_s": allocs / seconds,
        "top_classes_per_s": {k: v / seconds for k, v in sorted(per_class.items(), key=lambda kv: -kv[1])[:8] if v},
        "frees_per_s": {k: v / seconds for k, v in _delta(prev.frees, cur.frees).items()},
        "refills_per_s": {k: v / seconds for k, v in stages.items()},
        "superslabs": cur.superslabs(),
        "superslab_events": _delta(prev.superslab_events, cur.superslab_events),
        "syscalls_per_s": {k: v / seconds for k, v in sc.items()},
        # the churn alert's ratio (HakmemSyscallChurn), of the same syscalls
        "syscalls_per_1k_allocs": 1000 * sum(sc[n] for n in load().churn_syscalls) / allocs if allocs else 0.0,
        "page_faults_per_s": (cur.page_faults - prev.page_faults) / seconds,
        "memory_bytes": dict(mem.layers) if mem else {},
        "mapped_bytes": mem.mapped if mem else 0,
        "resident_estimate_bytes": mem.resident_estimate if mem else 0,
        "top_live_bytes": dict(sorted(mem.live_bytes.items(), key=lambda kv: -kv[1])[:6]) if mem else {},
        "process_resident_bytes": cur.resident or {},
    }


def render(v: dict) -> str:
    def row(title, d):
        return f"  {title:<20}" + "  ".join(f"{k} {n:,.0f}" for k, n in d.items())

    def mib(title, d):
        return f"  {title:<20}" + "  ".join(f"{k} {n / MIB:,.1f}" for k, n in d.items() if n)
    return "\n".join([
        f"hakwatch top: pid {v['pid']} ({v['comm']}), last {v['seconds']:.1f} s",
        mib("memory MiB", v["memory_bytes"]),
        mib("", {"mapped": v["mapped_bytes"], "resident (est.)": v["resident_estimate_bytes"]}),
        mib("RSS MiB (kernel)", v["process_resident_bytes"]),
        mib("live MiB by class", v["top_live_bytes"]),
        row("allocations/s", {"": v["allocs_per_s"]}),
        row("busiest classes/s", v["top_classes_per_s"]),
        row("frees/s by route", v["frees_per_s"]),
        row("refills/s by stage", v["refills_per_s"]),
        row("superslabs", v["superslabs"]),
        row("superslab events", v["superslab_events"]),
        row("syscalls/s", v["syscalls_per_s"]),
        f"  {'syscalls/1k allocs':<20}{v['syscalls_per_1k_allocs']:.3f}",
        row("page faults/s", {"": v["page_faults_per_s"]}),
    ])


def _open(pid_text: str):
    from hakwatch.attach.bpf import Probes
    from hakwatch.errors import HakwatchError
    from hakwatch.read.reader import Reader
    from hakwatch.attach.targets import check_pid, comm_of, library_of

    pid = check_pid(pid_text)
    mapping = library_of(pid)
    if not mapping:
        raise HakwatchError(f"process {pid} ({comm_of(pid)}) does not use libhakmem")
    probes = Probes(mapping.lasting_path())
    try:
        if not probes.watch_running(mapping, comm_of(pid)):
            raise HakwatchError(f"process {pid} exited while hakwatch attached")
    except BaseException:
        probes.close()
        raise
    from hakwatch.read.live import LiveReadings
    return pid, probes, Reader(probes, retention_s=3600, live=LiveReadings())


def _read(reader, pid) -> Target | None:
    return reader.read().get(pid)


@click.command()
@click.option("--pid", required=True, help="The process to look at.")
@click.option("--duration", type=click.FloatRange(0.1), default=5.0, show_default=True, help="Seconds to watch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def snapshot(pid, duration, as_json):
    """Watch one process for a while and print what its allocator and the kernel did (like syscount).

    \b
    Examples:
      sudo hakwatch snapshot --pid 4242 --duration 10
      sudo hakwatch snapshot --pid 4242 --json | jq .syscalls_per_1k_allocs
    """
    friendly(_snapshot)(pid, duration, as_json)


def _snapshot(pid_text, duration, as_json):
    pid, probes, reader = _open(pid_text)
    try:
        first, t0 = _read(reader, pid), time.monotonic()
        time.sleep(duration)
        last = _read(reader, pid)
        v = view(first, last, time.monotonic() - t0)
    except BaseException:
        probes.close()
        raise
    probes.close_in_background()
    click.echo(json.dumps(v, indent=1) if as_json else render(v))


@click.command()
@click.option("--pid", required=True, help="The process to look at.")
@click.option("--interval", type=click.FloatRange(0.2), default=2.0, show_default=True, help="Seconds between refreshes.")
def top(pid, interval):
    """A live view of one process's allocator and memory syscalls; Ctrl-C ends it.

    \b
    Example:
      sudo hakwatch top --pid 4242
    """
    friendly(_top)(pid, interval)


def _top(pid_text, interval):
    pid, probes, reader = _open(pid_text)
    with probes:
        prev, t = _read(reader, pid), time.monotonic()
        while True:
            time.sleep(interval)
            cur, now = _read(reader, pid), time.monotonic()
            if cur is None or cur.exited_ns:
                click.echo(f"hakwatch: process {pid} exited")
                return
            click.echo("\x1b[H\x1b[2J" + render(view(prev, cur, now - t)) if os.isatty(1) else render(view(prev, cur, now - t)) + "\n")
            prev, t = cur, now
