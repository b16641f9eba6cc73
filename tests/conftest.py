"""Fixtures every suite shares: the built library and a builder for the small C programs tests drive."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBHAKMEM = ROOT / "libhakmem" / "build" / "libhakmem.so"
BUILD = ROOT / "tests" / "build"


def build_c(source, *flags):
    """Compile one C file of the tests into tests/build/ (again only when the source, a header beside it
    such as allocator/programs/check.h, or a header of the contract that some programs include, is newer)."""
    source = Path(source)
    BUILD.mkdir(parents=True, exist_ok=True)
    binary = BUILD / source.stem
    headers = [*source.parent.glob("*.h"), *(ROOT / "probes").glob("*.h")]
    newest = max(p.stat().st_mtime for p in [source, *headers])
    if not binary.exists() or binary.stat().st_mtime < newest:
        subprocess.run(
            ["gcc", "-O2", "-g", "-Wall", "-Werror", "-pthread", *flags, "-o", str(binary), str(source)],
            check=True,
        )
    return binary


@pytest.fixture(scope="session")
def libhakmem():
    """Path of libhakmem.so, built (make is a no-op when it is current)."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "libhakmem")], check=True)
    return LIBHAKMEM


@pytest.fixture(scope="session")
def libhakmem_debug():
    """Path of the debug build (libhakmem-debug.so), built."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "libhakmem"), "debug"], check=True)
    return LIBHAKMEM.with_name("libhakmem-debug.so")


@pytest.fixture(scope="session")
def c_program():
    """build_c(source, *flags) -> path of the compiled program."""
    return build_c



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI=true) a skip is a failure: the BPF and end-to-end suites must really run there."""
    report = (yield).get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every test must run: {reason}"
