"""Show what hakwatch's /metrics says while the demo runs: every few seconds, where the memory is (the
allocator's layers, the kernel's RSS beside the allocator's resident estimate), per-second rates from
two scrapes (allocations, frees by route, refills by stage, memory syscalls, page faults) and the
SuperSlab gauges; at the end, the last scrape's hakmem_* series as Prometheus sees them.

Usage: demo_show.py URL [INTERVAL]. Returns when the endpoint stops answering (the watched command
ended and `hakwatch run` exited).
"""

import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families
from hakwatch.contract.layout import load


def scrape(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def totals(text):
    """{(metric, label value that matters): value} summed over pids."""
    out = defaultdict(float)
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if not s.name.startswith("hakmem_") or s.name.endswith(("_bucket", "_created")):
                continue
            key = s.labels.get("route") or s.labels.get("stage") or s.labels.get("syscall") \
                or s.labels.get("state") or s.labels.get("event") or s.labels.get("layer") \
                or s.labels.get("kind") or ""
            out[(s.name, key)] += s.value
    return out


def line(title, pairs):
    return f"  {title:<16}" + "  ".join(f"{k} {v:>10,.0f}" for k, v in pairs)


MIB = 1 << 20
LAYOUT = load()


def mib(title, pairs):
    return f"  {title:<16}" + "  ".join(f"{k} {v / MIB:,.1f}" for k, v in pairs)


def show(prev, cur, dt):
    rate = lambda name, key="": (cur.get((name, key), 0) - prev.get((name, key), 0)) / dt
    print(f"[{time.strftime('%H:%M:%S')}] memory now, MiB:")
    print(mib("layers", [(k, cur.get(("hakmem_memory_bytes", k), 0)) for k in LAYOUT.layers if cur.get(("hakmem_memory_bytes", k))]))
    print(mib("mapped", [("", cur.get(("hakmem_mapped_bytes", ""), 0)),
                         ("allocator resident (est.)", cur.get(("hakmem_resident_estimate_bytes", ""), 0))]))
    print(mib("RSS (kernel)", [(k, cur.get(("hakmem_process_resident_bytes", k), 0)) for k in ("anon", "file", "shmem")]))
    allocs = rate("hakmem_allocs_total")
    calls = sum(rate("hakmem_syscalls_total", s) for s in load().churn_syscalls)  # the churn alert's
    print("  per second:")
    print(line("allocations", [("", allocs)]))
    print(line("frees by route", [(r, rate("hakmem_frees_total", r)) for r in LAYOUT.routes]))
    print(line("refills by stage", [(s, rate("hakmem_refills_total", s)) for s in LAYOUT.stages]))
    print(line("memory syscalls", [(s, rate("hakmem_syscalls_total", s)) for s in load().churn_syscalls]
               + [("per 1k allocs", 1000 * calls / allocs if allocs else 0)]))
    print(line("page faults", [("", rate("hakmem_page_faults_total"))]))
    print(line("superslabs now", [(s, cur.get(("hakmem_superslabs", s), 0)) for s in load().superslab_states]))


def main():
    url = sys.argv[1]
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    text = None
    prev, prev_t = None, None
    while True:
        got = scrape(url)
        if got is None:
            if text is not None:
                break
            time.sleep(0.2)  # hakwatch still loading its BPF programs
            continue
        text, now = got, time.monotonic()
        cur = totals(text)
        if prev is not None and cur:
            show(prev, cur, now - prev_t)
        prev, prev_t = cur, now
        time.sleep(interval)
    print("\nThe last scrape's hakmem_* series (histogram buckets left out):")
    for ln in text.splitlines():
        if ln.startswith("hakmem_") and "_bucket" not in ln and "_created" not in ln:
            print("  " + ln)


if __name__ == "__main__":
    main()
