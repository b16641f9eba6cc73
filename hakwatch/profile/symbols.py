"""Function names and mappings for the addresses of a process's stacks, taken while it is alive, so
that its profile is right when written after it exits: the executable file mappings of
/proc/PID/maps, and bcc's symbol cache for the process, which opens each mapped file when it is made
(its ELF symbols are then read from the open file, whatever happens to the process or the path)."""

import bisect
import os
from dataclasses import dataclass

from hakwatch.attach.targets import alive


@dataclass(frozen=True)
class Mapping:
    start: int
    limit: int
    offset: int
    path: str

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def executable_mappings(pid: int) -> list[Mapping]:
    """The process's executable file mappings, by address."""
    out = []
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and "x" in parts[1] and parts[5].startswith("/"):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            out.append(Mapping(lo, hi, int(parts[2], 16), parts[5].removesuffix(" (deleted)")))
    return sorted(out, key=lambda m: m.start)


class ProcessSymbols:
    """One process's symbolizer. Make it while the process is alive; close it when done."""

    def __init__(self, pid: int):
        self.pid = pid
        self.names: dict[int, str] = {}
        self._load()

    def _load(self):
        from bcc import SymbolCache
        self.mappings = executable_mappings(self.pid)
        self._starts = [m.start for m in self.mappings]
        self.cache = SymbolCache(self.pid)

    def refresh(self):
        """Mappings and symbols again (a library loaded since), while the process is alive."""
        if alive(self.pid):
            self.close()
            self._load()
            self.names.clear()

    def resolve(self, addresses: list[int]) -> dict[int, tuple[str, Mapping | None]]:
        """Each address's function name and mapping (mappings and symbols taken again first when one is
        in no mapping known, a library loaded since)."""
        if any(self.mapping(a) is None for a in addresses):
            self.refresh()
        return {a: (self.function(a), self.mapping(a)) for a in addresses}

    def mapping(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].limit:
            return self.mappings[i]
        return None

    def function(self, addr: int) -> str:
        """The function's name; else the file and offset (a stripped file); else the address."""
        name = self.names.get(addr)
        if name is None:
            sym, offset, module = self.cache.resolve(addr, True)
            if sym:
                name = sym.decode(errors="replace")
            elif module:
                name = f"{os.path.basename(module.decode(errors='replace'))}+{offset:#x}"
            else:
                name = f"{addr:#x}"
            self.names[addr] = name
        return name

    def close(self):
        from bcc.libbcc import lib
        if self.cache is not None:
            lib.bcc_free_symcache(self.cache.cache, self.pid)
            self.cache = None
