"""Heap misuse (DESIGN.md, "Heap misuse"): every misuse the table calls detected, one program run each
(programs/misuse.c): the documented line on stderr and SIGABRT by default; with
HAKMEM_HEAP_ERRORS=report the program goes on, the block is never handed out twice and HAKMEM_STATS
counts the error; the same steps without the misuse run clean. Overwritten links in a thread cache
make the next malloc fault, never return the attacker's address or a neighbour of the block."""

import re
import signal

import pytest

from hakmem_testlib import check_stats_schema, load_stats

# kind -> (the line's start, its counter, the size class it names or None)
DETECTED = {
    "double_free_cache": ("free(): double free", "double_free", 32),
    "double_free_slab": ("free(): double free", "double_free", 48),
    "double_free_remote": ("free(): double free", "double_free", 64),
    "double_free_remote_then_owner": ("free(): double free", "double_free", 64),
    "double_free_large": ("free(): double free", "double_free", None),
    "double_free_large_unmapped": ("free(): double free", "double_free", None),
    "interior": ("free(): invalid pointer", "invalid_pointer", 64),
    "misaligned": ("free(): invalid pointer", "invalid_pointer", 64),
    "large_interior": ("free(): invalid pointer", "invalid_pointer", None),
    "stack": ("free(): invalid pointer", "invalid_pointer", None),
    "foreign": ("free(): invalid pointer", "invalid_pointer", None),
    "header": ("free(): invalid pointer", "invalid_pointer", None),
    "realloc_invalid": ("realloc(): invalid pointer", "invalid_pointer", None),
    "overflow_slab": ("malloc(): corrupted free list", "corrupt_free_list", 80),
}


def returned(res) -> list[int]:
    return [int(x, 16) for x in re.findall(r"^returned (0x[0-9a-f]+)$", res.stdout, re.M)]


@pytest.fixture(scope="module")
def misuse(prog):
    return prog("misuse")


@pytest.mark.parametrize("kind", DETECTED)
def test_detected_and_aborts(hak, misuse, kind):
    start, _, size = DETECTED[kind]
    res = hak.run([misuse, kind], check=False)
    assert res.returncode == -signal.SIGABRT, res.report()
    line = f"hakmem: {re.escape(start)} 0x[0-9a-f]+" + (rf" \(size class {size}\)" if size else "") + ": aborting\n"
    assert re.fullmatch(line, res.stderr), res.report()
    assert "done" not in res.stdout, res.report()


@pytest.mark.parametrize("kind", DETECTED)
def test_reported_and_goes_on(hak, misuse, kind, tmp_path):
    """HAKMEM_HEAP_ERRORS=report: one line, the program finishes, no block handed out twice (the
    mallocs after a double free return two different blocks), and the error is counted."""
    start, counter, _ = DETECTED[kind]
    res = hak.run([misuse, kind], stats=tmp_path / "s.json", env={"HAKMEM_HEAP_ERRORS": "report"})
    assert res.stderr.startswith(f"hakmem: {start} ") and res.stderr.endswith(": leaked, going on\n"), res.report()
    assert res.stderr.count("\n") == 1, res.report()
    blocks = returned(res)
    assert len(blocks) == len(set(blocks)), res.report()
    errors = check_stats_schema(load_stats(tmp_path / "s.json"))["heap_errors"]
    assert errors == {k: int(k == counter) for k in errors}, errors


@pytest.mark.parametrize("kind", [*DETECTED, "overflow_cache", "overflow_one_byte"])
def test_without_the_misuse_runs_clean(hak, misuse, kind, tmp_path):
    res = hak.run([misuse, kind, "clean"], stats=tmp_path / "s.json")
    assert res.stderr == "" and res.stdout.endswith("done\n"), res.report()
    errors = check_stats_schema(load_stats(tmp_path / "s.json"))["heap_errors"]
    assert not any(errors.values()), errors


@pytest.mark.parametrize("kind", ["overflow_cache", "overflow_one_byte"])
def test_overwritten_cache_link_never_steers_malloc(hak, misuse, kind):
    """A freed block in the thread cache, its link overwritten from the block before it, whole with an
    address of the attacker's choice or its low byte only: malloc hands out the freed block, then the
    decoded link is no address at all and the next malloc faults (the debug build stops it first); it
    never returns the target or a block next to the freed one."""
    res = hak.run([misuse, kind], check=False)
    if hak.lib.name == "libhakmem-debug.so":  # it checks each block it hands out: the link's target too
        assert res.returncode == -signal.SIGABRT and "internal check failed" in res.stderr, res.report()
    else:
        assert res.returncode == -signal.SIGSEGV, res.report()
    target = int(re.search(r"^target (0x[0-9a-f]+)$", res.stdout, re.M).group(1), 16)
    blocks = returned(res)
    assert len(blocks) == 1 and target not in blocks, res.report()
