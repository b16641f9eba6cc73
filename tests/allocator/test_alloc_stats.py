"""HAKMEM_STATS (libhakmem/STATS.md): the file is valid JSON with every
fixed-name key (schema hakmem-stats/3), its numbers agree with what the program did, %p expands to the pid,
HAKMEM_SS_LRU_SIZE=0 disables the SuperSlab LRU, HAKMEM_THP=1 adds one madvise per SuperSlab mapping, and
the syscall counts cover the mapping events.

The workloads (programs/alloc_stats.c) use no stdio, so the C library keeps no block of its own live
at exit and "everything allocated was freed" holds for the whole process."""

import re

from hakmem_testlib import check_stats_schema, check_syscalls_plausible, load_stats


def run_stats(hak, prog, tmp_path, *args, env=None, name="stats.json"):
    path = tmp_path / name
    res = hak.run([prog("alloc_stats"), *args], stats=path, env=env, timeout=60)
    m = re.fullmatch(r"pid (\d+)\n", res.stdout)
    assert m, res.report()
    pid = int(m.group(1))
    path = tmp_path / name.replace("%p", str(pid))
    return check_stats_schema(load_stats(path), pid=pid), res, pid


def totals(s):
    return sum(s["allocs"].values()), sum(s["frees"].values())


def test_schema_and_balance_single_thread(hak, prog, tmp_path):
    s, res, _ = run_stats(hak, prog, tmp_path, "balanced", 10000)
    allocs, frees = totals(s)
    assert allocs == frees, (
        f"a program that freed everything: sum(allocs) {allocs} != sum(frees) {frees}\n"
        f"allocs {s['allocs']}\nfrees {s['frees']}")
    # 10000 malloc(100), 98 blocks of growing sizes (s = s + s/8 + 1 up to 600000), 20 large ones
    assert allocs >= 10000 + 98 + 20, f"only {allocs} allocations counted: {s['allocs']}"
    assert s["allocs"].get("112", 0) >= 10000, \
        f"10000 malloc(100) should land in class 112: allocs {s['allocs']}"
    # 20 blocks of 1 MiB (and bigger reallocs) are large blocks, freed as large blocks
    assert s["allocs"].get("large", 0) >= 20, f"allocs {s['allocs']}"
    assert s["frees"]["large"] >= 20, f"frees {s['frees']}"
    assert s["frees"]["large"] == s["allocs"].get("large", 0), \
        f"every large block was freed: allocs {s['allocs'].get('large')} frees {s['frees']['large']}"
    # a single thread never frees to another thread's slab
    assert s["frees"]["ss_remote"] == 0, f"single-threaded program, frees {s['frees']}"
    assert s["superslab_events"]["map"] >= 1, s["superslab_events"]
    check_syscalls_plausible(s)
    assert res.stderr == "", res.report()


def test_class_112_counts_grow_with_the_mallocs(hak, prog, tmp_path):
    """The 100-byte count is not a constant: 30000 malloc(100) show up as >= 30000 in class 112,
    20000 more than the run with 10000."""
    s1, _, _ = run_stats(hak, prog, tmp_path, "balanced", 10000, name="a.json")
    s3, _, _ = run_stats(hak, prog, tmp_path, "balanced", 30000, name="b.json")
    assert s3["allocs"].get("112", 0) >= 30000, s3["allocs"]
    assert s3["allocs"]["112"] - s1["allocs"]["112"] == 20000, (s1["allocs"], s3["allocs"])


def test_threads_nearly_balanced(hak, prog, tmp_path):
    """4 threads trading blocks. glibc itself keeps one small block per thread (its TLS vector, calloc'd
    by pthread_create) in its cache of thread stacks: the 4 threads live at once, so 4 stacks, 4 blocks."""
    s, res, _ = run_stats(hak, prog, tmp_path, "threads")
    allocs, frees = totals(s)
    # each thread 20000 times mallocs a block, swaps it into the next thread's box and frees what was
    # there, then mallocs and frees one of its own: 40000 mallocs, 40000 frees but the first swap's
    # (NULL: no free). main frees the 4 blocks left in the boxes. The 4 allocs more are glibc's.
    assert allocs == 4 * 40000 + 4, f"allocs {allocs}: {s['allocs']}"
    assert frees == 4 * 40000, f"frees {frees}: {s['frees']}"
    check_syscalls_plausible(s)
    assert res.stderr == "", res.report()


def test_pid_expansion(hak, prog, tmp_path):
    s, _, pid = run_stats(hak, prog, tmp_path, "balanced", 100, name="stats-%p.json")
    assert (tmp_path / f"stats-{pid}.json").exists()
    assert not (tmp_path / "stats-%p.json").exists(), "%p was not expanded"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"stats-{pid}.json"]


def test_pid_expansion_forking_program(hak, prog, tmp_path):
    """A parent and its 3 children (which end with exit()) each write their own file."""
    hak.run([prog("alloc_fork"), 2, 3], stats=tmp_path / "f-%p.json", timeout=120)
    files = sorted(tmp_path.glob("f-*.json"))
    assert len(files) == 4, f"expected 4 stats files (parent + 3 children), got {[f.name for f in files]}"
    pids = set()
    for f in files:
        s = check_stats_schema(load_stats(f))
        assert f.name == f"f-{s['pid']}.json", f"{f.name} holds pid {s['pid']}"
        assert sum(s["allocs"].values()) > 0, f"{f.name}: no allocations counted"
        check_syscalls_plausible(s)
        pids.add(s["pid"])
    assert len(pids) == 4


def test_superslab_churn(hak, prog, tmp_path):
    """About 60 MiB of 1000-byte blocks (class 1024) need at least 30 SuperSlabs of 2 MiB."""
    s, res, _ = run_stats(hak, prog, tmp_path, "superslabs")
    ev = s["superslab_events"]
    assert ev["map"] >= 29, f"60000 blocks of 1024 bytes live at once but only {ev['map']} SuperSlab maps"
    assert s["allocs"].get("1024", 0) >= 4 * 60000, s["allocs"]
    allocs, frees = totals(s)
    assert allocs == frees, f"allocs {s['allocs']} frees {s['frees']}"
    check_syscalls_plausible(s)
    assert res.stderr == "", res.report()


def test_lru_size_zero_disables_the_lru(hak, prog, tmp_path):
    s, res, _ = run_stats(hak, prog, tmp_path, "superslabs", env={"HAKMEM_SS_LRU_SIZE": "0"})
    ev = s["superslab_events"]
    assert ev["lru_put"] == 0, f"HAKMEM_SS_LRU_SIZE=0 but lru_put = {ev['lru_put']}: {ev}"
    assert ev["lru_hit"] == 0 and ev["lru_evict"] == 0, ev
    for cls, stages in s["refills"].items():
        assert stages["lru"] == 0, f"class {cls} refilled from the LRU with HAKMEM_SS_LRU_SIZE=0"
    assert ev["map"] >= 29, ev
    check_syscalls_plausible(s)
    assert res.stderr == "", f"a valid HAKMEM_SS_LRU_SIZE printed something\n{res.report()}"


def test_thp_adds_one_madvise_per_superslab_batch(hak, prog, tmp_path):
    """HAKMEM_THP=1 asks for huge pages once per mapping of SuperSlabs and makes no other call; without
    it, every madvise is a purge the SuperSlab events report."""
    on, res, _ = run_stats(hak, prog, tmp_path, "superslabs", env={"HAKMEM_THP": "1"}, name="on.json")
    off, _, _ = run_stats(hak, prog, tmp_path, "superslabs", name="off.json")
    for s in (on, off):
        check_syscalls_plausible(s)
    extra_off = off["syscalls"]["madvise"]["calls"] - off["superslab_events"]["madvise"]
    assert extra_off == 0, f"madvise calls beyond purges without HAKMEM_THP: {off['syscalls']}"
    extra_on = on["syscalls"]["madvise"]["calls"] - on["superslab_events"]["madvise"]
    superslab_mmaps = on["syscalls"]["mmap"]["calls"] - on["large_events"]["map"]
    assert 1 <= extra_on <= superslab_mmaps, \
        f"HAKMEM_THP=1: {extra_on} madvise beyond purges for {superslab_mmaps} SuperSlab mmaps: {on['syscalls']}"
    assert res.stderr == "", f"a valid HAKMEM_THP printed something\n{res.report()}"
