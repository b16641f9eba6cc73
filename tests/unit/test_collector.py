"""The collector and the summary writer on fixture map contents (no root, no BPF): map entries become
exactly DESIGN.md's series, exited targets expire after --retention, the summary has the
HAKMEM_STATS schema."""

import io
import json
import os
from collections import namedtuple
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hakwatch.read import stats
from hakwatch.export.collector import HakwatchCollector
from hakwatch.contract.layout import load, totals_ctype
from hakwatch.read.procfs import cgroup_of
from hakwatch.read.reader import Reader


SyscallKey = namedtuple("SyscallKey", "pid nr")
RefillKey = namedtuple("RefillKey", "pid class_size stage slot")


class Table(dict):
    """What hakwatch uses of a bcc table: items(), values(), keys(), deletion by key."""

    def __delitem__(self, key):
        k = getattr(key, "value", key)
        super().__delitem__(k if k in self else key)

    def __getitem__(self, key):
        k = getattr(key, "value", key)
        return super().__getitem__(k if k in self else key)

    def items(self):
        return [(SimpleNamespace(value=k) if isinstance(k, int) else k, v) for k, v in super().items()]


def fixture(now_exited=0):
    lay = load()
    totals = totals_ctype()()
    c = totals.counters
    i112, large = lay.class_sizes.index(112), len(lay.class_sizes)
    c.allocs[i112], c.frees[i112] = 1000, 890
    c.slab_frees[i112][1] = 100  # ss_remote: freed to another thread's slab
    c.allocs[large], c.frees[large] = 3, 3
    c.refills[i112][lay.stages.index("carve")] = 7
    c.refill_objects[i112] = 280
    c.os_calls[0], c.os_bytes[0] = 2, 4 << 20
    c.ss_events[:4] = [2, 0, 1, 1]  # map, unmap, lru_put, lru_hit
    c.large_events[:] = [3, 3]
    b = {name: i for i, name in enumerate(lay.byte_counts)}
    c.bytes[b["requested"]] = 1000 * 100
    hist = [0] * lay.hist_slots
    hist[10] = 5  # 5 calls of 1-2 us
    tables = {
        "targets": Table({42: SimpleNamespace(comm=b"app\0", exited_ns=now_exited, inits=1)}),
        "counters": Table({42: totals}),
        "syscalls": Table({SyscallKey(pid=42, nr=0): SimpleNamespace(calls=5, bytes=5 << 20, sum_ns=7000, hist=hist)}),
        "faults": Table({42: SimpleNamespace(value=77)}),
        "refill_ns": Table({RefillKey(pid=42, class_size=112, stage=2, slot=12): SimpleNamespace(count=4, sum_ns=20000)}),
        "dropped": Table({0: SimpleNamespace(value=4)}),
    }
    return SimpleNamespace(table=lambda name: tables[name], tables=tables)


def scrape(probes, lib, retention=60.0):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HakwatchCollector(Reader(probes, retention), str(lib)))
    return {s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(generate_latest(reg).decode()) for s in f.samples}


def value(samples, name, **labels):
    return samples[name + str(sorted({"pid": "42", "comm": "app", **labels}.items()))]


def test_map_entries_become_design_series(libhakmem):
    s = scrape(fixture(), libhakmem)
    assert value(s, "hakwatch_target_info", library=str(libhakmem), version="0.1.0", cgroup=cgroup_of(42), hidden_by="") == 1, \
        "the version label is the library's (its hakmem_version symbol)"
    assert value(s, "hakmem_allocs_total", **{"class": "112"}) == 1000
    assert value(s, "hakmem_allocs_total", **{"class": "large"}) == 3
    assert value(s, "hakmem_frees_total", route="ss_remote") == 100
    assert value(s, "hakmem_frees_total", route="tls_sll") == 890
    assert value(s, "hakmem_live_bytes", **{"class": "112"}) == 10 * 112
    assert "hakmem_live_bytes" + str(sorted({"pid": "42", "comm": "app", "class": "large"}.items())) not in s, \
        "a class with nothing live is no series"
    assert value(s, "hakmem_requested_bytes_total") == 100000
    assert value(s, "hakmem_allocated_bytes_total") == 1000 * 112
    assert value(s, "hakmem_memory_bytes", layer="live") == 10 * 112
    assert value(s, "hakmem_refill_duration_seconds_count", **{"class": "112", "stage": "carve"}) == 4
    assert value(s, "hakmem_refill_duration_seconds_sum", **{"class": "112", "stage": "carve"}) == 20000 / 1e9
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


def test_an_exited_target_goes_after_retention(libhakmem):
    import time
    now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    probes = fixture(now_exited=now - 10 * 10**9)
    assert "hakmem_page_faults_total" + str(sorted({"pid": "42", "comm": "app"}.items())) in scrape(probes, libhakmem, 60)
    s = scrape(probes, libhakmem, retention=5)
    assert not any(k.startswith("hakmem_") for k in s), "series of an expired target are still exported"
    assert 42 not in probes.tables["counters"] and 42 not in probes.tables["targets"]


def test_summary_has_the_hakmem_stats_schema():
    t = Reader(fixture()).read()[42]
    out = io.StringIO()
    stats.write(out, t, "9.9.9")
    doc = json.loads(out.getvalue())
    assert doc["schema"] == load().stats_schema and doc["pid"] == 42 and doc["version"] == "9.9.9"
    assert doc["allocs"] == {"112": 1000, "large": 3}
    assert doc["frees"] == {"tls_sll": 890, "ss_local": 0, "ss_remote": 100, "large": 3}
    assert doc["live_bytes"] == {"112": 1120}
    assert doc["bytes"] == {"requested": 100000, "allocated": 112000}
    assert set(doc["memory"]["layers"]) == set(load().layers)
    assert doc["refills"] == {"112": {"local": 0, "remote": 0, "carve": 7, "slab": 0, "lru": 0, "map": 0}}
    assert doc["syscalls"]["mmap"] == {"calls": 2, "bytes": 4 << 20}
    assert doc["superslab_events"]["lru_put"] == 1 and doc["large_events"] == {"map": 3, "unmap": 3}


def test_a_read_that_raced_a_flush_is_read_again():
    """The first read of an entry has a flush half added (mapped bytes without the SuperSlab batch
    they belong to); the reader sees the layers do not add up and reads the entry again."""
    lay = load()
    b = {name: i for i, name in enumerate(lay.byte_counts)}
    torn, whole = totals_ctype()(), totals_ctype()()
    torn.counters.os_bytes[0] = whole.counters.os_bytes[0] = 8 << 20
    whole.counters.bytes[b["ss_reserved"]] = 8 << 20

    class Racing(Table):
        def items(self):
            return [(SimpleNamespace(value=42), torn)]
    probes = fixture()
    probes.tables["counters"] = Racing({42: whole})
    mem = Reader(probes).read()[42].memory
    assert mem.mapped == 8 << 20 and mem.layers["superslab_reserved"] == 8 << 20


def test_cgroup_of_names_the_control_group():
    own = cgroup_of(os.getpid())
    assert own.startswith("/"), own
    assert own == open("/proc/self/cgroup").read().splitlines()[-1].split(":", 2)[2]
    assert cgroup_of(0x3FFFFFFF) == ""  # above pid_max: no such process
