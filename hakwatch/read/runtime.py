"""What a process's runtime keeps from libhakmem. CPython serves objects up to 512 bytes from its own
arenas (pymalloc: 256 KiB blocks it maps with mmap), so a Python process under libhakmem shows only its
larger objects in live bytes, layers and profiles, unless it runs with PYTHONMALLOC=malloc (read at the
interpreter's start, so the process's initial environment says it)."""

import os

PYMALLOC = "pymalloc"
FIX = "PYTHONMALLOC=malloc"
# The price of seeing every object: bench's python workload (bench/programs/py_workload.py 1) under
# libhakmem makes 5,779 M instructions with PYTHONMALLOC=malloc, 5,689 M without (callgrind)
FIX_COST = "about 2% more instructions in a JSON and sqlite workload"
MALLOC_VALUES = ("malloc", "malloc_debug")  # the settings under which objects come from malloc()


def hidden_by(pid: int) -> str:
    """"pymalloc" for a Python process whose small objects libhakmem does not see, else "". Needs the
    right to read the process's environment (root, or its own user)."""
    try:
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
        with open(f"/proc/{pid}/maps", "rb") as f:
            python = exe.startswith("python") or b"libpython" in f.read()
        if not python:
            return ""
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read().split(b"\0")
    except OSError:  # gone, or not ours to read: nothing to say
        return ""
    setting = next((v[len(b"PYTHONMALLOC="):] for v in env if v.startswith(b"PYTHONMALLOC=")), b"").decode(errors="replace")
    return "" if setting in MALLOC_VALUES else PYMALLOC


def advice(pid: int, comm: str) -> str:
    """The one line a user sees about it."""
    return (f"hakwatch: process {pid} ({comm}) is Python with its own small-object allocator (pymalloc): "
            f"objects up to 512 bytes never reach libhakmem and are missing from live bytes and profiles; "
            f"run it with {FIX} to see them ({FIX_COST})")
