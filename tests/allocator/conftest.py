"""Fixtures of the allocator suite (the shared ones, libhakmem and c_program, are in tests/conftest.py)."""

import pytest

from hakmem_testlib import PROGRAMS, Hak


@pytest.fixture(scope="session")
def hak(libhakmem):
    """Runner: hak.run(argv, preload=True, stats=None, env=None, timeout=60, check=True)."""
    assert libhakmem.exists(), f"{libhakmem} was not built"
    return Hak(libhakmem)


@pytest.fixture(scope="session")
def prog(c_program):
    """prog("alloc_api") -> path of tests/allocator/programs/alloc_api.c compiled."""
    def build(name, *flags):
        return c_program(PROGRAMS / f"{name}.c", *flags)
    return build
