"""Read the BPF maps into plain per-process totals and gauges, and expire targets that exited long
enough ago.

One `read()` walks every map once (and reads each live target's /proc/PID/status); the collector,
`run --summary`, `snapshot` and `top` all use it.
"""

import time
from dataclasses import dataclass, field

from hakwatch.layers import Memory, memory, routes
from hakwatch.layout import load, plain
from hakwatch.procfs import cgroup_of, resident_memory

READ_ATTEMPTS = 4


@dataclass
class SyscallTotals:
    calls: int = 0
    bytes: int = 0
    sum_ns: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * load().hist_slots)  # hist[i]: 2^i <= ns < 2^(i+1)


@dataclass
class Target:
    pid: int
    comm: str
    exited_ns: int = 0
    allocs: dict[str, int] = field(default_factory=dict)         # class size or "large" -> blocks
    frees: dict[str, int] = field(default_factory=dict)          # route -> blocks
    refills: dict[int, dict[str, int]] = field(default_factory=dict)  # class size -> stage -> refills
    refill_objects: dict[int, int] = field(default_factory=dict)
    os_calls: dict[str, tuple[int, int]] = field(default_factory=dict)  # allocator's own: calls, bytes
    superslab_events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(load().ss_events, 0))
    large_events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(load().large_events, 0))
    heap_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(load().heap_errors, 0))
    memory: Memory | None = None    # None until the process's first flush (or a seed) is seen
    syscalls: dict[str, SyscallTotals] = field(default_factory=dict)
    page_faults: int = 0
    refill_latency: dict[tuple[int, str, int], tuple[int, int]] = field(default_factory=dict)  # -> count, sum_ns
    resident: dict[str, int] | None = None  # the kernel's RSS by kind (/proc/PID/status), live processes only
    cgroup: str = ""                        # its control group: the container or service it runs in
    inits: int = 0                          # images of this pid seen (an exec starts the counts over)
    members: int = 1                        # processes in it: more when it is a group (hakwatch/groups.py)

    @property
    def total_allocs(self) -> int:
        return sum(self.allocs.values())

    def superslabs(self) -> dict[str, int]:
        return self.memory.superslabs if self.memory else {"live": 0, "cached": 0, "purged": 0}


def _comm(raw) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")


class Reader:
    def __init__(self, probes, retention_s: float = 60.0):
        self.probes = probes
        self.retention_ns = int(retention_s * 1e9)
        self.layout = load()
        self.cgroups: dict[int, str] = {}
        # Called with the final Targets of the processes expire() is about to forget (hakwatch/groups.py
        # keeps their counts in their group).
        self.before_forgetting = None

    def dropped(self) -> int:
        return sum(v.value for v in self.probes.table("dropped").values())

    def read(self) -> dict[int, Target]:
        lay = self.layout
        out: dict[int, Target] = {}
        for k, v in self.probes.table("targets").items():
            out[k.value] = Target(pid=k.value, comm=_comm(v.comm), exited_ns=v.exited_ns, inits=v.inits,
                                  frees=dict.fromkeys(lay.routes, 0),
                                  os_calls={n: (0, 0) for n in lay.os_calls})
        counters = self.probes.table("counters")
        for k, totals in counters.items():
            t = out.get(k.value)
            if t is None:
                continue
            # A read can race a flush being added (field by field, in BPF): the layers then do not
            # add up to the mapped bytes, which no complete set of flushes breaks. Read it again.
            for _ in range(READ_ATTEMPTS):
                self._fill(t, plain(totals.counters, lay))
                if sum(t.memory.layers.values()) == t.memory.mapped:
                    break
                try:
                    totals = counters[k]
                except KeyError:  # deleted meanwhile (exec, expiry)
                    break
        for k, v in self.probes.table("syscalls").items():
            t = out.get(k.pid)
            if t is not None and k.nr < len(lay.syscalls):
                t.syscalls[lay.syscalls[k.nr]] = SyscallTotals(v.calls, v.bytes, v.sum_ns, list(v.hist))
        for k, v in self.probes.table("faults").items():
            t = out.get(k.value)
            if t is not None:
                t.page_faults = v.value
        for k, v in self.probes.table("refill_ns").items():
            t = out.get(k.pid)
            if t is not None:
                stage = lay.stages[k.stage] if k.stage < len(lay.stages) else str(k.stage)
                t.refill_latency[(k.class_size, stage, k.slot)] = (v.count, v.sum_ns)
        for t in out.values():
            if not t.exited_ns:
                t.resident = resident_memory(t.pid)
            if t.pid not in self.cgroups:  # read once: a process does not change containers
                self.cgroups[t.pid] = cgroup_of(t.pid)
            t.cgroup = self.cgroups[t.pid]
        return out

    def _fill(self, t: Target, c):
        lay = self.layout
        for i, size in enumerate(lay.class_sizes):
            if c.allocs[i]:
                t.allocs[str(size)] = c.allocs[i]
            row = list(c.refills[i])
            if any(row):
                t.refills[size] = dict(zip(lay.stages, row))
            if c.refill_objects[i]:
                t.refill_objects[size] = c.refill_objects[i]
        if c.allocs[len(lay.class_sizes)]:
            t.allocs["large"] = c.allocs[len(lay.class_sizes)]
        t.frees = routes(lay, c)
        t.os_calls = {n: (c.os_calls[i], c.os_bytes[i]) for i, n in enumerate(lay.os_calls)}
        t.superslab_events = dict(zip(lay.ss_events, list(c.ss_events)))
        t.large_events = dict(zip(lay.large_events, list(c.large_events)))
        t.heap_errors = dict(zip(lay.heap_errors, list(c.heap_errors)))
        t.memory = memory(lay, c)

    def expire(self, now_ns: int | None = None) -> list[int]:
        """Forget targets that exited more than --retention ago: their map entries and so their series."""
        now_ns = now_ns if now_ns is not None else time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        gone = [k.value for k, v in self.probes.table("targets").items()
                if v.exited_ns and now_ns - v.exited_ns >= self.retention_ns]
        if gone and self.before_forgetting:
            final = self.read()
            self.before_forgetting({pid: final[pid] for pid in gone if pid in final})
        for pid in gone:
            self.delete(pid)
        return gone

    def delete(self, pid: int):
        import ctypes as ct
        self.cgroups.pop(pid, None)
        for name in ("targets", "counters", "faults"):
            table = self.probes.table(name)
            try:
                del table[ct.c_uint32(pid)]
            except KeyError:
                pass
        sc = self.probes.table("syscalls")
        for k in [k for k in sc.keys() if k.pid == pid]:
            del sc[k]
        rl = self.probes.table("refill_ns")
        for k in [k for k in rl.keys() if k.pid == pid]:
            del rl[k]
