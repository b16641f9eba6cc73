"""Read the BPF maps into plain per-process totals, and expire targets that exited long enough ago.

One `read()` walks every map once; the collector, `run --summary`, `snapshot` and `top` all use it.
"""

import time
from dataclasses import dataclass, field

from hakwatch.layout import LARGE_EVENTS, SS_EVENTS, SYSCALLS, load

HIST_SLOTS = 40


@dataclass
class SyscallTotals:
    calls: int = 0
    bytes: int = 0
    sum_ns: int = 0
    hist: list[int] = field(default_factory=lambda: [0] * HIST_SLOTS)  # hist[i]: 2^i <= ns < 2^(i+1)


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
    superslab_events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SS_EVENTS, 0))
    large_events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LARGE_EVENTS, 0))
    syscalls: dict[str, SyscallTotals] = field(default_factory=dict)
    page_faults: int = 0
    refill_latency: dict[tuple[int, str, int], int] = field(default_factory=dict)

    @property
    def total_allocs(self) -> int:
        return sum(self.allocs.values())

    def superslabs(self) -> dict[str, int]:
        e = self.superslab_events
        cached = e["lru_put"] - e["lru_hit"] - e["lru_evict"]
        live = e["map"] + e["lru_hit"] - e["lru_put"] - (e["unmap"] - e["lru_evict"])
        return {"live": live, "cached": cached}


def _comm(raw) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")


class Reader:
    def __init__(self, probes, retention_s: float = 60.0):
        self.probes = probes
        self.retention_ns = int(retention_s * 1e9)
        self.layout = load()

    def dropped(self) -> int:
        return sum(v.value for v in self.probes.table("dropped").values())

    def read(self) -> dict[int, Target]:
        lay = self.layout
        out: dict[int, Target] = {}
        for k, v in self.probes.table("targets").items():
            out[k.value] = Target(pid=k.value, comm=_comm(v.comm), exited_ns=v.exited_ns,
                                  frees=dict.fromkeys(lay.routes, 0),
                                  os_calls={n: (0, 0) for n in lay.os_calls})
        for k, c in self.probes.table("counters").items():
            t = out.get(k.value)
            if t is None:
                continue
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
            t.frees = dict(zip(lay.routes, list(c.frees)))
            t.os_calls = {n: (c.os_calls[i], c.os_bytes[i]) for i, n in enumerate(lay.os_calls)}
        for k, e in self.probes.table("events").items():
            t = out.get(k.value)
            if t is not None:
                t.superslab_events = dict(zip(SS_EVENTS, list(e.ss)))
                t.large_events = dict(zip(LARGE_EVENTS, list(e.large)))
        for k, v in self.probes.table("syscalls").items():
            t = out.get(k.pid)
            if t is not None and k.nr < len(SYSCALLS):
                t.syscalls[SYSCALLS[k.nr]] = SyscallTotals(v.calls, v.bytes, v.sum_ns, list(v.hist))
        for k, v in self.probes.table("faults").items():
            t = out.get(k.value)
            if t is not None:
                t.page_faults = v.value
        for k, v in self.probes.table("refill_ns").items():
            t = out.get(k.pid)
            if t is not None:
                t.refill_latency[(k.class_size, lay.stages[k.stage] if k.stage < len(lay.stages) else str(k.stage), k.slot)] = v.value
        return out

    def expire(self, now_ns: int | None = None) -> list[int]:
        """Forget targets that exited more than --retention ago: their map entries and so their series."""
        now_ns = now_ns if now_ns is not None else time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        gone = [k.value for k, v in self.probes.table("targets").items()
                if v.exited_ns and now_ns - v.exited_ns >= self.retention_ns]
        for pid in gone:
            self.delete(pid)
        return gone

    def delete(self, pid: int):
        import ctypes as ct
        for name in ("targets", "counters", "events", "faults"):
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
