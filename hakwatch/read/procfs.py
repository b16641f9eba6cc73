"""What the kernel says of a watched process: its memory from /proc/PID/status and its control group
from /proc/PID/cgroup (both world-readable, so they still work after hakwatch has dropped root)."""

import os
import re

# Three consecutive lines of /proc/PID/status since Linux 4.5; one search of the raw bytes is half the
# cost of splitting the file's lines, paid for each of a host's watched processes at each scrape.
RESIDENT = re.compile(rb"RssAnon:\s+(\d+) kB\nRssFile:\s+(\d+) kB\nRssShmem:\s+(\d+) kB")


def resident_memory(pid: int) -> dict[str, int] | None:
    """Resident bytes by kind (anon, file, shmem), or None when the process is gone."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY)
    except OSError:
        return None
    try:
        status = os.read(fd, 8192)
    except OSError:
        return None
    finally:
        os.close(fd)
    m = RESIDENT.search(status)
    if m is None:  # a zombie: no memory left to report
        return None
    return {"anon": int(m[1]) * 1024, "file": int(m[2]) * 1024, "shmem": int(m[3]) * 1024}


def cgroup_of(pid: int) -> str:
    """The process's control group (cgroup v2's one path; under v1, the systemd hierarchy's), which
    names its container or service: "" when the process is gone."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return ""
    paths = dict(line.split(":", 2)[1:] for line in lines if line.count(":") >= 2)
    return paths.get("", paths.get("name=systemd", next(iter(paths.values()), "")))
