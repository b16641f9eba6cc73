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
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:  # gone, or not ours to read: nothing to say
        return ""
    if _ignores_environment(argv):  # python -E or -I: PYTHONMALLOC is not read at all
        return PYMALLOC
    setting = next((v[len(b"PYTHONMALLOC="):] for v in env if v.startswith(b"PYTHONMALLOC=")), b"").decode(errors="replace")
    return "" if setting in MALLOC_VALUES else PYMALLOC


def _ignores_environment(argv: list[bytes]) -> bool:
    """Whether the interpreter's options (those before the script, -c or -m) include -E or -I."""
    args = iter(argv[1:])
    for arg in args:
        if not arg.startswith(b"-") or arg == b"-" or arg.startswith(b"--"):
            return False
        flags = arg[1:]
        for i, flag in enumerate(flags):
            if flag in b"EI":
                return True
            if flag in b"cm":  # what follows is the command or the module, not options
                return False
            if flag in b"XW":  # takes a value: the rest of this argument, or the next one
                if i == len(flags) - 1:
                    next(args, None)
                break
    return False


def advice(pid: int, comm: str) -> str:
    """The one line a user sees about it."""
    return (f"hakwatch: process {pid} ({comm}) is Python with its own small-object allocator (pymalloc): "
            f"objects up to 512 bytes never reach libhakmem and are missing from live bytes and profiles; "
            f"run it with {FIX} to see them ({FIX_COST})")
