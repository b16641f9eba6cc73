"""attach --all: every process using any copy of libhakmem on the host, containers included.

A copy is found by what it is, not by its name: an executable mapping whose file carries the hakmem
USDT probes (read once per file, by device and inode, through /proc/PID/map_files so that a container's
own copy is reached whatever its mount namespace). Each distinct file is attached once; from then on
its `init` probe adds the processes that start with it. Files not seen yet are looked for in the
processes that exec (the BPF program notes every exec in the `execs` map) and, as a backstop, in a
rescan of /proc; a process found after it started is seeded from its memory like any late attach.
"""

import os
import time

from hakwatch.errors import HakwatchError
from hakwatch.attach.targets import comm_of, file_id, file_mappings, pids
from hakwatch.attach.usdt import read_probes

EXEC_SETTLE_NS = 50_000_000  # an exec'd process has mapped its libraries (ld.so) by then


def _has_hakmem_probes(path: str) -> bool:
    try:
        return any(p.provider == "hakmem" for p in read_probes(path))
    except HakwatchError:
        return False  # not ELF, unreadable, gone


def first_copy() -> str | None:
    """A path (through /proc/PID/map_files) to some copy of libhakmem that a running process maps."""
    seen = set()
    for pid in pids():
        try:
            for m in file_mappings(pid):
                if not m.exec:
                    continue
                fid = file_id(m.file)
                if fid not in seen:
                    seen.add(fid)
                    if _has_hakmem_probes(m.file):
                        return m.file
        except (HakwatchError, OSError):
            continue
    return None


class Discovery:
    def __init__(self, probes, say):
        self.probes = probes
        self.say = say                          # one line for the log per file attached or refused
        self.known: dict[tuple[int, int], bool] = {}  # file -> a libhakmem hakwatch is attached to
        self.known[file_id(probes.lib)] = True

    def _watched_copy(self, m) -> bool:
        """Whether the mapped file is a copy hakwatch is attached to, attaching it when first seen. A
        verdict is kept per file, unless it came from the process vanishing while it was looked at."""
        fid = file_id(m.file)
        if fid not in self.known:
            if not _has_hakmem_probes(m.file):
                if not os.path.exists(m.file):
                    raise HakwatchError(f"process {m.pid} exited")  # not a verdict on the file
                self.known[fid] = False
                return False
            why = self.probes.attach_library(m.file, m.path)  # a vanished process raises: retried later
            self.known[fid] = why is None
            self.say(f"{m.path} (first seen in pid {m.pid}, {comm_of(m.pid)}): "
                     + ("attached" if why is None else f"not watched: {why}"))
        return self.known[fid]

    def look_at(self, pid: int) -> bool:
        """Watch the process if it maps a copy of libhakmem (attaching that copy if it is new)."""
        try:
            for m in file_mappings(pid):
                if m.exec and self._watched_copy(m):
                    if not self.probes.watching(pid):
                        self.probes.watch_running(m, comm_of(pid))
                    return True
        except (HakwatchError, OSError):
            pass  # exited meanwhile, a kernel thread, not readable, the targets map full
        except Exception as e:  # one odd process (a malformed note, a short read) must not stop --all
            self.say(f"process {pid}: skipped ({type(e).__name__}: {e})")
        return False

    def scan(self):
        for pid in pids():
            self.look_at(pid)

    def new_execs(self):
        """The processes that exec'd since the last look, once ld.so has mapped their libraries."""
        table = self.probes.table("execs")
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        for k, v in list(table.items()):
            if now - v.value < EXEC_SETTLE_NS:
                continue
            try:
                del table[k]
            except KeyError:
                pass
            self.look_at(k.value)
