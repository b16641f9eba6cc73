"""A process's allocator counts as of now, read from its memory: the flushed totals, the exited threads'
batch and each thread's counts since its own last flush (probes/hakmem_counters.h, struct
hakmem_state_map; DESIGN.md, "Readings"). A thread pool that went idle, or workers that exited into a
batch nobody flushes, then show what they did, though they may never flush again.

One reading is one process_vm_readv: the totals' seq, the totals, the batch, every thread's cache
twice, the seq again. An even seq unchanged across it means no flush and no thread came or went
meanwhile; a thread whose two copies differ was running, and its unflushed counts are left out of that
reading (its flushed ones are in the totals). A reading is used only if it passes what can be checked:
the memory layers add up to the mapped bytes, none is negative, and no count is below the last reading
used. Otherwise the reading is taken again, and after a few attempts the last good one stands.

What a process's memory says is untrusted: the program may be buggy or hostile, and the reader runs as
root. Every walk is bounded, every address checked before it is read, and a state map or a list of
threads that cannot be right ends the reading of that process (one line on stderr), never a hang.
"""

import ctypes as ct
import errno
import os
import sys
import time
from array import array
from dataclasses import dataclass
from operator import add

from hakwatch.layers import consistent
from hakwatch.layout import Layout, load, state_map_ctype, totals_ctype, words

ATTEMPTS = 4           # readings of a busy process per scrape before the last good one stands
RETRY_S = 0.0005       # between them: long enough for a flush or a thread start to finish
USER_TOP = 1 << 47     # x86-64 user addresses lie below
IOV_MAX = 1024

_libc = ct.CDLL(None, use_errno=True)


class _Iovec(ct.Structure):
    _fields_ = [("base", ct.c_void_p), ("len", ct.c_size_t)]


_readv = _libc.process_vm_readv
_readv.restype = ct.c_ssize_t
_readv.argtypes = [ct.c_int, ct.POINTER(_Iovec), ct.c_ulong, ct.POINTER(_Iovec), ct.c_ulong, ct.c_ulong]


class Gone(Exception):
    """The process exited (or exec'd) under the reader."""


class Corrupt(Exception):
    """The process's memory does not hold what its state map promises."""


class Ranges:
    """Ranges (address, length) of a process's memory, read one after another by as few
    process_vm_readv calls as IOV_MAX allows; made once for ranges read at every scrape."""

    def __init__(self, pid: int, ranges: list[tuple[int, int]]):
        self.pid, self.total = pid, sum(n for _, n in ranges)
        self.buf = ct.create_string_buffer(self.total)
        self.calls, done = [], 0
        for i in range(0, len(ranges), IOV_MAX):
            chunk = ranges[i:i + IOV_MAX]
            want = sum(n for _, n in chunk)
            remote = (_Iovec * len(chunk))(*(_Iovec(a, n) for a, n in chunk))
            self.calls.append((_Iovec(ct.addressof(self.buf) + done, want), remote, len(chunk), want))
            done += want

    def read(self) -> bytes | None:
        """Their bytes; None if some byte is not mapped."""
        for local, remote, count, want in self.calls:
            got = _readv(self.pid, ct.byref(local), 1, remote, count, 0)
            if got < 0:
                err = ct.get_errno()
                if err == errno.ESRCH:
                    raise Gone()
                if err == errno.EFAULT:
                    return None
                raise OSError(err, f"cannot read the memory of process {self.pid}: {os.strerror(err)}")
            if got != want:
                return None
        return self.buf.raw


def read_ranges(pid: int, ranges: list[tuple[int, int]]) -> bytes | None:
    return Ranges(pid, ranges).read()


def _address(value: int, what: str, align: int = 8) -> int:
    if not 0 < value < USER_TOP or value % align:
        raise Corrupt(f"{what} {value:#x} is no user address")
    return value


@dataclass
class _Fields:
    """Word indices in a counters block and byte offsets in a thread's cache."""
    allocs: int
    frees: int
    refill_objects: int
    requested: int
    classes: int
    counters: slice
    limit: slice
    room: slice
    flushed_len: slice
    returned: slice
    sample_left: slice
    sample_base: slice
    flush_seq: slice


def _fields(lay: Layout, m) -> _Fields:
    at, index = 0, {}
    for name, dims in lay.fields:
        index[name] = at
        n = 1
        for d in dims:
            n *= d
        at += n
    classes, nbytes = len(lay.class_sizes), words(lay) * 8
    u32s = lambda off: slice(off, off + 4 * classes)  # noqa: E731
    sizes = {"counters": nbytes, "limit": 4 * classes, "room": 4 * classes, "flushed_len": 4 * classes,
             "returned": 4 * classes, "sample_left": 8, "sample_base": 8, "flush_seq": 8}
    for name, size in sizes.items():
        offset = getattr(m, f"cache_{name}")
        if offset + size > m.cache_bytes:
            raise Corrupt(f"the thread cache's {name} lies beyond its {m.cache_bytes} bytes")
    return _Fields(allocs=index["allocs"], frees=index["frees"], refill_objects=index["refill_objects"],
                   requested=index["bytes"] + lay.byte_counts.index("requested"), classes=classes,
                   counters=slice(m.cache_counters, m.cache_counters + nbytes), limit=u32s(m.cache_limit),
                   room=u32s(m.cache_room), flushed_len=u32s(m.cache_flushed_len),
                   returned=u32s(m.cache_returned), sample_left=slice(m.cache_sample_left, m.cache_sample_left + 8),
                   sample_base=slice(m.cache_sample_base, m.cache_sample_base + 8),
                   flush_seq=slice(m.cache_flush_seq, m.cache_flush_seq + 8))


def thread_counts(cache: bytes, f: _Fields) -> list[int] | None:
    """What a thread's flush would add to the totals now, worked out as the flush does (stats.c,
    settle_allocs); None if that is impossible (negative), as only a thread caught in the middle of an
    operation gives."""
    c = array("Q", cache[f.counters]).tolist()
    limit, room = array("I", cache[f.limit]), array("I", cache[f.room])
    flushed, returned = array("I", cache[f.flushed_len]), array("I", cache[f.returned])
    for k in range(f.classes):
        length = (limit[k] - room[k]) & 0xFFFFFFFF
        handed = c[f.refill_objects + k] + c[f.frees + k] - returned[k] - (length - flushed[k])
        if handed < 0:
            return None
        c[f.allocs + k] += handed
    left, base = int.from_bytes(cache[f.sample_left], "little"), int.from_bytes(cache[f.sample_base], "little")
    if base < left:
        return None
    c[f.requested] += base - left
    return c


class ProcessReader:
    """Readings of one process image whose libhakmem exports its state map at `map_address`."""

    def __init__(self, pid: int, map_address: int, layout: Layout | None = None):
        self.pid, self.lay = pid, layout or load()
        StateMap = state_map_ctype(self.lay)
        raw = read_ranges(pid, [(map_address, ct.sizeof(StateMap))])
        if raw is None:
            raise Corrupt(f"its state map at {map_address:#x} is not mapped")
        m = StateMap.from_buffer_copy(raw)
        if m.version != self.lay.state_map_version:
            raise Corrupt(f"its state map is version {m.version}, this hakwatch reads {self.lay.state_map_version}")
        self.totals = _address(m.totals, "the totals' address")
        self.exited = _address(m.exited, "the exited batch's address")
        self.threads = _address(m.threads, "the thread list's address")
        if m.cache_bytes > 1 << 20 or max(m.heap_next, m.heap_cache) > 1 << 16:
            raise Corrupt("its state map gives sizes no libhakmem has")
        self.map, self.f = m, _fields(self.lay, m)
        self.totals_bytes = ct.sizeof(totals_ctype(self.lay))
        self.counters_bytes = words(self.lay) * 8
        # the seq of the last walk, the caches it found, and the ranges a reading reads
        self.walked: tuple[int, list[int], Ranges] | None = None
        self.last: list[int] | None = None                 # the last reading used
        self.last_raw: bytes | None = None
        self.stood: dict[int, tuple[int, list[int]]] = {}  # cache address -> flush_seq, counts when last still
        self.busy_threads = 0

    def _walk(self) -> tuple[int, list[int]] | None:
        """The caches of the threads on the list, with the seq they go with; None if the list changed
        while walked (the caller tries again)."""
        m, seen, caches = self.map, set(), []
        raw = read_ranges(self.pid, [(self.totals, 8), (self.threads, 8)])
        if raw is None:
            raise Corrupt("its totals or thread list are not mapped")
        seq, heap = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
        if seq % 2:
            return None
        while heap:
            _address(heap, "a thread's heap")
            if heap in seen or len(seen) >= self.lay.max_threads:
                raise Corrupt(f"its list of threads loops or runs past {self.lay.max_threads}")
            seen.add(heap)
            raw = read_ranges(self.pid, [(heap + m.heap_next, 8), (heap + m.heap_cache, 8), (self.totals, 8)])
            if raw is None or int.from_bytes(raw[16:], "little") != seq:
                return None  # a thread left and its heap went back to the pool meanwhile
            heap, cache = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:16], "little")
            caches.append(_address(cache, "a thread's cache"))
        return seq, caches

    def read(self) -> list[int] | None:
        """The counters block as of now (every word of struct hakmem_counters), or the last good one if
        the process changed under every attempt; None before any good one."""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(RETRY_S)
            if self.walked is None:
                walk = self._walk()
                if walk is None:
                    continue
                seq, caches = walk
                n = self.map.cache_bytes
                self.walked = seq, caches, Ranges(self.pid, [(self.totals, self.totals_bytes), (self.exited, self.counters_bytes)]
                                                  + [(c, n) for c in caches] * 2 + [(self.totals, 8)])
            seq, caches, ranges = self.walked
            raw = ranges.read()
            if raw is None or raw[:8] != seq.to_bytes(8, "little") or raw[-8:] != raw[:8]:
                self.walked = None  # a flush or a thread came or went: walk again
                continue
            if raw == self.last_raw:
                return self.last
            reading = self._combine(raw, caches)
            if reading is not None:
                self.last, self.last_raw = reading, raw
                return reading
        return self.last

    def _combine(self, raw: bytes, caches: list[int]) -> list[int] | None:
        """Totals, batch and threads as one reading, if it passes the checks. A thread that ran while
        read counts as of its last copy that stood still, if it has not flushed since (its flush_seq
        says), else as of its last flush (the totals hold it)."""
        n, at = self.map.cache_bytes, self.totals_bytes + self.counters_bytes
        total = list(map(add, array("Q", raw[8:self.totals_bytes]).tolist(),
                         array("Q", raw[self.totals_bytes:at]).tolist()))
        second, f = at + n * len(caches), self.f
        stood, busy = {}, 0
        for i, address in enumerate(caches):
            first = raw[at + i * n:at + (i + 1) * n]
            flush_seq = int.from_bytes(first[f.flush_seq], "little")
            counts = thread_counts(first, f) if first == raw[second + i * n:second + (i + 1) * n] else None
            if counts is not None:
                stood[address] = (flush_seq, counts)
            else:
                busy += 1
                earlier = self.stood.get(address)
                if earlier is None or earlier[0] != flush_seq:
                    continue
                stood[address] = earlier
                counts = earlier[1]
            total = list(map(add, total, counts))
        self.busy_threads = busy
        if not consistent(self.lay, total) or (self.last is not None and any(map(int.__lt__, total, self.last))):
            return None
        self.stood = stood
        return total


def corrupt_line(pid: int, why: str) -> str:
    return (f"hakwatch: process {pid}: {why}; its allocator state is not read from its memory any more "
            "(counts as of its flushes only)")


NEVER = "never"  # a process image whose memory is not read: an old libhakmem, or one found corrupt


class LiveReadings:
    """Readings of many processes, each found by its library's state map once per image."""

    def __init__(self, layout: Layout | None = None, say=lambda line: print(line, file=sys.stderr, flush=True)):
        self.lay, self.say = layout or load(), say
        # pid -> its image (inits) and its reader; None while its libhakmem is not mapped yet (run's
        # command before its exec), NEVER when it will not be read
        self.readers: dict[int, tuple[int, ProcessReader | str | None]] = {}

    def read(self, images: dict[int, int]) -> dict[int, list[int]]:
        """Readings of these live processes (pid -> the images the targets map has seen of it); a
        process without one (gone, libhakmem not mapped yet, an old libhakmem, corrupt) is left out."""
        self.readers = {pid: v for pid, v in self.readers.items() if pid in images}
        out = {}
        for pid, inits in images.items():
            known = self.readers.get(pid)
            if known is None or known[0] != inits or known[1] is None:
                known = self.readers[pid] = (inits, self._open(pid))
            reader = known[1]
            if not isinstance(reader, ProcessReader):
                continue
            try:
                words_ = reader.read()
            except Gone:
                self.readers.pop(pid, None)
                continue
            except (Corrupt, OSError) as e:
                self.say(corrupt_line(pid, str(e)))
                self.readers[pid] = (inits, NEVER)
                continue
            if words_ is not None:
                out[pid] = words_
        return out

    def _open(self, pid: int) -> ProcessReader | str | None:
        from hakwatch.errors import HakwatchError
        from hakwatch.library import state_map_address
        from hakwatch.targets import library_of
        try:
            mapping = library_of(pid)
            if mapping is None:
                return None
            address = state_map_address(mapping)
            return ProcessReader(pid, address, self.lay) if address else NEVER
        except Gone:
            return None
        except Corrupt as e:
            self.say(corrupt_line(pid, str(e)))
            return NEVER
        except (HakwatchError, OSError):  # exited meanwhile: its exit goes by the targets map
            return None
