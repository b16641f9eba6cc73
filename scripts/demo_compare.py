"""Compare two files of the HAKMEM_STATS schema (libhakmem/STATS.md): the allocator's own counters and
hakwatch's `run --summary`. Prints the totals side by side and every difference; exits 1 if any.

Usage: demo_compare.py HAKMEM_STATS_FILE SUMMARY_FILE
"""

import json
import sys


def flatten(doc, prefix=""):
    """{"frees.tls_sll": 12, "refills.16.carve": 3, ...} for every number in the document."""
    out = {}
    for key, value in doc.items():
        if key in ("schema", "pid", "version"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def main():
    mine, theirs = (flatten(json.load(open(p))) for p in sys.argv[1:3])
    for group in ("allocs", "frees", "refills", "refill_objects", "superslab_events", "large_events", "syscalls",
                  "bytes", "live_bytes", "memory.layers"):
        a = sum(v for k, v in mine.items() if k.startswith(group + ".") and not k.endswith(".bytes"))
        b = sum(v for k, v in theirs.items() if k.startswith(group + ".") and not k.endswith(".bytes"))
        print(f"  {group:<18} allocator {a:>14,}   hakwatch {b:>14,}")
    diffs = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k, 0) != theirs.get(k, 0))
    for k in diffs:
        print(f"  DIFFERENT {k}: allocator {mine.get(k, 0)}, hakwatch {theirs.get(k, 0)}")
    print(f"  {len(mine)} counters compared: " + ("all equal" if not diffs else f"{len(diffs)} differ"))
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
