"""Fixtures of the allocator suite (the shared ones, libhakmem and c_program, are in tests/conftest.py)."""

import os
from pathlib import Path

import pytest

from hakmem_testlib import PROGRAMS, Hak


@pytest.fixture(scope="session", params=["release", "debug"])
def hak(request):
    """Runner: hak.run(argv, preload=True, stats=None, env=None, timeout=60, check=True). Every test
    runs twice: with libhakmem, and with its debug build, which checks its invariants as it goes
    (`make -C libhakmem debug`).

    HAKMEM_TEST_LIB=/path/lib.so runs the suite against another allocator instead of the freshly built
    libhakmem (to check the tests themselves, e.g. against mimalloc; the HAKMEM_STATS and
    HAKMEM_SS_LRU_SIZE tests then fail, as they should)."""
    other = os.environ.get("HAKMEM_TEST_LIB")
    if other and request.param == "debug":
        pytest.skip("HAKMEM_TEST_LIB: that library alone")
    lib = Path(other) if other else request.getfixturevalue(
        "libhakmem" if request.param == "release" else "libhakmem_debug")
    assert lib.exists(), f"{lib} does not exist"
    return Hak(lib)


@pytest.fixture(scope="session")
def prog(c_program):
    """prog("alloc_api") -> path of tests/allocator/programs/alloc_api.c compiled (with -fno-builtin,
    so that the compiler neither drops nor merges the allocations the program makes on purpose)."""
    def build(name):
        return c_program(PROGRAMS / f"{name}.c", "-fno-builtin")
    return build
