"""What hakwatch reads from a libhakmem file and from a process that maps it, beyond the probes: the
library's version (the exported string `hakmem_version`) and the process's totals (the exported
`hakmem_totals`, read once from /proc/PID/mem when hakwatch attaches to a process already running,
so that its counters and gauges are exact from the first scrape)."""

import ctypes as ct
import os
import time

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from hakwatch.errors import HakwatchError
from hakwatch.contract.layout import load, totals_ctype

TOTALS_SYMBOL = "hakmem_totals"
VERSION_SYMBOL = "hakmem_version"


def _symbol(elf: ELFFile, name: str):
    dynsym = elf.get_section_by_name(".dynsym")
    found = dynsym.get_symbol_by_name(name) if dynsym else None
    return found[0] if found else None


def _open_elf(path: str):
    try:
        f = open(path, "rb")
        return f, ELFFile(f)
    except OSError as e:
        raise HakwatchError(f"cannot read {path}: {e.strerror}") from None
    except ELFError as e:
        f.close()
        raise HakwatchError(f"{path} is not an ELF file ({e})") from None


def library_version(path: str) -> str:
    """The version libhakmem reports (its init probe passes the same string); "unknown" for a build
    older than the symbol."""
    f, elf = _open_elf(path)
    with f:
        sym = _symbol(elf, VERSION_SYMBOL)
        if sym is None:
            return "unknown"
        sec = elf.get_section(sym["st_shndx"])
        f.seek(sec["sh_offset"] + sym["st_value"] - sec["sh_addr"])
        return f.read(64).split(b"\0", 1)[0].decode(errors="replace")


_symbol_values: dict[tuple[tuple[int, int], str], int | None] = {}


def _symbol_value(path: str, name: str) -> int | None:
    """A symbol's value in a library file, looked up once per file (its device and inode): a host's
    thousand processes mapping one libhakmem parse it once."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise HakwatchError(f"cannot read {path}: {e.strerror}") from None
    key = ((st.st_dev, st.st_ino), name)
    if key not in _symbol_values:
        f, elf = _open_elf(path)
        with f:
            try:
                sym = _symbol(elf, name)
            except ELFError as e:
                raise HakwatchError(f"{path} is not an ELF file ({e})") from None
        _symbol_values[key] = sym["st_value"] if sym is not None else None
    return _symbol_values[key]


def totals_address(mapping) -> int:
    """Where `hakmem_totals` is in the process: the library's load address (its mapping at file
    offset 0, a targets.Mapping) plus the symbol's value."""
    value = _symbol_value(mapping.file, TOTALS_SYMBOL)
    if value is None:
        raise HakwatchError(f"{mapping.path} exports no {TOTALS_SYMBOL}: a libhakmem older than hakwatch "
                            "(rebuild it, or watch it with `hakwatch run` from its start)")
    return mapping.start + value


def state_map_address(mapping) -> int | None:
    """Where the process's `hakmem_state_map` is (hakwatch/read/live.py); None for a libhakmem without one."""
    value = _symbol_value(mapping.file, load().state_map_symbol)
    return mapping.start + value if value is not None else None


def read_totals(mapping, attempts: int = 100):
    """The totals of the process that has this mapping of libhakmem, read whole between two flushes
    (their `seq` is even and unchanged); None when the process exited meanwhile."""
    Totals = totals_ctype()
    pid = mapping.pid
    try:
        addr = totals_address(mapping)
    except HakwatchError:
        if not os.path.exists(f"/proc/{pid}"):
            return None  # exited: nothing to seed
        raise
    try:
        with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
            for _ in range(attempts):
                mem.seek(addr)
                raw = mem.read(ct.sizeof(Totals))
                if len(raw) < ct.sizeof(Totals):
                    return None  # unmapped under us: the process is exec'ing or exiting
                mem.seek(addr)
                seq_after = int.from_bytes(mem.read(8), "little")
                totals = Totals.from_buffer_copy(raw)
                if totals.seq % 2 == 0 and totals.seq == seq_after:
                    return totals
                time.sleep(0.001)
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as e:
        raise HakwatchError(f"cannot read the totals of process {pid} from /proc/{pid}/mem: {e.strerror}") from None
    raise HakwatchError(f"process {pid}: its totals changed during {attempts} reads in a row")
