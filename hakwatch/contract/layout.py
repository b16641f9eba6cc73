"""The contract's facts, read from the C headers that libhakmem and the BPF program compile
(probes/hakmem_counters.h, probes/hakwatch_maps.h), so that each exists in one place: class sizes,
the names of stages, routes, syscalls, events, byte counts and memory layers, the SuperSlab
geometry, and the fields of struct hakmem_counters, from which the ctypes mirror is built."""

import ast
import ctypes as ct
import math
import re
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

# Installed (pip install .), the package data (hakwatch/probes); in a checkout, the repository's probes/.
_PACKAGE = Path(__file__).resolve().parent.parent
PROBES_DIR = next(d for d in (_PACKAGE / "probes", _PACKAGE.parent / "probes") if (d / "hakwatch.bpf.c").exists())
COUNTERS_H = PROBES_DIR / "hakmem_counters.h"
MAPS_H = PROBES_DIR / "hakwatch_maps.h"


@dataclass(frozen=True)
class Layout:
    version: int
    class_sizes: tuple[int, ...]
    stages: tuple[str, ...]
    routes: tuple[str, ...]
    os_calls: tuple[str, ...]
    ss_events: tuple[str, ...]
    large_events: tuple[str, ...]
    heap_errors: tuple[str, ...]
    byte_counts: tuple[str, ...]     # index names of counters.bytes[]
    layers: tuple[str, ...]
    superslab_bytes: int
    superslab_header_bytes: int
    syscalls: tuple[str, ...]        # index = sc_key.nr in the BPF program
    events: tuple[str, ...]          # enum hakwatch_event before HAKWATCH_EV_SYSCALL (profiles)
    hist_slots: int
    fields: tuple[tuple[str, tuple[int, ...]], ...]  # struct hakmem_counters: (name, dimensions)
    stats_schema: str                # HAKMEM_STATS files' "schema"
    superslab_states: tuple[str, ...]  # live, cached, purged
    large_slot: str                  # the slot of allocs[]/frees[] after the classes, by name
    churn_syscalls: tuple[str, ...]  # the syscalls of churn (the alerts' ratio), some of `syscalls`
    stack_lost: int                  # a profile site's stack id when no stack was taken
    state_map: tuple[str, ...]       # struct hakmem_state_map's fields, every one a __u64
    state_map_version: int
    state_map_symbol: str
    max_threads: int


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def _define(text: str, name: str, where: Path) -> str:
    m = re.search(rf"^#define {name} (.+)$", text, re.M)
    if not m:
        raise ValueError(f"{where}: no #define {name}")
    return m.group(1).strip()


def _names(text: str, name: str, where: Path) -> tuple[str, ...]:
    return tuple(x.strip().strip('"') for x in _define(text, name, where).split(","))


def _enumerators(text: str) -> dict[str, int]:
    """Every enumerator of every enum, by its index (the headers assign no explicit values)."""
    values = {}
    for body in re.findall(r"enum \w+ \{(.*?)\};", _strip_comments(text), re.S):
        for i, name in enumerate(n.strip() for n in body.split(",") if n.strip()):
            values[name] = i
    return values


def _evaluate(expr: str, symbols: dict[str, int]) -> int:
    """An array dimension: numbers, known symbols, + and -."""
    spelled = re.sub(r"[A-Za-z_]\w*", lambda m: str(symbols[m.group(0)]), expr)
    tree = ast.parse(spelled, mode="eval")
    if not all(isinstance(n, (ast.Expression, ast.BinOp, ast.Add, ast.Sub, ast.Constant)) for n in ast.walk(tree)):
        raise ValueError(f"unsupported array dimension {expr!r}")
    return eval(compile(tree, "<dimension>", "eval"))  # only literals and +/- remain


def _fields(text: str, symbols: dict[str, int], struct: str = "hakmem_counters") -> tuple[tuple[str, tuple[int, ...]], ...]:
    m = re.search(rf"struct {struct} \{{(.*?)\}};", _strip_comments(text), re.S)
    if not m:
        raise ValueError(f"{COUNTERS_H}: no struct {struct}")
    fields = []
    for line in m.group(1).splitlines():
        line = line.strip()
        if not line:
            continue
        f = re.fullmatch(r"__u64 (\w+)((?:\[[^\]]+\])*);", line)
        if not f:
            raise ValueError(f"{COUNTERS_H}: cannot read the field {line!r} (one __u64 field a line)")
        dims = tuple(_evaluate(d, symbols) for d in re.findall(r"\[([^\]]+)\]", f.group(2)))
        fields.append((f.group(1), dims))
    return tuple(fields)


@lru_cache(maxsize=None)
def load(counters_h: Path = COUNTERS_H, maps_h: Path = MAPS_H) -> Layout:
    text, maps = counters_h.read_text(), maps_h.read_text()
    symbols = _enumerators(text)
    symbols["HAKMEM_NUM_CLASSES"] = int(_define(text, "HAKMEM_NUM_CLASSES", counters_h))
    syscalls, churn = _names(maps, "HAKWATCH_SYSCALL_NAMES", maps_h), _names(maps, "HAKWATCH_CHURN_SYSCALL_NAMES", maps_h)
    if not set(churn) <= set(syscalls):  # a syscall the BPF program does not trace would count nothing
        raise ValueError(f"{maps_h}: HAKWATCH_CHURN_SYSCALL_NAMES {churn} are not all traced ({syscalls})")
    return Layout(
        version=int(_define(text, "HAKMEM_COUNTERS_VERSION", counters_h)),
        class_sizes=tuple(int(x) for x in _define(text, "HAKMEM_CLASS_SIZES", counters_h).split(",")),
        stages=_names(text, "HAKMEM_STAGE_NAMES", counters_h),
        routes=_names(text, "HAKMEM_ROUTE_NAMES", counters_h),
        os_calls=_names(text, "HAKMEM_OS_CALL_NAMES", counters_h),
        ss_events=_names(text, "HAKMEM_SS_EVENT_NAMES", counters_h),
        large_events=_names(text, "HAKMEM_LARGE_EVENT_NAMES", counters_h),
        heap_errors=_names(text, "HAKMEM_HEAP_ERROR_NAMES", counters_h),
        byte_counts=_names(text, "HAKMEM_BYTES_NAMES", counters_h),
        layers=_names(text, "HAKMEM_LAYER_NAMES", counters_h),
        superslab_bytes=int(_define(text, "HAKMEM_SUPERSLAB_BYTES", counters_h)),
        superslab_header_bytes=int(_define(text, "HAKMEM_SUPERSLAB_HEADER_BYTES", counters_h)),
        syscalls=syscalls,
        events=_names(maps, "HAKWATCH_EVENT_NAMES", maps_h),
        hist_slots=int(_define(maps, "HAKWATCH_HIST_SLOTS", maps_h)),
        fields=_fields(text, symbols),
        stats_schema=_define(text, "HAKMEM_STATS_SCHEMA", counters_h).strip('"'),
        superslab_states=_names(text, "HAKMEM_SUPERSLAB_STATE_NAMES", counters_h),
        large_slot=_define(text, "HAKMEM_SLOT_NAME_LARGE", counters_h).strip('"'),
        churn_syscalls=churn,
        stack_lost=int(_define(maps, "HAKWATCH_STACK_LOST", maps_h)),
        state_map=tuple(name for name, _ in _fields(text, symbols, "hakmem_state_map")),
        state_map_version=int(_define(text, "HAKMEM_STATE_MAP_VERSION", counters_h)),
        state_map_symbol=_define(text, "HAKMEM_STATE_MAP_SYMBOL", counters_h).strip('"'),
        max_threads=int(_define(text, "HAKMEM_MAX_THREADS", counters_h).split()[0]),
    )


@lru_cache(maxsize=None)
def counters_ctype(layout: Layout | None = None):
    """struct hakmem_counters as ctypes, from the header's fields (bcc's own type for it drops the
    second dimension of two-dimensional arrays, and a too-small buffer corrupts memory)."""
    lay = layout or load()
    fields = []
    for name, dims in lay.fields:
        t = ct.c_uint64
        for d in reversed(dims):
            t = t * d
        fields.append((name, t))
    return type("Counters", (ct.Structure,), {"_fields_": fields})


@lru_cache(maxsize=None)
def totals_ctype(layout: Layout | None = None):
    """struct hakmem_totals: the seq of the last flush included, then the counters."""
    return type("Totals", (ct.Structure,), {"_fields_": [("seq", ct.c_uint64), ("counters", counters_ctype(layout))]})


_CTYPES = {"__u64": ct.c_uint64, "__u32": ct.c_uint32, "__s32": ct.c_int32, "char": ct.c_char}


@lru_cache(maxsize=None)
def map_ctype(struct: str, maps_h: Path = MAPS_H):
    """A key or value struct of the BPF maps, as ctypes, from probes/hakwatch_maps.h (bcc would make one
    from the program's text too, by field names only; this one is the header's, checked against the C
    compiler's layout by tests/unit/test_layout.py)."""
    text = maps_h.read_text()
    m = re.search(rf"struct {struct} \{{(.*?)\}};", _strip_comments(text), re.S)
    if not m:
        raise ValueError(f"{maps_h}: no struct {struct}")
    fields = []
    for line in filter(None, (x.strip() for x in m.group(1).splitlines())):
        f = re.fullmatch(r"(__u64|__u32|__s32|char) (\w+)(?:\[(\w+)\])?;", line)
        if not f:
            raise ValueError(f"{maps_h}: cannot read the field {line!r} of struct {struct}")
        t = _CTYPES[f.group(1)]
        if f.group(3):
            t = t * (int(f.group(3)) if f.group(3).isdigit() else int(_define(text, f.group(3), maps_h)))
        fields.append((f.group(2), t))
    return type(struct, (ct.Structure,), {"_fields_": fields})


@lru_cache(maxsize=None)
def state_map_ctype(layout: Layout | None = None):
    """struct hakmem_state_map: where a process's unflushed counts are (hakwatch/read/live.py)."""
    return type("StateMap", (ct.Structure,), {"_fields_": [(n, ct.c_uint64) for n in (layout or load()).state_map]})


def words(layout: Layout | None = None) -> int:
    """The u64 words of struct hakmem_counters."""
    return sum(math.prod(dims) for _, dims in (layout or load()).fields)


def flat(c) -> list[int]:
    """A counters block (the ctypes mirror) as one list of its words, field after field: cheap to
    compare and to add (hakwatch/read/groups.py sums blocks word by word)."""
    return array("Q", bytes(c)).tolist()


def plain(words_: list[int], layout: Layout | None = None) -> SimpleNamespace:
    """A flat counters block as plain lists, field by field (two-dimensional fields as lists of rows):
    a ctypes array costs several times a list per element read, and a scrape reads every field."""
    lay = layout or load()
    out, at = {}, 0
    for name, dims in lay.fields:
        n = math.prod(dims)
        part = words_[at:at + n]
        out[name] = [part[r * dims[1]:(r + 1) * dims[1]] for r in range(dims[0])] if len(dims) == 2 else part
        at += n
    return SimpleNamespace(**out)
