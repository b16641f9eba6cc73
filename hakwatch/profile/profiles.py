"""Profiles of a watched process from the BPF maps of PROFILE (probes/hakwatch.bpf.c): its stacks
with what they did, as pprof's data model has it (sample types, samples of values by stack).

  alloc   who allocates: the allocation samples by stack, each standing for its weight in bytes
  inuse   who holds: the samples not freed yet
  churn   who makes the allocator and the kernel work: SuperSlab maps, unmaps, LRU evictions and
          purges, large-block maps and unmaps, memory syscalls, by stack and event

The allocator's own frames (and the C library's under them, a syscall's wrapper) are dropped from the
leaf end of each stack: a profile says which of the program's code did it.
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field
from hakwatch.contract.layout import load
from hakwatch.profile.symbols import Mapping

KINDS = {
    "alloc": (("alloc_objects", "count"), ("alloc_space", "bytes")),
    "inuse": (("inuse_objects", "count"), ("inuse_space", "bytes")),
    "churn": (("events", "count"), ("bytes", "bytes")),
}
LOST = "[stack lost]"  # the stack map was full
ALLOCATOR = "libhakmem"


@dataclass(frozen=True)
class Frame:
    address: int
    function: str
    mapping: Mapping | None


@dataclass
class Profile:
    kind: str
    sample_types: tuple[tuple[str, str], ...]
    samples: list[tuple[tuple[Frame, ...], tuple[int, int], dict[str, str]]]  # leaf first
    mappings: list[Mapping]
    start_ns: int
    duration_ns: int
    comments: list[str] = field(default_factory=list)


def event_names() -> tuple[str, ...]:
    """By index of enum hakwatch_event: the allocator's events, then one per syscall."""
    lay = load()
    return lay.events + lay.syscalls


def _program_frames(frames: list[Frame]) -> list[Frame]:
    """Without the allocator's frames at the leaf end (and the C library's under them)."""
    cut = 0
    for i, f in enumerate(frames):
        name = f.mapping.name if f.mapping else ""
        if ALLOCATOR in name:
            cut = i + 1
        elif not name.startswith("libc."):
            break
    return frames[cut:] if cut < len(frames) else frames


Rows = dict[tuple[int, str], list[int]]  # (stack id, event) -> [count, bytes]


def read(probes, kind: str) -> dict[int, Rows]:
    """Every process's rows of `kind`, by pid, from one walk of the maps as they are now."""
    out: dict[int, Rows] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    names = event_names()
    if kind == "inuse":
        for k, v in _entries(probes.table("live")):
            row = out[k.pid][(v.stack, "")]
            row[0] += v.objects
            row[1] += v.bytes
        return out
    for k, v in _entries(probes.table("sites")):
        if k.event < len(names) and (kind == "alloc") == (names[k.event] == "sample"):
            row = out[k.pid][(k.stack, "" if kind == "alloc" else names[k.event])]
            row[0] += v.count
            row[1] += v.bytes
    return out


def _entries(table) -> list:
    """A map's entries, each once: a walk of a BPF hash starts over from its first entry when the one it
    stands on is deleted meanwhile (a sample freed, a process forgotten), and would count some twice."""
    return list({bytes(k): (k, v) for k, v in table.items()}.values())


def build(probes, symbols, kind: str, start_ns: int, rows: Rows | None = None) -> Profile:
    """The profile of `kind` for the process `symbols` is of (a ProcessSymbols, or the symbol helper's
    RemoteSymbols), its stacks symbolized; from `rows` when its rows were read already."""
    rows = read(probes, kind).get(symbols.pid, {}) if rows is None else rows
    addresses = _addresses(probes.table("stacks"), {stack for stack, _ in rows})
    names = symbols.resolve(sorted({a for stack in addresses.values() for a in stack}))
    frames_of = {stack: _frames(a, names) for stack, a in addresses.items()}
    samples = []
    for (stack, event), (count, nbytes) in rows.items():
        labels = {"pid": str(symbols.pid), **({"event": event} if event else {})}
        samples.append((frames_of[stack], (count, nbytes), labels))
    samples.sort(key=lambda s: -s[1][1])
    return Profile(kind=kind, sample_types=KINDS[kind], samples=samples, mappings=symbols.mappings,
                   start_ns=start_ns, duration_ns=time.time_ns() - start_ns)


def merge(profiles: list[Profile], kind: str, start_ns: int) -> Profile:
    """Several processes' profiles as one (each sample keeps its `pid` label)."""
    return Profile(kind=kind, sample_types=KINDS[kind], samples=[s for p in profiles for s in p.samples],
                   mappings=list(dict.fromkeys(m for p in profiles for m in p.mappings)),
                   start_ns=start_ns, duration_ns=time.time_ns() - start_ns)


def _addresses(stacks, ids: set[int]) -> dict[int, list[int]]:
    """Stack id -> its addresses, leaf first; [] for a stack lost (the stack map was full)."""
    out = {}
    for stack in ids:
        try:
            out[stack] = list(stacks.walk(stack)) if stack != load().stack_lost else []
        except KeyError:
            out[stack] = []
    return out


def _frames(addresses: list[int], names: dict[int, tuple[str, Mapping | None]]) -> tuple[Frame, ...]:
    if not addresses:
        return (Frame(0, LOST, None),)
    return tuple(_program_frames([Frame(a, *names[a]) for a in addresses]))
