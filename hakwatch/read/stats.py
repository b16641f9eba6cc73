"""The HAKMEM_STATS schema (libhakmem/STATS.md), written from what hakwatch saw: `run --summary`."""

import json

from hakwatch.contract.layout import load
from hakwatch.read.reader import Target


def to_stats(t: Target, version: str) -> dict:
    """`version` is the library's (the file says which libhakmem counted)."""
    mem = t.memory
    if mem is None:
        raise ValueError(f"process {t.pid}: no counts seen")
    return {
        "schema": load().stats_schema,
        "pid": t.pid,
        "version": version,
        "allocs": dict(t.allocs),
        "frees": dict(t.frees),
        "refills": {str(size): stages for size, stages in t.refills.items()},
        "refill_objects": {str(size): n for size, n in t.refill_objects.items()},
        "superslab_events": dict(t.superslab_events),
        "large_events": dict(t.large_events),
        "heap_errors": dict(t.heap_errors),
        "syscalls": {name: {"calls": c, "bytes": b} for name, (c, b) in t.os_calls.items()},
        "bytes": {"requested": mem.requested, "allocated": mem.allocated},
        "live_bytes": dict(mem.live_bytes),
        "superslabs": dict(mem.superslabs),
        "memory": {"mapped": mem.mapped, "resident_estimate": mem.resident_estimate, "layers": dict(mem.layers)},
    }


def write(f, t: Target, version: str):
    """To an open text file (opened while hakwatch was still root)."""
    json.dump(to_stats(t, version), f, indent=1)
    f.write("\n")
    f.flush()
