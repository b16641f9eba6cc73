"""Series per group of processes instead of per pid (`attach --lib --group-by KEY`): a host where
hundreds of processes preload libhakmem exports a few hundred series per program, not per process.

A group's counters are the sum of its members' and stay monotonic as members come and go: a member that
disappears (its entries expired after --retention) or execs (a new image counts from zero: hakwatch's
`inits` moves on) leaves its last counts to the group. Kernel-view counters (syscalls, page faults,
refill latency) are per pid across an exec, so a member that execs starts from what its pid had then.
Gauges (the memory layers, live bytes, RSS) are the sum over the members alive now.
"""

import os
import re
import threading
from dataclasses import dataclass, fields, is_dataclass

from hakwatch.layers import Memory
from hakwatch.reader import Target

KEYS = ("pid", "comm", "exe", "unit", "cgroup")
# What an exec does not start over: the kernel's view of the pid.
KERNEL_VIEW = ("syscalls", "page_faults", "refill_latency")
COUNTERS = ("allocs", "frees", "refills", "refill_objects", "os_calls", "superslab_events", "large_events",
            "heap_errors") + KERNEL_VIEW
UNIT = re.compile(r"([^/]+\.(?:service|scope))(?:/|$)")


def add(a, b, sign: int = 1):
    """a + sign * b over the shapes a Target's counts take: numbers, lists, tuples, dicts, dataclasses."""
    if b is None:
        return a
    if a is None:
        return add(_zero(b), b, sign)
    if isinstance(a, (int, float)):
        return a + sign * b
    if isinstance(a, (list, tuple)):
        return type(a)(add(x, y, sign) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: add(a.get(k), b.get(k), sign) for k in a.keys() | b.keys()}
    if is_dataclass(a):
        return type(a)(**{f.name: add(getattr(a, f.name), getattr(b, f.name), sign) for f in fields(a)})
    raise TypeError(f"cannot add {type(a).__name__}")


def _zero(x):
    return add(x, x, -1)


def _counters(t: Target) -> dict:
    c = {name: getattr(t, name) for name in COUNTERS}
    m = t.memory
    c["bytes"] = (m.requested, m.allocated) if m else (0, 0)
    return c


def _gauges(t: Target) -> dict:
    m = t.memory
    if m is None or t.exited_ns:
        return {}
    return {"live_bytes": m.live_bytes, "layers": m.layers, "mapped": m.mapped,
            "resident_estimate": m.resident_estimate, "superslabs": m.superslabs, "resident": t.resident or {}}


@dataclass
class Member:
    key: str
    inits: int
    counts: dict        # its counters at the last scrape, less `base`
    base: dict          # the kernel-view counters its pid had before this image


class Groups:
    def __init__(self, by: str):
        if by not in KEYS[1:]:
            raise ValueError(f"cannot group by {by!r}")
        self.by = by
        self.members: dict[int, Member] = {}
        self.departed: dict[str, dict] = {}   # key -> counters left by members gone
        self.exes: dict[tuple[int, int], str] = {}
        self.lock = threading.Lock()  # scrapes and the expiry of exited processes come from two threads
        # (pid, inits) forgotten: a scrape that read the maps just before must not bring them back
        self.forgotten: set[tuple[int, int]] = set()

    def key(self, t: Target) -> str:
        if self.by == "comm":
            return t.comm
        if self.by == "cgroup":
            return t.cgroup
        if self.by == "unit":
            units = UNIT.findall(t.cgroup)
            return units[-1] if units else ""
        exe = self.exes.get((t.pid, t.inits))
        if exe is None:
            try:
                exe = os.readlink(f"/proc/{t.pid}/exe")
            except OSError:  # gone, or a kernel thread: its comm says what it was
                exe = t.comm
            self.exes[(t.pid, t.inits)] = exe
        return exe

    def _leave(self, pid: int, m: Member):
        self.departed[m.key] = add(self.departed.get(m.key), m.counts)
        self.exes.pop((pid, m.inits), None)

    def forget(self, final: dict[int, Target]):
        """Processes about to be forgotten (Reader.before_forgetting): their last counts go to their groups."""
        with self.lock:
            self._see(final)
            for pid, t in final.items():
                self._leave(pid, self.members.pop(pid))
                self.forgotten.add((pid, t.inits))

    def fold(self, targets: dict[int, Target]) -> dict[str, Target]:
        """The targets read this scrape -> one Target per group, keyed by the group's name."""
        with self.lock:
            self.forgotten &= {(pid, t.inits) for pid, t in targets.items()}
            targets = {pid: t for pid, t in targets.items() if (pid, t.inits) not in self.forgotten}
            gauges = self._see(targets)
            # Forgotten without a word (an entry deleted some other way): their last counts seen.
            for pid in self.members.keys() - targets.keys():
                self._leave(pid, self.members.pop(pid))
            counts, members = dict(self.departed), {}
            for m in self.members.values():
                counts[m.key] = add(counts.get(m.key), m.counts)
                members[m.key] = members.get(m.key, 0) + 1
        return {key: self._target(key, c, gauges.get(key) or {}, members.get(key, 0)) for key, c in counts.items()}

    def _see(self, targets: dict[int, Target]) -> dict[str, dict]:
        """Update the members from `targets`; returns the gauges of the living, summed by group."""
        gauges: dict[str, dict] = {}
        for pid, t in targets.items():
            m = self.members.get(pid)
            if m is not None and m.inits != t.inits:  # exec: the old image's counts stay with its group
                self._leave(pid, m)
                base = {name: add(m.base.get(name), m.counts[name]) for name in KERNEL_VIEW}
                m = None
            else:
                base = m.base if m else {}
            key = self.key(t)
            counts = _counters(t)
            for name in KERNEL_VIEW:
                counts[name] = add(counts[name], base.get(name), -1)
            self.members[pid] = Member(key, t.inits, counts, base)
            gauges[key] = add(gauges.get(key), _gauges(t))
        return gauges

    @staticmethod
    def _target(key: str, c: dict, g: dict, members: int) -> Target:
        t = Target(pid=0, comm=key)
        for name in COUNTERS:
            setattr(t, name, {k: v for k, v in c[name].items() if v} if name in ("allocs", "refills", "refill_objects")
                    else c[name])
        requested, allocated = c["bytes"]
        t.memory = Memory(live_bytes={k: v for k, v in g.get("live_bytes", {}).items() if v},
                          layers=g.get("layers") or {}, mapped=g.get("mapped", 0),
                          resident_estimate=g.get("resident_estimate", 0), superslabs=g.get("superslabs") or {},
                          requested=requested, allocated=allocated)
        t.resident = g.get("resident") or None
        t.members = members
        return t
