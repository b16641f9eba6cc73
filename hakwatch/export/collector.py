"""The Prometheus collector: reads the BPF maps and the processes at scrape time and yields metric
families with the names and labels of DESIGN.md (client_python's custom collector pattern).

Every family is a row of FAMILIES: its name, type, help, the labels after the row's own (pid and comm,
or the group's key), and what one process or group gives it. Rows come from the Reader, one per pid,
or from hakwatch/read/groups.py, one per group: series per pid are a grouping whose key is the pid.
"""

import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from hakwatch import __version__
from hakwatch.export import metrics as m
from hakwatch.read.groups import Groups
from hakwatch.contract.layout import load
from hakwatch.attach.library import library_version
from hakwatch.read.reader import Reader, Target


# Buckets exported: 512 ns .. ~1 s. The kernel keeps all 40 log2 slots; faster calls fall in the first
# bucket and slower ones in +Inf. Half the samples of every slot, and scrapes stay cheap (each bucket is
# a series per process and syscall).
FIRST_SLOT, LAST_SLOT = 8, 29


def _buckets(hist: list[int], sum_ns: int):
    """Log2 histogram of nanoseconds -> cumulative (le seconds, count) buckets, +Inf last."""
    out, acc = [], 0
    for i in range(len(hist)):
        acc += hist[i]
        if FIRST_SLOT <= i <= LAST_SLOT:
            out.append((repr(2.0 ** (i + 1) / 1e9), acc))
    out.append(("+Inf", acc))
    return out, sum_ns / 1e9


def _syscalls(t: Target, field: str):
    for name in load().syscalls:
        s = t.syscalls.get(name)
        yield [name], getattr(s, field) if s else 0


def _syscall_durations(t: Target):
    for name, s in t.syscalls.items():
        yield [name], _buckets(s.hist, s.sum_ns)


def _refill_durations(t: Target):
    by_class_stage: dict[tuple[int, str], tuple[list[int], list[int]]] = {}
    slots = load().hist_slots
    for (size, stage, slot), (n, ns) in t.refill_latency.items():
        hist, total = by_class_stage.setdefault((size, stage), ([0] * slots, [0]))
        hist[min(slot, slots - 1)] += n
        total[0] += ns
    for (size, stage), (hist, total) in by_class_stage.items():
        yield [str(size), stage], _buckets(hist, total[0])


def _memory(fn):
    """A family of the memory gauges: nothing before the process's first flush (or reading)."""
    return lambda t: fn(t.memory) if t.memory is not None else ()


@dataclass(frozen=True)
class Family:
    name: str
    kind: type
    help: str
    labels: tuple[str, ...]
    samples: Callable[[Target], Iterable[tuple[list[str], object]]]  # label values, value (or buckets, sum)
    only_if_any: bool = False  # yielded only when some row has a sample (--detail refill)


FAMILIES = (
    Family(m.ALLOCS, CounterMetricFamily, "Blocks handed out, by size class (block size in bytes) or large", ("class",),
           lambda t: (([c], n) for c, n in t.allocs.items())),
    Family(m.FREES, CounterMetricFamily, "Blocks freed, by route", ("route",),
           lambda t: (([r], n) for r, n in t.frees.items())),
    # a class x stage pair that never happened is no series (6 stages x 52 classes)
    Family(m.REFILLS, CounterMetricFamily, "Thread-cache refills, by class and the stage that served them", ("class", "stage"),
           lambda t: (([str(size), stage], n) for size, stages in t.refills.items() for stage, n in stages.items() if n)),
    Family(m.REFILL_OBJECTS, CounterMetricFamily, "Blocks brought into thread caches by refills", ("class",),
           lambda t: (([str(size)], n) for size, n in t.refill_objects.items())),
    Family(m.SUPERSLAB_EVENTS, CounterMetricFamily, "SuperSlab (2 MiB) events", ("event",),
           lambda t: (([e], n) for e, n in t.superslab_events.items())),
    Family(m.SUPERSLABS, GaugeMetricFamily, "SuperSlabs in use (live) and empty in the LRU (cached)", ("state",),
           lambda t: (([s], n) for s, n in t.superslabs().items())),
    Family(m.LARGE_EVENTS, CounterMetricFamily, "Large blocks mapped and unmapped", ("event",),
           lambda t: (([e], n) for e, n in t.large_events.items())),
    Family(m.HEAP_ERRORS, CounterMetricFamily, "Heap misuse the allocator detected (each also on the process's stderr)",
           ("kind",), lambda t: (([k], n) for k, n in t.heap_errors.items())),
    Family(m.SYSCALLS, CounterMetricFamily, "Memory syscalls made by the process", ("syscall",),
           lambda t: _syscalls(t, "calls")),
    Family(m.SYSCALL_BYTES, CounterMetricFamily, "Bytes covered by those syscalls (length argument; 0 for brk)",
           ("syscall",), lambda t: _syscalls(t, "bytes")),
    Family(m.SYSCALL_DURATION, HistogramMetricFamily, "Time from syscall entry to exit", ("syscall",),
           _syscall_durations),
    Family(m.PAGE_FAULTS, CounterMetricFamily, "Page faults taken in user mode", (),
           lambda t: [([], t.page_faults)]),
    Family(m.REQUESTED_BYTES, CounterMetricFamily, "Bytes the program asked for (malloc's argument)", (),
           _memory(lambda mem: [([], mem.requested)])),
    Family(m.ALLOCATED_BYTES, CounterMetricFamily, "Bytes handed out: class sizes, large blocks' mappings", (),
           _memory(lambda mem: [([], mem.allocated)])),
    Family(m.LIVE_BYTES, GaugeMetricFamily, "Bytes handed out and not freed, by size class or large (classes with live "
           "blocks only)", ("class",), _memory(lambda mem: (([c], n) for c, n in mem.live_bytes.items()))),
    Family(m.MEMORY_BYTES, GaugeMetricFamily, "Where the allocator's mapped bytes are; the layers add up to "
           "hakmem_mapped_bytes", ("layer",), _memory(lambda mem: (([layer], n) for layer, n in mem.layers.items()))),
    Family(m.MAPPED_BYTES, GaugeMetricFamily, "Bytes the allocator has mapped (its own mmap less munmap)", (),
           _memory(lambda mem: [([], mem.mapped)])),
    Family(m.RESIDENT_ESTIMATE, GaugeMetricFamily, "The allocator's estimate of its resident bytes (pages written and "
           "not purged)", (), _memory(lambda mem: [([], mem.resident_estimate)])),
    Family(m.PROCESS_RESIDENT, GaugeMetricFamily, "The process's resident bytes by kind, from /proc/PID/status",
           ("kind",), lambda t: (([k], n) for k, n in (t.resident or {}).items())),
    Family(m.REFILL_DURATION, HistogramMetricFamily, "Refill duration (--detail refill only)", ("class", "stage"),
           _refill_durations, only_if_any=True),
)


class HakwatchCollector:
    def __init__(self, reader: Reader, library: str | None, label: str | None = None, group_by: str = "pid"):
        """`group_by`: "pid" for series per process (labels pid and comm), else a key of hakwatch/read/groups.py
        (series per group, labelled by the key; grouped by comm, the label is comm, so the rules and
        dashboards that sum by pid and comm keep working)."""
        self.reader = reader
        self.groups = Groups(group_by) if group_by != "pid" else None
        if self.groups:
            reader.before_forgetting = self.groups.forget
        self.library = label or library or ""
        self.library_version = library_version(library) if library else ""
        try:
            import bcc
            bcc_version = getattr(bcc, "__version__", "unknown")
        except ImportError:
            bcc_version = "missing"
        self.build = {"version": __version__, "bcc_version": bcc_version, "kernel": os.uname().release}

    def describe(self):
        return []  # registration stays cheap: nothing is read until a scrape

    def _rows(self) -> tuple[int, dict[str, list[str]], dict]:
        """(processes watched, each row's own label values, the rows: pid or group -> Target)."""
        if self.groups:
            raws = self.reader.read_raw()
            rows = self.groups.fold(raws)
            return len(raws), {name: [name] for name in rows}, rows
        rows = self.reader.read()
        return len(rows), {pid: [str(pid), t.comm] for pid, t in rows.items()}, rows

    def collect(self):
        start = time.perf_counter()
        self.reader.expire()
        watched, own, rows = self._rows()
        key = [self.groups.by] if self.groups else ["pid", "comm"]
        info = GaugeMetricFamily(m.TARGET_INFO, "A watched process (or group), the libhakmem it maps, its control "
                                 "group (container, service), and what its runtime keeps from libhakmem "
                                 "(hidden_by: pymalloc, a Python without PYTHONMALLOC=malloc)",
                                 labels=key + ["library", "version"] + ([] if self.groups else ["cgroup"]) + ["hidden_by"])
        members = GaugeMetricFamily(m.GROUP_PROCESSES, "Processes of the group alive now (--group-by)", labels=key)
        families = [(f, f.kind(f.name, f.help, labels=key + list(f.labels))) for f in FAMILIES]
        seen = set()
        for name, t in sorted(rows.items()):
            lv = own[name]
            info.add_metric(lv + [self.library, self.library_version] + ([] if self.groups else [t.cgroup]) +
                            [t.hidden_by], 1)
            if self.groups:
                members.add_metric(lv, t.members)
            for f, fam in families:
                for labels, v in f.samples(t):
                    if f.kind is HistogramMetricFamily:
                        fam.add_metric(lv + labels, *v)
                    else:
                        fam.add_metric(lv + labels, v)
                    seen.add(f.name)
        yield info
        yield from (fam for f, fam in families if not f.only_if_any or f.name in seen)
        if self.groups:
            yield members
        yield GaugeMetricFamily(m.TARGETS, "Processes watched now (exited ones until --retention ends)", value=watched)
        yield CounterMetricFamily(m.TARGETS_DROPPED, "Processes not watched because --max-targets was reached",
                                  value=self.reader.dropped())
        build = GaugeMetricFamily(m.BUILD_INFO, "hakwatch build", labels=list(self.build))
        build.add_metric(list(self.build.values()), 1)
        yield build
        yield GaugeMetricFamily(m.SCRAPE_DURATION, "Time the last scrape took to read the maps",
                                value=time.perf_counter() - start)
