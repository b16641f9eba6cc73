"""The malloc API under libhakmem: every function resolves to it, error cases, glibc-compatible edge
cases, alignment, usable size, realloc across classes. Each C program also runs once without the
library (glibc), which shows the program itself is right.

glibc-compatible semantics checked (programs/alloc_api.c, "semantics"):
  * malloc(0), realloc(NULL, 0), calloc(0, n), calloc(n, 0) return a unique non-NULL pointer that
    free() accepts (1000 malloc(0) blocks live at once are all distinct);
  * realloc(p, 0) with p != NULL frees p and returns NULL (glibc's REALLOC_ZERO_BYTES_FREES); that p
    is really freed is checked through the peak RSS over 4000 x 256 KiB + 20000 x 1000 bytes;
  * free(NULL) does nothing; malloc_usable_size(NULL) == 0.
Errors (programs/alloc_api.c, "errors"): calloc / reallocarray whose nmemb * size overflows, and
absurd sizes (SIZE_MAX, SIZE_MAX - small, PTRDIFF_MAX + 1, PTRDIFF_MAX, 2^50) give NULL + ENOMEM from
every allocating function (posix_memalign returns ENOMEM and leaves *memptr alone); a failed realloc
or reallocarray leaves the old block intact and usable; posix_memalign with an alignment that is 0,
not a power of two or not a multiple of sizeof(void *) returns EINVAL and leaves *memptr alone.
With "strict" (libhakmem only): aligned_alloc and memalign with an alignment that is not a power of
two give NULL + EINVAL. glibc 2.36 instead rounds such an alignment up, so the glibc reference run
leaves that part out.
"""

import os

import pytest

from hakmem_testlib import CLASS_SIZES, class_of

ALLOCATOR = ["glibc", "libhakmem"]
FUNCTIONS = ["malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
             "memalign", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim"]
CLASS_ARGS = [str(c) for c in CLASS_SIZES]


def test_every_function_resolves_to_libhakmem(hak, prog):
    res = hak.run([prog("alloc_api"), "resolve"], timeout=30)
    where = {}
    usable = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if parts[0] == "usable":
            usable[int(parts[1])] = int(parts[2])
        else:
            where[parts[0]] = parts[1]
    assert sorted(where) == sorted(FUNCTIONS), res.report()
    wrong = {f: lib for f, lib in where.items() if os.path.realpath(lib) != os.path.realpath(hak.lib)}
    assert not wrong, f"functions not served by {hak.lib}: {wrong}"
    # A block's usable size is at least what was asked and at most its class's block size.
    for asked, got in usable.items():
        cls = class_of(asked)
        assert asked <= got, f"malloc({asked}): malloc_usable_size {got} < {asked}"
        assert got <= cls, f"malloc({asked}): malloc_usable_size {got} > its class {cls}"


def test_functions_resolve_to_libc_without_preload(hak, prog):
    """The reference: the same check sees glibc when nothing is preloaded (so the check can tell)."""
    res = hak.run([prog("alloc_api"), "resolve"], preload=False, timeout=30)
    libs = {line.split()[1] for line in res.stdout.splitlines() if not line.startswith("usable")}
    assert libs and all("libc.so" in lib for lib in libs), res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_errors(hak, prog, allocator):
    hak.run([prog("alloc_api"), "errors"], preload=allocator == "libhakmem", timeout=60)


def test_aligned_alloc_memalign_reject_non_power_of_two(hak, prog):
    hak.run([prog("alloc_api"), "errors", "strict"], timeout=60)


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_glibc_compatible_semantics(hak, prog, allocator):
    res = hak.run([prog("alloc_api"), "semantics"], preload=allocator == "libhakmem", timeout=60)
    assert "semantics ok" in res.stdout, res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_alignment_every_power_of_two(hak, prog, allocator):
    res = hak.run([prog("alloc_align")], preload=allocator == "libhakmem", timeout=60)
    assert "alignment ok" in res.stdout, res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_usable_size_is_writable(hak, prog, allocator):
    res = hak.run([prog("alloc_usable"), *CLASS_ARGS], preload=allocator == "libhakmem", timeout=60)
    assert "usable size ok" in res.stdout, res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_realloc_keeps_content_across_classes(hak, prog, allocator):
    res = hak.run([prog("alloc_realloc"), *CLASS_ARGS], preload=allocator == "libhakmem", timeout=90)
    assert "realloc ok" in res.stdout, res.report()


@pytest.mark.parametrize("allocator", ALLOCATOR)
def test_freed_memory_is_reused(hak, prog, allocator):
    """30 x 48 MiB of mixed blocks and 1500 x 4 MiB large blocks, all freed: bounded peak RSS."""
    res = hak.run([prog("alloc_api"), "reuse"], preload=allocator == "libhakmem", timeout=120)
    assert "reuse ok" in res.stdout, res.report()
