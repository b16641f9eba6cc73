"""Threads and fork under libhakmem, with content checks on every block (the C programs print one
FAIL line naming the block, its owner thread and the byte, and exit 1). Each also runs once without
the library as the reference."""

import pytest

ALLOCATOR = ["glibc", "libhakmem"]


@pytest.mark.parametrize("producers,consumers", [(1, 1), (2, 2), (4, 4), (6, 2), (2, 6)])
def test_cross_thread_free(hak, prog, producers, consumers):
    """Producers allocate and fill with a (thread, index) pattern, consumers check and free; 3 rounds."""
    res = hak.run([prog("alloc_xthread"), producers, consumers, 3, 15000], timeout=90)
    assert f"cross-thread ok: {producers * 15000 * 3} blocks" in res.stdout, res.report()


def test_cross_thread_free_reference(hak, prog):
    res = hak.run([prog("alloc_xthread"), 4, 4, 3, 15000], preload=False, timeout=90)
    assert "cross-thread ok: 180000 blocks" in res.stdout, res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_thread_churn(hak, prog, allocator):
    """3000 short-lived threads (8 at a time) hand blocks to each other and exit; main frees the rest."""
    res = hak.run([prog("alloc_churn"), 3000, 8, 40], preload=allocator == "libhakmem", timeout=120)
    assert "churn ok: 3000 threads" in res.stdout, res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_fork_with_busy_threads(hak, prog, allocator):
    """8 forks while 3 threads allocate; each child allocates, runs a thread, exits 0 in 20 s."""
    res = hak.run([prog("alloc_fork"), 3, 8], preload=allocator == "libhakmem", timeout=240)
    assert "fork ok: 8 forks" in res.stdout, res.report()
