"""The counters layout, read from probes/hakmem_counters.h (the header libhakmem and the BPF program
compile), so that class sizes and the names of stages, routes and syscalls exist in one place."""

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROBES_DIR = Path(__file__).resolve().parent.parent / "probes"
HEADER = PROBES_DIR / "hakmem_counters.h"

SS_EVENTS = ("map", "unmap", "lru_put", "lru_hit", "lru_evict", "madvise")  # order of struct events
LARGE_EVENTS = ("map", "unmap")
SYSCALLS = ("mmap", "munmap", "madvise", "mremap", "brk", "mincore")  # index = sc_key.nr in the BPF program


@dataclass(frozen=True)
class Layout:
    class_sizes: tuple[int, ...]
    stages: tuple[str, ...]
    routes: tuple[str, ...]
    os_calls: tuple[str, ...]
    version: int


def _define(text: str, name: str) -> str:
    m = re.search(rf"^#define {name} (.+)$", text, re.M)
    if not m:
        raise ValueError(f"{HEADER}: no #define {name}")
    return m.group(1).strip()


def _names(text: str, name: str) -> tuple[str, ...]:
    return tuple(x.strip().strip('"') for x in _define(text, name).split(","))


@lru_cache(maxsize=None)
def load(header: Path = HEADER) -> Layout:
    text = header.read_text()
    return Layout(
        class_sizes=tuple(int(x) for x in _define(text, "HAKMEM_CLASS_SIZES").split(",")),
        stages=_names(text, "HAKMEM_STAGE_NAMES"),
        routes=_names(text, "HAKMEM_ROUTE_NAMES"),
        os_calls=_names(text, "HAKMEM_OS_CALL_NAMES"),
        version=int(_define(text, "HAKMEM_COUNTERS_VERSION")),
    )


def counters_ctype(layout: Layout | None = None):
    """struct hakmem_counters as ctypes (bcc's own type for it drops the second dimension of the
    two-dimensional `refills` array, and a too-small buffer corrupts memory)."""
    import ctypes as ct

    lay = layout or load()
    nc, u64 = len(lay.class_sizes), ct.c_uint64

    class Counters(ct.Structure):
        _fields_ = [
            ("allocs", u64 * (nc + 1)),
            ("frees", u64 * len(lay.routes)),
            ("refills", (u64 * len(lay.stages)) * nc),
            ("refill_objects", u64 * nc),
            ("os_calls", u64 * len(lay.os_calls)),
            ("os_bytes", u64 * len(lay.os_calls)),
        ]

    return Counters
