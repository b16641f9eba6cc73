"""Finding processes and the libhakmem they map, whatever mount namespace or root they live in.

A mapped file is reached through `/proc/PID/map_files/START-END`: the kernel resolves that link to the
very file the process mapped (the inode, deleted or replaced on disk included), for a process in a
chroot, in its own mount namespace or behind pivot_root alike, where the path /proc/PID/maps prints
may be the host's, the container's, or nobody's. hakwatch reads the ELF notes and attaches the
uprobes through that path (root only: the kernel lets only CAP_SYS_ADMIN follow those links).
"""

import errno
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from hakwatch.errors import HakwatchError

# Where the library is when nobody says: this checkout's build, then where packages and `make
# install`-style set-ups put it.
LIBRARY_PLACES = (Path(__file__).resolve().parents[2] / "libhakmem" / "build" / "libhakmem.so",
                  Path("/usr/lib") / (sysconfig.get_config_var("MULTIARCH") or "") / "libhakmem.so.1",
                  Path("/usr/local/lib/libhakmem.so"))
NEEDLE = "libhakmem"


def default_library() -> Path:
    for place in LIBRARY_PLACES:
        if place.is_file():
            return place
    raise HakwatchError("no libhakmem found in " + ", ".join(map(str, LIBRARY_PLACES)) +
                        ": give --lib PATH (in a checkout, build it first with `make -C libhakmem`)")


@dataclass(frozen=True)
class Mapping:
    """A file's first mapping in a process (file offset 0: its load address)."""
    pid: int
    start: int
    end: int
    path: str    # as /proc/PID/maps prints it: for people, not for opening
    exec: bool   # some mapping of this file in the process is executable

    @property
    def file(self) -> str:
        """A path to the mapped file that this process (as root) can open and attach uprobes to."""
        return f"/proc/{self.pid}/map_files/{self.start:x}-{self.end:x}"

    def lasting_path(self) -> str:
        """The path /proc/PID/maps prints when it names the mapped file from here (a process in our
        mount namespace and root), which outlives the process; else the mapping's own link."""
        try:
            if file_id(self.path) == file_id(self.file):
                return self.path
        except OSError:
            pass  # deleted, replaced, another root or namespace
        return self.file


def comm_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def check_pid(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise HakwatchError(f"--pid {text!r}: not a process id", status=2)
    pid = int(text)
    if not Path(f"/proc/{pid}").exists():
        raise HakwatchError(f"no process with pid {pid}")
    return pid


def alive(pid: int) -> bool:
    """Running, not a zombie: a zombie's exit has already gone by the BPF program."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _os_error(pid: int, what: str, e: OSError) -> HakwatchError:
    if e.errno in (errno.ENOENT, errno.ESRCH):
        return HakwatchError(f"process {pid} exited while hakwatch looked at it")
    if e.errno in (errno.EACCES, errno.EPERM):
        return HakwatchError(f"cannot read {what} of process {pid} ({comm_of(pid)}): permission denied "
                             "(run hakwatch with sudo)")
    return HakwatchError(f"cannot read {what} of process {pid}: {e.strerror}")


def file_mappings(pid: int) -> list[Mapping]:
    """Every mapped file of the process, once each (its offset-0 mapping)."""
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError as e:
        raise _os_error(pid, "/proc/PID/maps", e) from None
    first: dict[str, Mapping] = {}
    executable: set[str] = set()
    for line in text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith("/"):
            continue  # anonymous, [heap], [stack], [vdso]...
        span, perms, offset, path = parts[0], parts[1], int(parts[2], 16), parts[5]
        if "x" in perms:
            executable.add(path)
        if offset == 0 and path not in first:
            lo, hi = (int(x, 16) for x in span.split("-"))
            first[path] = Mapping(pid, lo, hi, path, False)
    return [Mapping(m.pid, m.start, m.end, m.path, m.path in executable) for m in first.values()]


def library_of(pid: int) -> Mapping | None:
    """The libhakmem the process maps (by file name), or None."""
    for m in file_mappings(pid):
        if NEEDLE in os.path.basename(m.path.removesuffix(" (deleted)")):
            return m
    return None


def file_id(path: str) -> tuple[int, int]:
    """What tells two paths to one file apart from two files: device and inode."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def pids() -> list[int]:
    """Every process now."""
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()]


def processes_mapping(lib: str) -> list[Mapping]:
    """Running processes that map the same file as `lib` (same device and inode), in any namespace."""
    want = file_id(lib)
    found = []
    for pid in pids():
        try:
            m = library_of(pid)
            if m is not None and file_id(m.file) == want:
                found.append(m)
        except (HakwatchError, OSError):
            continue  # gone meanwhile, or a kernel thread
    return found
