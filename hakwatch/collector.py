"""The Prometheus collector: reads the BPF maps at scrape time and yields metric families with the
names and labels of DESIGN.md (client_python's custom collector pattern)."""

import os
import time

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from hakwatch import __version__, metrics as m
from hakwatch.groups import Groups
from hakwatch.layout import load
from hakwatch.library import library_version
from hakwatch.reader import Reader


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


class HakwatchCollector:
    def __init__(self, reader: Reader, library: str | None, label: str | None = None, group_by: str = "pid"):
        """`group_by`: "pid" for series per process (labels pid and comm), else a key of hakwatch/groups.py
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

    def collect(self):
        start = time.perf_counter()
        self.reader.expire()
        if self.groups:
            raws = self.reader.read_raw()
            watched, rows = len(raws), self.groups.fold(raws)
        else:
            rows = self.reader.read()
            watched = len(rows)
        L = [self.groups.by] if self.groups else ["pid", "comm"]
        allocs = CounterMetricFamily(m.ALLOCS, "Blocks handed out, by size class (block size in bytes) or large", labels=L + ["class"])
        frees = CounterMetricFamily(m.FREES, "Blocks freed, by route", labels=L + ["route"])
        refills = CounterMetricFamily(m.REFILLS, "Thread-cache refills, by class and the stage that served them", labels=L + ["class", "stage"])
        objects = CounterMetricFamily(m.REFILL_OBJECTS, "Blocks brought into thread caches by refills", labels=L + ["class"])
        ss_ev = CounterMetricFamily(m.SUPERSLAB_EVENTS, "SuperSlab (2 MiB) events", labels=L + ["event"])
        ss = GaugeMetricFamily(m.SUPERSLABS, "SuperSlabs in use (live) and empty in the LRU (cached)", labels=L + ["state"])
        large = CounterMetricFamily(m.LARGE_EVENTS, "Large blocks mapped and unmapped", labels=L + ["event"])
        heap_errors = CounterMetricFamily(m.HEAP_ERRORS, "Heap misuse the allocator detected (each also on the process's stderr)",
                                          labels=L + ["kind"])
        sc = CounterMetricFamily(m.SYSCALLS, "Memory syscalls made by the process", labels=L + ["syscall"])
        sc_bytes = CounterMetricFamily(m.SYSCALL_BYTES, "Bytes covered by those syscalls (length argument; 0 for brk)", labels=L + ["syscall"])
        sc_dur = HistogramMetricFamily(m.SYSCALL_DURATION, "Time from syscall entry to exit", labels=L + ["syscall"])
        faults = CounterMetricFamily(m.PAGE_FAULTS, "Page faults taken in user mode", labels=L)
        info = GaugeMetricFamily(m.TARGET_INFO, "A watched process (or group), the libhakmem it maps and its control group "
                                 "(container, service)", labels=L + ["library", "version"] + ([] if self.groups else ["cgroup"]))
        requested = CounterMetricFamily(m.REQUESTED_BYTES, "Bytes the program asked for (malloc's argument)", labels=L)
        allocated = CounterMetricFamily(m.ALLOCATED_BYTES, "Bytes handed out: class sizes, large blocks' mappings", labels=L)
        live = GaugeMetricFamily(m.LIVE_BYTES, "Bytes handed out and not freed, by size class or large (classes with live blocks only)", labels=L + ["class"])
        layers = GaugeMetricFamily(m.MEMORY_BYTES, "Where the allocator's mapped bytes are; the layers add up to hakmem_mapped_bytes", labels=L + ["layer"])
        mapped = GaugeMetricFamily(m.MAPPED_BYTES, "Bytes the allocator has mapped (its own mmap less munmap)", labels=L)
        resident_est = GaugeMetricFamily(m.RESIDENT_ESTIMATE, "The allocator's estimate of its resident bytes (pages written and not purged)", labels=L)
        rss = GaugeMetricFamily(m.PROCESS_RESIDENT, "The process's resident bytes by kind, from /proc/PID/status", labels=L + ["kind"])
        refill_dur = HistogramMetricFamily(m.REFILL_DURATION, "Refill duration (--detail refill only)", labels=L + ["class", "stage"])
        members = GaugeMetricFamily(m.GROUP_PROCESSES, "Processes of the group alive now (--group-by)", labels=L)
        for name, t in sorted(rows.items()):
            lv = [str(name)] if self.groups else [str(name), t.comm]
            if self.groups:
                members.add_metric(lv, t.members)
            info.add_metric(lv + [self.library, self.library_version] + ([] if self.groups else [t.cgroup]), 1)
            if t.memory is not None:
                mem = t.memory
                requested.add_metric(lv, mem.requested)
                allocated.add_metric(lv, mem.allocated)
                for cls, n in mem.live_bytes.items():
                    live.add_metric(lv + [cls], n)
                for layer, n in mem.layers.items():
                    layers.add_metric(lv + [layer], n)
                mapped.add_metric(lv, mem.mapped)
                resident_est.add_metric(lv, mem.resident_estimate)
            for kind, n in (t.resident or {}).items():
                rss.add_metric(lv + [kind], n)
            for cls, n in t.allocs.items():
                allocs.add_metric(lv + [cls], n)
            for route, n in t.frees.items():
                frees.add_metric(lv + [route], n)
            for size, stages in t.refills.items():
                for stage, n in stages.items():
                    if n:  # a class x stage pair that never happened is no series (6 stages x 52 classes)
                        refills.add_metric(lv + [str(size), stage], n)
            for size, n in t.refill_objects.items():
                objects.add_metric(lv + [str(size)], n)
            for ev, n in t.superslab_events.items():
                ss_ev.add_metric(lv + [ev], n)
            for state, n in t.superslabs().items():
                ss.add_metric(lv + [state], n)
            for ev, n in t.large_events.items():
                large.add_metric(lv + [ev], n)
            for kind, n in t.heap_errors.items():
                heap_errors.add_metric(lv + [kind], n)
            for name in load().syscalls:
                s = t.syscalls.get(name)
                sc.add_metric(lv + [name], s.calls if s else 0)
                sc_bytes.add_metric(lv + [name], s.bytes if s else 0)
                if s:
                    buckets, total = _buckets(s.hist, s.sum_ns)
                    sc_dur.add_metric(lv + [name], buckets, total)
            faults.add_metric(lv, t.page_faults)
            by_cs: dict[tuple[int, str], tuple[list[int], list[int]]] = {}
            slots = load().hist_slots
            for (size, stage, slot), (n, ns) in t.refill_latency.items():
                hist, total = by_cs.setdefault((size, stage), ([0] * slots, [0]))
                hist[min(slot, slots - 1)] += n
                total[0] += ns
            for (size, stage), (hist, total) in by_cs.items():
                buckets, seconds = _buckets(hist, total[0])
                refill_dur.add_metric(lv + [str(size), stage], buckets, seconds)
        yield from (allocs, frees, refills, objects, ss_ev, ss, large, heap_errors, sc, sc_bytes, sc_dur, faults, info,
                    requested, allocated, live, layers, mapped, resident_est, rss)
        if self.groups:
            yield members
        if any(t.refill_latency for t in rows.values()):
            yield refill_dur
        yield GaugeMetricFamily(m.TARGETS, "Processes watched now (exited ones until --retention ends)", value=watched)
        yield CounterMetricFamily(m.TARGETS_DROPPED, "Processes not watched because --max-targets was reached", value=self.reader.dropped())
        build = GaugeMetricFamily(m.BUILD_INFO, "hakwatch build", labels=list(self.build))
        build.add_metric(list(self.build.values()), 1)
        yield build
        yield GaugeMetricFamily(m.SCRAPE_DURATION, "Time the last scrape took to read the maps", value=time.perf_counter() - start)
