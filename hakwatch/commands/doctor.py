"""`hakwatch doctor`: what this machine needs for hakwatch, checked one by one, with the fix for each.
Every check takes the paths it looks at as parameters, so tests can point it at a fake root."""

import ctypes as ct
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path

import click


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def check_root(euid: int | None = None) -> Check:
    euid = os.geteuid() if euid is None else euid
    return Check("root", euid == 0, f"effective uid {euid}", "run hakwatch with sudo (loading BPF needs root)")


def check_bpf_syscall() -> Check:
    """Create and close a one-entry array map through the bpf() syscall."""
    libc = ct.CDLL(None, use_errno=True)
    attr = (ct.c_uint32 * 5)(2, 4, 4, 1, 0)  # BPF_MAP_TYPE_ARRAY, key 4 bytes, value 4 bytes, 1 entry
    fd = libc.syscall(321, 0, ct.byref(attr), ct.sizeof(attr))  # __NR_bpf, BPF_MAP_CREATE
    if fd >= 0:
        os.close(fd)
        return Check("bpf syscall", True, "a BPF map can be created")
    err = ct.get_errno()
    return Check("bpf syscall", False, f"bpf(BPF_MAP_CREATE) failed: {os.strerror(err)}",
                 "run as root on a kernel built with CONFIG_BPF_SYSCALL" if err in (1, 38) else "see dmesg")


def check_tracefs(root: Path = Path("/sys/kernel/tracing")) -> Check:
    ok = (root / "events").is_dir()
    return Check("tracefs", ok, f"{root} {'mounted' if ok else 'not mounted'}",
                 f"mount -t tracefs nodev {root}")


def _version_key(path: Path):
    """Sorts linux-headers-6.1.0-10 after -9, as `sort -V` does in set-up."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def check_headers(release: str | None = None, modules: Path = Path("/lib/modules"), src: Path = Path("/usr/src")) -> Check:
    release = release or platform.release()
    build = modules / release / "build"
    if (build / "include" / "generated" / "autoconf.h").exists() and (modules / release / "source" / "include" / "linux" / "kconfig.h").exists():
        return Check("kernel headers", True, f"{build} -> {build.resolve()}")
    hdrs = sorted(src.glob("linux-headers-*-amd64"), key=_version_key)
    common = sorted(src.glob("linux-headers-*-common"), key=_version_key)
    if hdrs and common:
        fix = (f"ln -sfn {hdrs[-1]} {build} && ln -sfn {common[-1]} {modules / release / 'source'}"
               f"   (this kernel has no headers of its own; Debian's are close enough for bcc)")
    else:
        fix = "apt install linux-headers-amd64, then run hakwatch doctor again"
    return Check("kernel headers", False, f"{build} has no kernel headers (bcc compiles against them)", fix)


def check_bcc() -> Check:
    try:
        import bcc  # noqa: F401
    except ImportError:
        return Check("bcc", False, "Python module bcc not importable",
                     "apt install python3-bpfcc, and make the venv with --system-site-packages")
    return Check("bcc", True, f"bcc {getattr(bcc, '__version__', '?')}")


def check_uprobe_ref_ctr(pmu: Path = Path("/sys/bus/event_source/devices/uprobe")) -> Check:
    ok = (pmu / "format" / "ref_ctr_offset").exists()
    return Check("uprobe semaphores", ok,
                 "the uprobe PMU manages USDT semaphores (ref_ctr_offset)" if ok else f"{pmu}/format/ref_ctr_offset missing",
                 "a kernel 4.20 or newer with CONFIG_UPROBE_EVENTS")


def run_checks() -> list[Check]:
    return [check_root(), check_bpf_syscall(), check_tracefs(), check_headers(), check_bcc(), check_uprobe_ref_ctr()]


@click.command()
def doctor():
    """Check root, the bpf() syscall, tracefs, kernel headers for bcc, bcc, and uprobe semaphores; print
    the fix for each problem. Exit status 0 when everything is in order.

    \b
    Example:
      sudo hakwatch doctor
    """
    checks = run_checks()
    for c in checks:
        click.echo(f"{'OK  ' if c.ok else 'FAIL'} {c.name:<18} {c.detail}")
        if not c.ok:
            click.echo(f"     fix: {c.fix}")
    for sysctl in ("kernel/unprivileged_bpf_disabled", "kernel/perf_event_paranoid"):
        try:
            click.echo(f"info {sysctl.replace('/', '.')} = {Path('/proc/sys', sysctl).read_text().strip()}")
        except OSError:
            pass
    raise SystemExit(0 if all(c.ok for c in checks) else 1)
