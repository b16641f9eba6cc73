"""Series per group of processes instead of per pid (`attach --lib --group-by KEY`): a host where
hundreds of processes preload libhakmem exports a few hundred series per program, not per process.

A group's counters are the sum of its members' and stay monotonic as members come and go: a member that
disappears (its entries expired after --retention) or execs (a new image counts from zero: hakwatch's
`inits` moves on) leaves its last counts to the group. Kernel-view counters (syscalls, page faults,
refill latency) are per pid across an exec, so a member that execs starts from what its pid had then.
Gauges (the memory layers, live bytes, RSS) are the sum over the members alive now.

The sums are kept, not redone: each scrape adds what changed in each member since the last (nothing
for an idle process, whose counters block the Reader hands over as the very same list).
"""

import os
import re
import threading
from dataclasses import dataclass, replace
from operator import add, sub

from hakwatch.read.layers import memory
from hakwatch.contract.layout import load, plain, words
from hakwatch.read.reader import Raw, Target, kernel_words, target_of

KEYS = ("pid", "comm", "exe", "unit", "cgroup")
UNIT = re.compile(r"([^/]+\.(?:service|scope))(?:/|$)")


def _plus(a: list[int], b: list[int]) -> list[int]:
    return list(map(add, a, b))


def _minus(a: list[int], b: list[int]) -> list[int]:
    return list(map(sub, a, b))


def _latency_plus(a: dict, b: dict, sign: int = 1) -> dict:
    out = dict(a)
    for k, (n, ns) in b.items():
        n0, ns0 = out.get(k, (0, 0))
        out[k] = (n0 + sign * n, ns0 + sign * ns)
    return out


@dataclass
class Member:
    key: str
    inits: int
    alive: bool
    counters: list[int]   # this image's counters, as last added to its group
    kernel: list[int]     # its pid's kernel view, as last added to its group
    latency: dict         # its pid's refill latency, likewise


@dataclass
class Group:
    counters: list[int]   # every member's last counters, members gone included
    live: list[int]       # the counters of the members alive now: the gauges derive from them
    kernel: list[int]
    latency: dict


class Groups:
    def __init__(self, by: str):
        if by not in KEYS[1:]:
            raise ValueError(f"cannot group by {by!r}")
        self.by = by
        self.zero_counters = [0] * words()
        self.zero_kernel = [0] * kernel_words()
        self.members: dict[int, Member] = {}
        self.groups: dict[str, Group] = {}
        self.lock = threading.Lock()  # scrapes and the expiry of exited processes come from two threads
        # (pid, inits) forgotten: a scrape that read the maps just before must not bring them back
        self.forgotten: set[tuple[int, int]] = set()

    def key(self, r: Raw) -> str:
        """Its group, decided when an image is first seen (a process renaming itself stays where it was)."""
        if self.by == "comm":
            return r.comm
        if self.by == "cgroup":
            return r.cgroup
        if self.by == "unit":
            units = UNIT.findall(r.cgroup)
            return units[-1] if units else ""
        try:
            return os.readlink(f"/proc/{r.pid}/exe")
        except OSError:  # gone, or a kernel thread: its comm says what it was
            return r.comm

    def forget(self, final: dict[int, Raw]):
        """Processes about to be forgotten (Reader.before_forgetting): their last counts go to their groups."""
        with self.lock:
            self._see(final)
            for pid, r in final.items():
                self._leave(pid)
                self.forgotten.add((pid, r.inits))

    def fold(self, raws: dict[int, Raw]) -> dict[str, Target]:
        """The processes read this scrape -> one Target per group, keyed by the group's name."""
        with self.lock:
            self.forgotten &= {(pid, r.inits) for pid, r in raws.items()}
            raws = {pid: r for pid, r in raws.items() if (pid, r.inits) not in self.forgotten}
            self._see(raws)
            # Forgotten without a word (an entry deleted some other way): their last counts seen stay.
            for pid in self.members.keys() - raws.keys():
                self._leave(pid)
            alive: dict[str, int] = dict.fromkeys(self.groups, 0)
            resident: dict[str, dict[str, int]] = {}
            hidden: dict[str, str] = {}  # what some live member's runtime keeps from libhakmem
            for pid, r in raws.items():
                m = self.members[pid]
                if m.alive:
                    alive[m.key] += 1
                    if r.hidden_by:
                        hidden[m.key] = r.hidden_by
                    if r.resident:
                        rss = resident.setdefault(m.key, dict.fromkeys(r.resident, 0))
                        for kind, n in r.resident.items():
                            rss[kind] += n
            return {key: self._target(key, g, alive[key], resident.get(key), hidden.get(key, ""))
                    for key, g in self.groups.items()}

    def _see(self, raws: dict[int, Raw]):
        """Add to each member's group what changed in it since it was last seen."""
        for pid, r in raws.items():
            m = self.members.get(pid)
            if m is not None and m.inits != r.inits:  # exec: the old image's counts stay with its group
                self._leave(pid)
                m = Member(self.key(r), r.inits, True, self.zero_counters, m.kernel, m.latency)
            elif m is None:
                m = Member(self.key(r), r.inits, True, self.zero_counters, self.zero_kernel, {})
            self.members[pid] = m
            g = self.groups.get(m.key)
            if g is None:
                g = self.groups[m.key] = Group(self.zero_counters, self.zero_counters, self.zero_kernel, {})
            counters = r.counters or self.zero_counters
            if counters is not m.counters and counters != m.counters:
                change = _minus(counters, m.counters)
                g.counters = _plus(g.counters, change)
                if m.alive:
                    g.live = _plus(g.live, change)
                m.counters = counters
            kernel = r.kernel or self.zero_kernel
            if kernel != m.kernel:
                g.kernel = _plus(g.kernel, _minus(kernel, m.kernel))
                m.kernel = kernel
            if r.refill_latency != m.latency:
                g.latency = _latency_plus(_latency_plus(g.latency, r.refill_latency), m.latency, -1)
                m.latency = r.refill_latency
            if m.alive and r.exited_ns:
                g.live = _minus(g.live, m.counters)
                m.alive = False

    def _leave(self, pid: int):
        """The member goes; what it counted stays in its group's counters."""
        m = self.members.pop(pid)
        if m.alive:
            g = self.groups[m.key]
            g.live = _minus(g.live, m.counters)

    def _target(self, key: str, g: Group, members: int, resident: dict | None, hidden_by: str) -> Target:
        t = target_of(Raw(pid=0, comm=key, counters=g.counters, kernel=g.kernel,
                          refill_latency={k: v for k, v in g.latency.items() if v[0]}))
        total = t.memory
        t.memory = replace(memory(load(), plain(g.live)), requested=total.requested, allocated=total.allocated)
        t.resident = resident
        t.members = members
        t.hidden_by = hidden_by
        return t
