"""Finding processes and the libhakmem they map, through /proc (and /proc/PID/root, so processes in
other mount namespaces such as containers resolve to a path this process can open)."""

import os
from pathlib import Path

from hakwatch.errors import HakwatchError

DEFAULT_LIBRARY = Path(__file__).resolve().parent.parent / "libhakmem" / "build" / "libhakmem.so"


def comm_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def library_of(pid: int, needle: str = "libhakmem") -> str | None:
    """The libhakmem file a process maps, as a path openable from here (through /proc/PID/root)."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except FileNotFoundError:
        raise HakwatchError(f"no process with pid {pid}") from None
    except PermissionError:
        raise HakwatchError(f"cannot read /proc/{pid}/maps: permission denied (run as root)") from None
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and needle in os.path.basename(parts[5]) and parts[5].startswith("/"):
            inside = parts[5].removesuffix(" (deleted)")
            return f"/proc/{pid}/root{inside}"
    return None


def check_pid(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise HakwatchError(f"--pid {text!r}: not a process id", status=2)
    pid = int(text)
    if not Path(f"/proc/{pid}").exists():
        raise HakwatchError(f"no process with pid {pid}")
    return pid


def processes_mapping(lib: str) -> list[int]:
    """Running processes that map the same file as `lib` (same device and inode)."""
    st = os.stat(lib)
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            for line in Path(f"/proc/{entry.name}/maps").read_text().splitlines():
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/") and "libhakmem" in parts[5]:
                    p = os.stat(f"/proc/{entry.name}/root{parts[5]}")
                    if (p.st_dev, p.st_ino) == (st.st_dev, st.st_ino):
                        found.append(int(entry.name))
                        break
        except OSError:
            continue
    return found
