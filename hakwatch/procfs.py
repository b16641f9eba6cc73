"""What the kernel says of a watched process: its memory from /proc/PID/status and its control group
from /proc/PID/cgroup (both world-readable, so they still work after hakwatch has dropped root)."""

FIELDS = {"RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}


def resident_memory(pid: int) -> dict[str, int] | None:
    """Resident bytes by kind (anon, file, shmem), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.readlines()
    except OSError:
        return None
    out = {}
    for line in lines:
        parts = line.split()
        if parts and parts[0] in FIELDS:
            out[FIELDS[parts[0]]] = int(parts[1]) * 1024  # the kernel writes kB
    return out if len(out) == len(FIELDS) else None


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
