"""The HAKMEM_STATS schema (libhakmem/STATS.md), written from what hakwatch saw: `run --summary`."""

import json

from hakwatch import __version__
from hakwatch.reader import Target

SCHEMA = "hakmem-stats/1"


def to_stats(t: Target) -> dict:
    return {
        "schema": SCHEMA,
        "pid": t.pid,
        "version": __version__,
        "allocs": dict(t.allocs),
        "frees": dict(t.frees),
        "refills": {str(size): stages for size, stages in t.refills.items()},
        "refill_objects": {str(size): n for size, n in t.refill_objects.items()},
        "superslab_events": dict(t.superslab_events),
        "large_events": dict(t.large_events),
        "syscalls": {name: {"calls": c, "bytes": b} for name, (c, b) in t.os_calls.items()},
    }


def write(f, t: Target):
    """To an open text file (opened while hakwatch was still root)."""
    json.dump(to_stats(t), f, indent=1)
    f.write("\n")
    f.flush()
