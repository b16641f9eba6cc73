"""Byte accounting (libhakmem/STATS.md, DESIGN.md "The memory layers"): a known live set gives exactly
its live bytes per class and its requested bytes, freeing it brings them back, and the allocator's
resident estimate agrees with the kernel's count for the SuperSlabs' mappings (/proc/PID/smaps).

The program (programs/alloc_live.c) runs with K units and with K + 1: what the C library allocates
for itself is the same in both, so the difference is exactly one unit."""

import subprocess

from hakmem_testlib import SUPERSLAB_HEADER_BYTES, check_stats_schema, load_stats
from live_set import LIVE_PER_UNIT, REQUESTED_PER_UNIT

SUPERSLAB_HINT = 0x200000000000  # libhakmem/src/os.c maps SuperSlabs from here up
# ... and far below the kernel's mmap base (0x7f.. less up to 1 TiB of randomisation), where libraries
# and large blocks go
SUPERSLAB_REGION_END = 0x300000000000


def stats(hak, prog, tmp_path, mode, k):
    path = tmp_path / f"{mode}-{k}.json"
    hak.run([prog("alloc_live"), mode, k], stats=path, timeout=60)
    return check_stats_schema(load_stats(path))


def test_known_live_set_is_exact(hak, prog, tmp_path):
    one, two = stats(hak, prog, tmp_path, "hold", 1), stats(hak, prog, tmp_path, "hold", 2)
    delta = {c: two["live_bytes"].get(c, 0) - one["live_bytes"].get(c, 0)
             for c in set(one["live_bytes"]) | set(two["live_bytes"])}
    assert {c: n for c, n in delta.items() if n} == LIVE_PER_UNIT, (one["live_bytes"], two["live_bytes"])
    assert two["bytes"]["requested"] - one["bytes"]["requested"] == REQUESTED_PER_UNIT, (one["bytes"], two["bytes"])
    assert two["memory"]["layers"]["live"] - one["memory"]["layers"]["live"] == sum(LIVE_PER_UNIT.values())


def test_freeing_the_set_leaves_nothing_of_it_live(hak, prog, tmp_path):
    one, two = stats(hak, prog, tmp_path, "free", 1), stats(hak, prog, tmp_path, "free", 2)
    assert one["live_bytes"] == two["live_bytes"], "what stays live must not depend on the set's size"
    assert not set(one["live_bytes"]) & set(LIVE_PER_UNIT), one["live_bytes"]
    assert two["bytes"]["requested"] - one["bytes"]["requested"] == REQUESTED_PER_UNIT
    # the freed large blocks are among the free runs (large.c), not live
    assert one["memory"]["layers"]["large_cache"] == LIVE_PER_UNIT["large"]


def test_malloc_trim_gives_back_what_the_allocator_retained(hak, prog, tmp_path):
    """After the set is freed its large blocks sit among the free large runs and emptied SuperSlabs in
    the LRU; malloc_trim(0) unmaps the first and purges the second (the program checks it returns 1)."""
    kept, trimmed = stats(hak, prog, tmp_path, "free", 8), tmp_path / "trim.json"
    hak.run([prog("alloc_live"), "free", 8, "trim"], stats=trimmed, timeout=60)
    trimmed = check_stats_schema(load_stats(trimmed))
    before, after = kept["memory"]["layers"], trimmed["memory"]["layers"]
    assert before["large_cache"] > 0 and before["superslab_lru"] > 0, before
    assert after["large_cache"] == 0 and after["superslab_lru"] == 0, after
    assert after["superslab_purged"] == before["superslab_lru"], (before, after)
    assert trimmed["memory"]["resident_estimate"] < kept["memory"]["resident_estimate"] - before["superslab_lru"] // 2


def smaps_rss_in(pid, start, end):
    """Rss in bytes of the mappings of `pid` that begin in [start, end)."""
    rss, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                lo = int(head.split("-")[0], 16)
                inside = start <= lo < end
            elif inside and head == "Rss:":
                rss += int(line.split()[1]) * 1024
    return rss


def test_resident_estimate_agrees_with_smaps(hak, prog, tmp_path):
    """8 units (~11 MiB of small blocks, every block written whole), held while /proc/PID/smaps is read; the estimate
    less what it counts outside the SuperSlabs (large mappings, metadata mappings) is within 5% of the
    SuperSlab mappings' Rss."""
    path = tmp_path / "held.json"
    proc = subprocess.Popen([str(prog("alloc_live")), "hold", "8", "wait"], env=hak.env(stats=path),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        kernel = smaps_rss_in(proc.pid, SUPERSLAB_HINT, SUPERSLAB_REGION_END)
        proc.communicate("go\n", timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    s = check_stats_schema(load_stats(path))
    layers = s["memory"]["layers"]
    outside = layers["large_cache"] + s["live_bytes"]["large"] + layers["metadata"] - SUPERSLAB_HEADER_BYTES * s["superslabs"]["live"]
    estimate = s["memory"]["resident_estimate"] - outside
    assert kernel > 8 << 20, f"the set should make the SuperSlabs hold > 8 MiB, smaps says {kernel}"
    print(f"resident estimate {estimate}, smaps {kernel}")
    assert abs(estimate - kernel) <= 0.05 * kernel, f"estimate {estimate} vs smaps Rss {kernel} of the SuperSlabs"


def test_a_refused_mapping_is_no_mapped_byte(hak, tmp_path):
    """malloc(64 TiB): the kernel refuses the mmap; the call counts, its bytes do not, and the layers
    still add up to the mapped bytes (check_stats_schema)."""
    path = tmp_path / "refused.json"
    code = ("import ctypes; m = ctypes.CDLL(None).malloc; m.restype = ctypes.c_void_p; "
            "m.argtypes = [ctypes.c_size_t]; print(m(1 << 46))")
    res = hak.run(["/usr/bin/python3", "-c", code], stats=path, env={"PYTHONMALLOC": "malloc"}, timeout=60)
    assert res.stdout.strip() == "None", res.report()  # NULL
    s = check_stats_schema(load_stats(path))
    assert s["syscalls"]["mmap"]["bytes"] < 1 << 40, s["syscalls"]
