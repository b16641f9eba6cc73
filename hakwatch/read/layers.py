"""The gauges, from a process's counters (DESIGN.md, "The memory layers"): live bytes by class, the
memory layers, mapped bytes, the resident estimate, SuperSlabs by state, free routes. The same
arithmetic as libhakmem/src/layers.c; the tests hold the two equal (HAKMEM_STATS against
`hakwatch run --summary`)."""

from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter, mul

from hakwatch.contract.layout import Layout, plain, words


@dataclass(frozen=True)
class Memory:
    live_bytes: dict[str, int]   # class size (as text) or "large" -> bytes; nonzero ones only
    layers: dict[str, int]       # layer -> bytes, every layer, in stacking order
    mapped: int
    resident_estimate: int
    superslabs: dict[str, int]   # live, cached, purged
    requested: int
    allocated: int


def routes(lay: Layout, c) -> dict[str, int]:
    """Frees by route: frees[] counts the thread-cache route by class (and large blocks), slab_frees[]
    the two slab routes by class."""
    n = len(lay.class_sizes)
    cached = sum(c.frees[i] for i in range(n))
    local, remote = (sum(c.slab_frees[i][r] for i in range(n)) for r in (0, 1))
    return dict(zip(lay.routes, (cached, local, remote, c.frees[n])))


def memory(lay: Layout, c) -> Memory:
    """`c` is anything with the fields of struct hakmem_counters (the ctypes mirror, or lists)."""
    b = dict(zip(lay.byte_counts, c.bytes))
    e = dict(zip(lay.ss_events, c.ss_events))
    sizes, n = lay.class_sizes, len(lay.class_sizes)
    ss, hdr = lay.superslab_bytes, lay.superslab_header_bytes
    live = {str(size): (c.allocs[i] - c.frees[i] - c.slab_frees[i][0] - c.slab_frees[i][1]) * size
            for i, size in enumerate(sizes)}
    live[lay.large_slot] = b["large_alloc"] - b["large_free"]
    refilled = sum(c.refill_objects[i] * sizes[i] for i in range(n))
    cached = sum(c.frees[i] * sizes[i] for i in range(n))
    allocated_small = sum(c.allocs[i] * sizes[i] for i in range(n))
    local = sum(c.slab_frees[i][0] * sizes[i] for i in range(n))
    remote = sum(c.slab_frees[i][1] * sizes[i] for i in range(n))
    drained, returned = b["remote_drained"], b["cache_returned"]
    carved, released_carved = b["carved"], b["slab_out_carved"]
    slabs = b["slab_in"] - b["slab_out"]
    ss_live = e["map"] + e["lru_hit"] - e["lru_put"] - (e["unmap"] - e["lru_evict"])
    ss_cached = e["lru_put"] - e["lru_hit"] - e["lru_evict"]
    ss_purged = e["madvise"] - e["unpurge"]
    values = {
        "live": sum(live.values()),
        "thread_cache": refilled + cached - allocated_small - returned,
        "remote_free": remote - drained,
        "slab_free": local + drained + returned - (refilled - carved) - released_carved,
        "never_carved": slabs - (carved - released_carved),
        "free_pages": ss_live * (ss - hdr) - slabs,
        "superslab_lru": (ss_cached - ss_purged) * ss,
        "superslab_purged": ss_purged * ss,
        "superslab_reserved": b["ss_reserved"] - e["map"] * ss,
        "large_cache": b["large_map"] - b["large_unmap"] - live[lay.large_slot],
        "metadata": ss_live * hdr + b["metadata"],
    }
    os_bytes = dict(zip(lay.os_calls, c.os_bytes))
    return Memory(
        live_bytes={k: v for k, v in live.items() if v},
        layers={name: values[name] for name in lay.layers},
        mapped=os_bytes["mmap"] - os_bytes["munmap"],
        resident_estimate=b["touched_in"] - b["touched_out"] + b["large_map"] - b["large_unmap"] + b["metadata"],
        superslabs=dict(zip(lay.superslab_states, (ss_live, ss_cached, ss_purged))),
        requested=b["requested"],
        allocated=allocated_small + b["large_alloc"],
    )


@lru_cache(maxsize=None)
def _imbalance(lay: Layout) -> tuple[itemgetter, tuple[int, ...]]:
    """The layers' sum less the mapped bytes, as the linear function of the counters' words it is: the
    words it reads and their factors (from gauge_factors' rows)."""
    rows = gauge_factors(lay)
    layers, mapped = rows[:len(lay.layers)], rows[-1]
    factors = [sum(column) - m for column, m in zip(zip(*layers), mapped)]
    where = [i for i, f in enumerate(factors) if f]
    return itemgetter(*where), tuple(factors[i] for i in where)


def balanced(lay: Layout, words_: list[int]) -> bool:
    """The memory layers add up to the mapped bytes, as every complete set of flushes does: false for a
    read that raced a flush being added to the map field by field."""
    pick, factors = _imbalance(lay)
    return sum(map(mul, pick(words_), factors)) == 0


@lru_cache(maxsize=None)
def gauge_factors(lay: Layout) -> tuple[tuple[int, ...], ...]:
    """Every layer, then each class's live bytes (large last), then the mapped bytes, as linear functions
    of the counters' words (every gauge is one): one row of factors each, found by evaluating memory()
    on each word alone. hakwatch/read/live.py checks a reading with them in one matrix product."""
    n, columns = words(lay), []
    for i in range(n):
        unit = [0] * n
        unit[i] = 1
        m = memory(lay, plain(unit, lay))
        live = [m.live_bytes.get(str(size), 0) for size in lay.class_sizes] + [m.live_bytes.get(lay.large_slot, 0)]
        columns.append([m.layers[name] for name in lay.layers] + live + [m.mapped])
    return tuple(zip(*columns))
