"""Large blocks come back as free runs (libhakmem/src/large.c): a program that replaces big buffers of
changing sizes reuses pages it has, blocks handed out of the runs never share a page, the runs hold no
more than their bound once the live large blocks are gone, and runs idle for the purge delay (1 s)
go back to the kernel. Every run's layers are exact (check_stats_schema)."""

import re

from hakmem_testlib import check_stats_schema, load_stats

MiB = 1 << 20
PAGE = 4096


# Free runs idle for the purge delay go back to the kernel: an hour, so that how fast the machine runs
# the program does not change what the allocator does.
NO_PURGE = {"HAKMEM_PURGE_DELAY_MS": "3600000"}


def run_large(hak, prog, tmp_path, *args, env=None):
    path = tmp_path / "stats.json"
    res = hak.run([prog("alloc_large"), *args], stats=path, env=env, timeout=60)
    m = re.fullmatch(r"pid (\d+)\n", res.stdout)
    assert m, res.report()
    return check_stats_schema(load_stats(path), pid=int(m.group(1)))


def test_replaced_blocks_reuse_pages_and_never_overlap(hak, prog, tmp_path):
    """1,000 blocks of 1-8 MiB replacing each other in 20 slots (the program checks every page of
    every block kept its own stamp until freed)."""
    s = run_large(hak, prog, tmp_path, "replace", 1000, env=NO_PURGE)
    assert s["allocs"]["large"] == s["frees"]["large"] == 1000, (s["allocs"], s["frees"])
    # nothing small is allocated (no stdio): every mmap is a large mapping, every munmap a large unmap
    assert s["superslab_events"]["map"] == 0, s["superslab_events"]
    assert s["syscalls"]["mmap"]["calls"] == s["large_events"]["map"], (s["syscalls"], s["large_events"])
    assert s["syscalls"]["munmap"]["calls"] == s["large_events"]["unmap"], (s["syscalls"], s["large_events"])
    # Before the free runs (a cache of 8 whole mappings, each reused only for a block at most a quarter
    # smaller) this made 397 mappings and 389 unmaps. With no run idle long enough to go back (the purge
    # delay an hour), the free runs go by sizes and addresses alone, and the counts are exactly those of
    # a model of large.c (best fit; split when an eighth or more is left; merged by address; bounded by
    # the live bytes, 64 MiB at least; the kernel maps each run right below the last) on the program's
    # fixed sizes.
    assert (s["large_events"]["map"], s["large_events"]["unmap"]) == (29, 40), \
        f"the free runs did not reuse as designed: {s['large_events']}"


def test_free_runs_are_bounded_when_nothing_large_is_live(hak, prog, tmp_path):
    """320 MiB of large blocks freed: the free runs keep 64 MiB of it, the rest is unmapped."""
    s = run_large(hak, prog, tmp_path, "bound")
    assert s["memory"]["layers"]["large_cache"] == 64 * MiB, s["memory"]["layers"]
    assert s["large_events"]["map"] == 40, s["large_events"]


def test_idle_free_runs_go_back(hak, prog, tmp_path):
    """80 MiB freed, 1.1 s of quiet, then one 1 MiB block freed: of the free runs only that block's
    pages stay (the idle runs go back at that free, even the one it was split from)."""
    s = run_large(hak, prog, tmp_path, "idle")
    assert s["memory"]["layers"]["large_cache"] == MiB + PAGE, s["memory"]["layers"]
    assert s["large_events"]["map"] == 10, s["large_events"]


def test_free_runs_go_back_when_the_kernel_refuses_a_mapping(hak, prog, tmp_path):
    """Under an address-space limit, the 64 MiB the free runs keep would leave no room for a 120 MiB
    block: malloc gives them back and maps again rather than failing (the program dies on NULL)."""
    s = run_large(hak, prog, tmp_path, "rlimit")
    assert s["large_events"]["map"] == 2, s["large_events"]
    assert s["syscalls"]["mmap"]["calls"] >= 3, f"no refused mapping: {s['syscalls']}"
