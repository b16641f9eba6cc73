"""The collector and the summary writer on fixture map contents (no root, no BPF): map entries become
exactly DESIGN.md's series, exited targets expire after --retention, the summary has the
HAKMEM_STATS schema."""

import ctypes as ct
import io
import json
from collections import namedtuple
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hakwatch import stats
from hakwatch.collector import HakwatchCollector
from hakwatch.layout import counters_ctype, load
from hakwatch.reader import HIST_SLOTS, Reader


SyscallKey = namedtuple("SyscallKey", "pid nr")


class Table(dict):
    """What hakwatch uses of a bcc table: items(), values(), keys(), deletion by key."""

    def __delitem__(self, key):
        k = getattr(key, "value", key)
        super().__delitem__(k if k in self else key)

    def items(self):
        return [(SimpleNamespace(value=k) if isinstance(k, int) else k, v) for k, v in super().items()]


def fixture(now_exited=0):
    lay = load()
    c = counters_ctype()()
    c.allocs[lay.class_sizes.index(112)] = 1000
    c.allocs[len(lay.class_sizes)] = 3  # large
    c.frees[0], c.frees[2] = 900, 100
    c.refills[lay.class_sizes.index(112)][lay.stages.index("carve")] = 7
    c.refill_objects[lay.class_sizes.index(112)] = 280
    c.os_calls[0], c.os_bytes[0] = 2, 4 << 20
    hist = [0] * HIST_SLOTS
    hist[10] = 5  # 5 calls of 1-2 us
    tables = {
        "targets": Table({42: SimpleNamespace(comm=b"app\0", exited_ns=now_exited)}),
        "counters": Table({42: c}),
        "events": Table({42: SimpleNamespace(ss=[2, 0, 1, 1, 0, 0], large=[3, 3])}),
        "syscalls": Table({SyscallKey(pid=42, nr=0): SimpleNamespace(calls=5, bytes=5 << 20, sum_ns=7000, hist=hist)}),
        "faults": Table({42: SimpleNamespace(value=77)}),
        "refill_ns": Table(),
        "dropped": Table({0: SimpleNamespace(value=4)}),
    }
    return SimpleNamespace(table=lambda name: tables[name], tables=tables)


def scrape(probes, retention=60.0):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HakwatchCollector(Reader(probes, retention), "/lib/libhakmem.so"))
    return {s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(generate_latest(reg).decode()) for s in f.samples}


def value(samples, name, **labels):
    return samples[name + str(sorted({"pid": "42", "comm": "app", **labels}.items()))]


def test_map_entries_become_design_series():
    s = scrape(fixture())
    assert value(s, "hakmem_allocs_total", **{"class": "112"}) == 1000
    assert value(s, "hakmem_allocs_total", **{"class": "large"}) == 3
    assert value(s, "hakmem_frees_total", route="ss_remote") == 100
    assert value(s, "hakmem_refills_total", **{"class": "112", "stage": "carve"}) == 7
    assert value(s, "hakmem_superslabs", state="live") == 2 + 1 - 1  # map + hit - put
    assert value(s, "hakmem_superslabs", state="cached") == 0
    assert value(s, "hakmem_syscalls_total", syscall="mmap") == 5
    assert value(s, "hakmem_syscalls_total", syscall="brk") == 0
    assert value(s, "hakmem_syscall_duration_seconds_bucket", syscall="mmap", le="2.048e-06") == 5
    assert value(s, "hakmem_syscall_duration_seconds_bucket", syscall="mmap", le="1.024e-06") == 0
    assert value(s, "hakmem_page_faults_total") == 77
    assert s["hakwatch_targets_dropped_total[]"] == 4
    assert s["hakwatch_targets[]"] == 1


def test_an_exited_target_goes_after_retention():
    import time
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    probes = fixture(now_exited=now - 10 * 10**9)
    assert "hakmem_page_faults_total" + str(sorted({"pid": "42", "comm": "app"}.items())) in scrape(probes, 60)
    s = scrape(probes, retention=5)
    assert not any(k.startswith("hakmem_") for k in s), "series of an expired target are still exported"
    assert 42 not in probes.tables["counters"] and 42 not in probes.tables["targets"]


def test_summary_has_the_hakmem_stats_schema():
    t = Reader(fixture()).read()[42]
    out = io.StringIO()
    stats.write(out, t)
    doc = json.loads(out.getvalue())
    assert doc["schema"] == "hakmem-stats/1" and doc["pid"] == 42
    assert doc["allocs"] == {"112": 1000, "large": 3}
    assert doc["frees"] == {"tls_sll": 900, "ss_local": 0, "ss_remote": 100, "large": 0}
    assert doc["refills"] == {"112": {"local": 0, "remote": 0, "carve": 7, "slab": 0, "lru": 0, "map": 0}}
    assert doc["syscalls"]["mmap"] == {"calls": 2, "bytes": 4 << 20}
    assert doc["superslab_events"]["lru_put"] == 1 and doc["large_events"] == {"map": 3, "unmap": 3}


def test_counters_ctype_matches_the_header():
    lay = load()
    nc, ns, nr, no = len(lay.class_sizes), len(lay.stages), len(lay.routes), len(lay.os_calls)
    assert ct.sizeof(counters_ctype()) == 8 * ((nc + 1) + nr + nc * ns + nc + 2 * no)
