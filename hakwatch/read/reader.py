"""Read the BPF maps into plain per-process totals and gauges, and expire targets that exited long
enough ago.

One `read()` walks every map once (and reads each live target's /proc/PID/status); the collector,
`run --summary`, `snapshot` and `top` all use it. `read_raw()` stops at flat lists, for groups.

A live process's allocator counts are its state as of now, read from its memory (hakwatch/read/live.py,
through a privileged helper when the server runs unprivileged: hakwatch/read/live_helper.py); an exited
process's, or one whose memory cannot be read, are what its flushes handed the BPF program.
"""

import sys
import threading
import time
from dataclasses import dataclass, field, replace

from hakwatch.read.layers import Memory, balanced, memory, routes
from hakwatch.contract.layout import flat, load, plain
from hakwatch.read.procfs import cgroup_of, resident_memory
from hakwatch.read.live import consistent_words
from hakwatch.read.runtime import advice

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
    members: int = 1                        # processes in it: more when it is a group (hakwatch/read/groups.py)
    hidden_by: str = ""                     # what its runtime keeps from libhakmem (hakwatch/read/runtime.py)

    @property
    def total_allocs(self) -> int:
        return sum(self.allocs.values())

    def superslabs(self) -> dict[str, int]:
        return self.memory.superslabs if self.memory else {"live": 0, "cached": 0, "purged": 0}


def _comm(raw) -> str:
    return bytes(raw).split(b"\0", 1)[0].decode(errors="replace")


@dataclass
class Raw:
    """A process as the maps hold it, in flat lists: cheap to compare and to add (a group sums its
    members' word by word, hakwatch/read/groups.py)."""
    pid: int
    comm: str
    exited_ns: int = 0
    inits: int = 0
    counters: list[int] | None = None   # struct hakmem_counters' words; None before the first flush
    kernel: list[int] = field(default_factory=list)  # per syscall: calls, bytes, sum_ns, hist; then page faults
    refill_latency: dict[tuple[int, str, int], tuple[int, int]] = field(default_factory=dict)
    resident: dict[str, int] | None = None
    cgroup: str = ""
    hidden_by: str = ""  # what its runtime keeps from libhakmem (hakwatch/read/runtime.py)


def kernel_width() -> int:
    """Words of Raw.kernel per syscall."""
    return 3 + load().hist_slots


def kernel_words() -> int:
    """Words of Raw.kernel: every syscall's, then the page faults."""
    return len(load().syscalls) * kernel_width() + 1


def target_of(r: Raw) -> Target:
    lay, w = load(), kernel_width()
    t = Target(pid=r.pid, comm=r.comm, exited_ns=r.exited_ns, inits=r.inits, refill_latency=r.refill_latency,
               resident=r.resident, cgroup=r.cgroup, hidden_by=r.hidden_by, frees=dict.fromkeys(lay.routes, 0),
               os_calls={n: (0, 0) for n in lay.os_calls})
    if r.counters is not None:
        _fill(t, plain(r.counters, lay))
    if r.kernel:
        for i, name in enumerate(lay.syscalls):
            calls, nbytes, sum_ns, *hist = r.kernel[i * w:(i + 1) * w]
            if calls:
                t.syscalls[name] = SyscallTotals(calls, nbytes, sum_ns, hist)
        t.page_faults = r.kernel[-1]
    return t


def _fill(t: Target, c):
    lay = load()
    for i, size in enumerate(lay.class_sizes):
        if c.allocs[i]:
            t.allocs[str(size)] = c.allocs[i]
        row = c.refills[i]
        if any(row):
            t.refills[size] = dict(zip(lay.stages, row))
        if c.refill_objects[i]:
            t.refill_objects[size] = c.refill_objects[i]
    if c.allocs[len(lay.class_sizes)]:
        t.allocs["large"] = c.allocs[len(lay.class_sizes)]
    t.frees = routes(lay, c)
    t.os_calls = {n: (c.os_calls[i], c.os_bytes[i]) for i, n in enumerate(lay.os_calls)}
    t.superslab_events = dict(zip(lay.ss_events, c.ss_events))
    t.large_events = dict(zip(lay.large_events, c.large_events))
    t.heap_errors = dict(zip(lay.heap_errors, c.heap_errors))
    t.memory = memory(lay, c)


class Reader:
    def __init__(self, probes, retention_s: float = 60.0, live=None):
        """`live`: what reads live processes' memory (`read(images) -> {pid: words}`), or None."""
        self.probes = probes
        self.live = live
        self.used: dict[int, tuple[int, list[int]]] = {}  # pid -> image (inits), counters its last reading showed
        self.live_lock = threading.Lock()
        self.hidden: dict[tuple[int, int], str] = {}  # (pid, image) -> what its runtime keeps from libhakmem
        self.say = lambda line: print(line, file=sys.stderr, flush=True)
        self.retention_ns = int(retention_s * 1e9)
        # Exits are looked for this often: a process is forgotten between --retention and 1.25 times it
        # after its exit, and a host's thousand watched processes are not walked every second.
        self.expiry_period_ns = self.retention_ns // 4
        self.next_expiry_ns = 0
        self.layout = load()
        self.cgroups: dict[int, str] = {}
        # Each process's last counters block, raw and as words: an unchanged block (an idle process)
        # is neither converted nor checked again, and a group sees it is the same list.
        self.blocks: dict[int, tuple[bytes, list[int]]] = {}
        self.targets: dict[int, tuple] = {}  # pid -> the words, kernel view and Target last built from them
        # Called with the final Raws of the processes expire() is about to forget (hakwatch/read/groups.py
        # keeps their counts in their group).
        self.before_forgetting = None

    def dropped(self) -> int:
        return sum(v.value for v in self.probes.table("dropped").values())

    def read(self) -> dict[int, Target]:
        out = {}
        for pid, r in self.read_raw().items():
            last = self.targets.get(pid)
            if last is not None and last[0] is r.counters and last[1] == (r.kernel, r.refill_latency):
                # Unchanged counts: the Target built from them, with what the kernel says now.
                out[pid] = replace(last[2], exited_ns=r.exited_ns, resident=r.resident, cgroup=r.cgroup,
                                   hidden_by=r.hidden_by)
            else:
                out[pid] = target_of(r)
                self.targets[pid] = (r.counters, (r.kernel, r.refill_latency), out[pid])
        self.targets = {pid: v for pid, v in self.targets.items() if pid in out}
        return out

    def read_raw(self) -> dict[int, Raw]:
        lay = self.layout
        out: dict[int, Raw] = {}
        for k, v in self.probes.table("targets").items():
            out[k.value] = Raw(pid=k.value, comm=_comm(v.comm), exited_ns=v.exited_ns, inits=v.inits)
        counters = self.probes.table("counters")
        for k, totals in counters.items():
            r = out.get(k.value)
            if r is not None:
                r.counters = self._words(k, totals, counters)
        self.blocks = {pid: b for pid, b in self.blocks.items() if pid in out}
        self._read_live(out)
        w = kernel_width()
        kernel = {}
        for k, v in self.probes.table("syscalls").items():
            if k.pid in out and k.nr < len(lay.syscalls):
                words_ = kernel.setdefault(k.pid, [0] * kernel_words())
                words_[k.nr * w:(k.nr + 1) * w] = [v.calls, v.bytes, v.sum_ns, *v.hist]
        for k, v in self.probes.table("faults").items():
            if k.value in out:
                kernel.setdefault(k.value, [0] * kernel_words())[-1] = v.value
        for pid, words_ in kernel.items():
            out[pid].kernel = words_
        for k, v in self.probes.table("refill_ns").items():
            r = out.get(k.pid)
            if r is not None:
                stage = lay.stages[k.stage] if k.stage < len(lay.stages) else str(k.stage)
                r.refill_latency[(k.class_size, stage, k.slot)] = (v.count, v.sum_ns)
        for r in out.values():
            if not r.exited_ns:
                r.resident = resident_memory(r.pid)
            if r.pid not in self.cgroups:  # read once: a process does not change containers
                self.cgroups[r.pid] = cgroup_of(r.pid)
            r.cgroup = self.cgroups[r.pid]
        return out

    def _read_live(self, raws: dict[int, Raw]):
        """Each process's counts as of now, from its memory, or else what can be checked: its flushes (the
        BPF map) if they pass the reading's checks (layers add up, none negative) and no count of the last
        reading shown is above them, else that last reading; else nothing (a process seen only between
        two threads' flushes, whose sum of flushes is no moment that existed). An exited process shows its
        final flushes so (they hold all, unless it died without its exit flush: SIGKILL, _exit)."""
        if self.live is None:
            return
        with self.live_lock:  # scrapes come from several threads, and the attach loop reads too
            alive = {pid: r.inits for pid, r in raws.items() if not r.exited_ns}
            got = self.live.read(alive)
            self.used = {pid: v for pid, v in self.used.items() if pid in raws and raws[pid].inits == v[0]}
            for pid, (words_, fresh, hidden) in got.items():
                if fresh or pid not in self.used:
                    self.used[pid] = (alive[pid], words_)
                if hidden and (pid, alive[pid]) not in self.hidden:
                    self.say(advice(pid, raws[pid].comm))  # once an image: the fix is the user's to make
                self.hidden[(pid, alive[pid])] = hidden
            self.hidden = {k: v for k, v in self.hidden.items() if k[0] in raws and raws[k[0]].inits == k[1]}
            for (pid, _), hidden in self.hidden.items():
                raws[pid].hidden_by = hidden
            for pid, r in raws.items():
                last = self.used.get(pid, (0, None))[1]
                if pid in got and got[pid][1]:
                    r.counters = last
                elif r.counters is not None and consistent_words(self.layout, r.counters) and \
                        (last is None or all(map(int.__ge__, r.counters, last))):
                    self.used[pid] = (r.inits, r.counters)
                else:
                    r.counters = last

    def close(self):
        if self.live is not None and hasattr(self.live, "close"):
            self.live.close()

    def _words(self, key, totals, counters) -> list[int]:
        """The process's counters block as words. A read can race a flush being added (field by field, in
        BPF): the layers then do not add up to the mapped bytes, which no complete set of flushes breaks.
        Read it again."""
        for _ in range(READ_ATTEMPTS):
            block = bytes(totals)
            last = self.blocks.get(key.value)
            if last is not None and last[0] == block:
                return last[1]
            words_ = flat(totals.counters)
            if balanced(self.layout, words_):
                break
            try:
                totals = counters[key]
            except KeyError:  # deleted meanwhile (exec, expiry)
                break
        self.blocks[key.value] = (block, words_)
        return words_

    def expire(self, now_ns: int | None = None) -> list[int]:
        """Forget targets that exited more than --retention ago: their map entries and so their series."""
        now_ns = now_ns if now_ns is not None else time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        if now_ns < self.next_expiry_ns:
            return []
        self.next_expiry_ns = now_ns + self.expiry_period_ns
        gone = {k.value for k, v in self.probes.table("targets").items()
                if v.exited_ns and now_ns - v.exited_ns >= self.retention_ns}
        if not gone:
            return []
        if self.before_forgetting:
            final = self.read_raw()
            self.before_forgetting({pid: final[pid] for pid in gone if pid in final})
        self.delete(gone)
        return sorted(gone)

    def delete(self, pids: set[int]):
        import ctypes as ct
        for pid in pids:
            self.cgroups.pop(pid, None)
            self.blocks.pop(pid, None)
            for name in ("targets", "counters", "faults"):
                try:
                    del self.probes.table(name)[ct.c_uint32(pid)]
                except KeyError:
                    pass
        for name in ("syscalls", "refill_ns") + (("sites", "live") if getattr(self.probes, "profile", False) else ()):
            table = self.probes.table(name)
            for k in [k for k in table.keys() if k.pid in pids]:
                del table[k]
        if getattr(self.probes, "profile", False):
            self._forget_stacks(pids)

    def _forget_stacks(self, pids: set[int]):
        """Profiles: the stacks no process left refers to, so that the stack map does not fill up."""
        import ctypes as ct
        at = self.probes.table("syscall_pace")
        for pid in pids:
            try:
                del at[ct.c_uint32(pid)]
            except KeyError:
                pass
        used = {k.stack for k in self.probes.table("sites").keys()}
        used |= {v.stack for v in self.probes.table("live").values()}
        stacks = self.probes.table("stacks")
        for k in [k for k in stacks.keys() if k.value not in used]:
            try:
                del stacks[k]
            except KeyError:
                pass
