"""A process's allocator counts as of now, read from its memory: the flushed totals, the exited threads'
batch and each thread's counts since its own last flush (probes/hakmem_counters.h, struct
hakmem_state_map; DESIGN.md, "Readings"). A thread pool that went idle, or workers that exited into a
batch nobody flushes, then show what they did, though they may never flush again.

One reading is a process_vm_readv of the totals, the batch, every thread's cache, the list's change
count and the totals' seq again: an even seq unchanged across it means no flush went by, the same
change count that the list walked is still the list. If that copy equals the last reading's, nothing
happened since; else a second copy tells the threads that ran meanwhile (their two copies differ) from
those that stood still. A thread that ran counts as of its last copy that stood still, if it has not
flushed since, else as of its last flush (the totals hold it). A reading is used only if it passes what can be checked:
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
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hakwatch.read.layers import gauge_factors
from hakwatch.contract.layout import Layout, counters_ctype, load, state_map_ctype, totals_ctype, words

ATTEMPTS = 4           # readings of a busy process per scrape before the last good one stands
RETRY_S = 0.0005       # after a seq found odd: long enough for a flush or a thread start to finish
GARBAGE = 1 << 62      # no count of a real process comes near: a larger one is garbage (and would overflow the checks)
MAX_CACHE_BYTES = 1 << 16   # a thread's cache is ~6 KiB: a state map that says more is garbage
MAX_READ_BYTES = 256 << 20  # a reading of one process at most (twice every thread cache): 10,000 threads
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
    """Where a thread's counts are in its cache, as indices of its u64 words (counters, sample countdown,
    flush_seq) and u32 words (the cache lengths' fields); and the counters words a flush works out."""
    allocs: slice
    frees: slice
    refill_objects: slice
    requested: int
    counters: slice
    limit: slice
    room: slice
    flushed_len: slice
    returned: slice
    sample_left: int
    sample_base: int
    flush_seq: int


U32_FIELDS = ("limit", "room", "flushed_len", "returned")


def _fields(lay: Layout, m) -> _Fields:
    Counters = counters_ctype(lay)
    index = {name: getattr(Counters, name).offset // 8 for name, _ in lay.fields}  # word indices
    classes, nbytes = len(lay.class_sizes), words(lay) * 8
    sizes = {"counters": nbytes, "limit": 4 * classes, "room": 4 * classes, "flushed_len": 4 * classes,
             "returned": 4 * classes, "sample_left": 8, "sample_base": 8, "flush_seq": 8}
    if m.cache_bytes % 8:
        raise Corrupt(f"its thread caches' size {m.cache_bytes} is no multiple of 8")
    for name, size in sizes.items():
        offset = getattr(m, f"cache_{name}")
        if offset + size > m.cache_bytes or offset % (4 if name in U32_FIELDS else 8):
            raise Corrupt(f"the thread cache's {name} lies beyond its {m.cache_bytes} bytes or is misaligned")
    words_of = lambda name, unit: slice(getattr(m, f"cache_{name}") // unit,  # noqa: E731
                                        (getattr(m, f"cache_{name}") + sizes[name]) // unit)
    return _Fields(allocs=slice(index["allocs"], index["allocs"] + classes),
                   frees=slice(index["frees"], index["frees"] + classes),
                   refill_objects=slice(index["refill_objects"], index["refill_objects"] + classes),
                   requested=index["bytes"] + lay.byte_counts.index("requested"), counters=words_of("counters", 8),
                   limit=words_of("limit", 4), room=words_of("room", 4), flushed_len=words_of("flushed_len", 4),
                   returned=words_of("returned", 4), sample_left=m.cache_sample_left // 8,
                   sample_base=m.cache_sample_base // 8, flush_seq=m.cache_flush_seq // 8)


def thread_counts(caches: np.ndarray, f: _Fields) -> tuple[np.ndarray, np.ndarray]:
    """What each thread's flush would add to the totals now (rows of caches' bytes, one a thread), worked
    out as the flush does (stats.c, settle_allocs), and which rows are possible at all: a negative count
    comes only from a thread caught in the middle of an operation."""
    w64, w32 = caches.view(np.uint64), caches.view(np.uint32)
    c = w64[:, f.counters].astype(np.int64)
    length = (w32[:, f.limit].astype(np.int64) - w32[:, f.room]) & 0xFFFFFFFF
    handed = (c[:, f.refill_objects] + c[:, f.frees] - w32[:, f.returned]
              - (length - w32[:, f.flushed_len]))
    c[:, f.allocs] += handed
    # what the countdown counted since it was last settled: u64 arithmetic, as the allocator's, read as
    # signed (a failed allocation takes its bytes back before the next settling)
    c[:, f.requested] += (w64[:, f.sample_base] - w64[:, f.sample_left]).view(np.int64)
    possible = (handed >= 0).all(axis=1) & (c >= 0).all(axis=1) & (c < GARBAGE).all(axis=1)
    return c, possible


@lru_cache(maxsize=None)
def _checks(lay: Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The gauges' factors as a matrix of the words some gauge depends on (the refills, for one, none),
    exact and in floating point, those words' indices, and how many of its rows are layers."""
    factors = np.array(gauge_factors(lay), dtype=np.int64)
    used = np.flatnonzero(factors.any(axis=0))
    return factors[:, used], factors[:, used].astype(np.float64), used, len(lay.layers)


def consistent(lay: Layout, counts: np.ndarray) -> bool:
    """What a reading must pass to be shown: every layer and every class's live bytes >= 0, and the layers
    add up to the mapped bytes (as every complete set of flushes does)."""
    factors, approximate, used, layers = _checks(lay)
    x = counts[used]
    if np.abs(approximate @ x).max() >= GARBAGE:  # counts no process has: the int64 products would overflow
        return False
    g = factors @ x
    return bool((g[:-1] >= 0).all() and g[:layers].sum() == g[-1])


def consistent_words(lay: Layout, words_: list[int]) -> bool:
    """consistent() of a counters block as Python ints (the BPF map's flushes)."""
    if max(words_) >= GARBAGE:
        return False
    return consistent(lay, np.array(words_, dtype=np.int64))


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
        self.changes = _address(m.thread_changes, "the thread list's change count's address")
        if m.cache_bytes > MAX_CACHE_BYTES or max(m.heap_next, m.heap_cache) > 1 << 16:
            raise Corrupt("its state map gives sizes no libhakmem has")
        self.map, self.f = m, _fields(self.lay, m)
        self.totals_bytes = ct.sizeof(totals_ctype(self.lay))
        self.counters_bytes = words(self.lay) * 8
        self.state = Ranges(pid, [(self.totals, 8), (self.changes, 8)])  # seq, list changes
        self.step = Ranges(pid, [(0, 8), (0, 8)])                          # a heap's next and cache
        # the list's change count when last walked, the caches it found, and the ranges a reading reads
        self.walked: tuple[bytes, list[int], Ranges] | None = None
        self.last: list[int] | None = None                 # the last reading used
        self.last_raw: bytes | None = None  # the copy it came from: compared whole, faster than any digest
        self.last_array: np.ndarray | None = None
        # cache address -> flush_seq, counts (sparse) when it last stood still
        self.stood: dict[int, tuple[int, tuple[np.ndarray, np.ndarray]]] = {}
        self.busy_threads = 0
        self.hidden_by = ""  # what the process's runtime keeps from libhakmem (LiveReadings sets it)

    def _state(self) -> tuple[int, bytes]:
        raw = self.state.read()
        if raw is None:  # unmapped: the process exec'd (its next image is opened anew) or is exiting
            raise Gone()
        return int.from_bytes(raw[:8], "little"), raw[8:]

    def _walk(self) -> tuple[bytes, list[int]] | None:
        """The caches of the threads on the list, with the list's change count; None if it changed while
        walked (the caller tries again). Something wrong with the list is corruption only if the list
        did not change meanwhile: a thread that left may have sent the walk into the pool of heaps."""
        seq, changes = self._state()
        if seq % 2:
            return None
        raw = read_ranges(self.pid, [(self.threads, 8)])
        heap, seen, caches = int.from_bytes(raw or b"", "little"), set(), []
        step, m = self.step, self.map
        try:
            if raw is None:
                raise Corrupt("its thread list is not mapped")
            while heap:
                _address(heap, "a thread's heap")
                if heap in seen or len(seen) >= self.lay.max_threads:
                    raise Corrupt(f"its list of threads loops or runs past {self.lay.max_threads}")
                seen.add(heap)
                remote = step.calls[0][1]
                remote[0].base, remote[1].base = heap + m.heap_next, heap + m.heap_cache
                raw = step.read()
                if raw is None:
                    raise Corrupt(f"a thread's heap at {heap:#x} is not mapped")
                heap, cache = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
                caches.append(_address(cache, "a thread's cache"))
            if len(set(caches)) != len(caches) or 2 * len(caches) * m.cache_bytes > MAX_READ_BYTES:
                raise Corrupt(f"its {len(caches)} threads' caches overlap or are too many to read")
        except Corrupt:
            if self._state() != (seq, changes):
                return None
            raise
        return (changes, caches) if self._state() == (seq, changes) else None

    def read(self) -> tuple[list[int] | None, bool]:
        """The counters block as of now (every word of struct hakmem_counters) and True; or, if the
        process changed under every attempt, the last good one (None before any) and False. A process
        whose memory is as at the last reading costs one copy; else a second one tells the threads that
        ran meanwhile from those that stood still."""
        for _ in range(ATTEMPTS):
            if self.walked is None:
                walk = self._walk()
                if walk is None:
                    time.sleep(RETRY_S)
                    continue
                changes, caches = walk
                self.walked = changes, caches, Ranges(self.pid, [(self.totals, self.totals_bytes), (self.exited, self.counters_bytes)]
                                                      + [(c, self.map.cache_bytes) for c in caches]
                                                      + [(self.changes, 8), (self.totals, 8)])
            changes, caches, ranges = self.walked
            raw = self._copy(ranges, changes)
            if raw is None:
                continue
            if raw == self.last_raw:
                return self.last, True
            again = self._copy(ranges, changes)
            if again is None or again[:8] != raw[:8]:
                continue
            reading = self._combine(raw, again, caches)
            if reading is not None:
                self.last, self.last_raw = reading, raw
                return reading, True
        return self.last, False

    def _copy(self, ranges: Ranges, changes: bytes) -> bytes | None:
        """One copy of the process's state, if of one moment: no thread came or went since the walk (else
        it is walked again), no flush went by while copied (else a moment's wait)."""
        raw = ranges.read()
        if raw is None or raw[-16:-8] != changes:
            self.walked = None
            return None
        if raw[:8] != raw[-8:] or raw[0] % 2:
            time.sleep(RETRY_S)
            return None
        return raw

    def _combine(self, raw: bytes, again: bytes, caches: list[int]) -> list[int] | None:
        """Totals, batch and threads as one reading, if it passes the checks. A thread whose cache differs
        between the two copies ran meanwhile: it counts as of its last copy that stood still, if it has not
        flushed since (its flush_seq says), else as of its last flush (the totals hold it)."""
        n, at, t = self.map.cache_bytes, self.totals_bytes + self.counters_bytes, len(caches)
        words_ = np.frombuffer(raw, dtype=np.uint64, count=(at - 8) // 8, offset=8)
        if (words_ >= GARBAGE).any():
            return None
        total = words_[:self.counters_bytes // 8].astype(np.int64) + words_[self.counters_bytes // 8:].astype(np.int64)
        stood = {}
        if t:
            first = np.frombuffer(raw, dtype=np.uint8, count=t * n, offset=at).reshape(t, n)
            second = np.frombuffer(again, dtype=np.uint8, count=t * n, offset=at).reshape(t, n)
            counts, possible = thread_counts(first, self.f)
            still = (first == second).all(axis=1) & possible
            flush_seqs = first.view(np.uint64)[:, self.f.flush_seq].tolist()
            for i, address in enumerate(caches):
                if still[i]:
                    stood[address] = (flush_seqs[i], _sparse(counts[i]))  # not a view pinning all the rows
                else:
                    earlier = self.stood.get(address)
                    if earlier is not None and earlier[0] == flush_seqs[i]:
                        stood[address] = earlier
            self.busy_threads = t - int(still.sum())
            if stood:
                rows = np.array([_dense(c, total.size) for _, c in stood.values()])
                if (total + rows.astype(np.float64).sum(axis=0)).max() >= GARBAGE:  # the int64 sum would overflow
                    return None
                total = total + rows.sum(axis=0)
        if not consistent(self.lay, total) or (self.last_array is not None and (total < self.last_array).any()):
            return None
        self.stood, self.last_array = stood, total
        return total.tolist()


def _sparse(row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A thread's counts as its nonzero words (a thread touches a few classes: most of its 607 are 0)."""
    where = np.flatnonzero(row)
    return where, row[where]


def _dense(sparse: tuple[np.ndarray, np.ndarray], size: int) -> np.ndarray:
    row = np.zeros(size, dtype=np.int64)
    row[sparse[0]] = sparse[1]
    return row


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

    def read(self, images: dict[int, int]) -> dict[int, tuple[list[int], bool, str]]:
        """Readings of these live processes (pid -> the images the targets map has seen of it): each its
        counters block, whether it is of this moment (else the last good one), and what its runtime keeps
        from libhakmem (hakwatch/read/runtime.py). A process without one (gone, libhakmem not mapped yet,
        an old libhakmem, corrupt) is left out."""
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
                words_, fresh = reader.read()
            except Gone:  # exited, or exec'd: looked for again (a new image has its own state map)
                self.readers[pid] = (inits, None)
                continue
            except Exception as e:  # whatever its memory holds, one process never stops the others' readings
                self.say(corrupt_line(pid, str(e) if isinstance(e, (Corrupt, OSError)) else
                                      f"its state could not be read ({type(e).__name__}: {e})"))
                self.readers[pid] = (inits, NEVER)
                continue
            if words_ is not None:
                out[pid] = (words_, fresh, reader.hidden_by)
        return out

    def _open(self, pid: int) -> ProcessReader | str | None:
        from hakwatch.errors import HakwatchError
        from hakwatch.attach.library import state_map_address
        from hakwatch.attach.targets import library_of
        from hakwatch.read.runtime import hidden_by
        try:
            mapping = library_of(pid)
            if mapping is None:
                return None
            address = state_map_address(mapping)
            if not address:
                return NEVER
            reader = ProcessReader(pid, address, self.lay)
            reader.hidden_by = hidden_by(pid)  # once an image: it is decided at the interpreter's start
            return reader
        except Gone:
            return None
        except (HakwatchError, OSError):  # exited meanwhile: its exit goes by the targets map
            return None
        except Exception as e:  # a state map that makes no sense, or a library file that is no ELF
            self.say(corrupt_line(pid, str(e) if isinstance(e, Corrupt) else f"its libhakmem could not be read ({e})"))
            return NEVER
