"""The kernel's view of a watched process's memory, from /proc/PID/status (world-readable, so it
still works after hakwatch has dropped root)."""

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
