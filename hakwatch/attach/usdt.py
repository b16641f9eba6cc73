"""USDT probes from ELF notes (SystemTap SDT v3, `.note.stapsdt`), read with pyelftools, no root.

Gives each probe's file offsets, which is what the kernel's uprobe PMU wants for the probe
(`offset`) and for the semaphore it manages (`ref_ctr_offset`), and turns the note's argument specs
(`8@%rdi`, `-4@%eax`, `8@-16(%rbp)`, `4@$5`) into C expressions for the BPF program.
"""

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from hakwatch.errors import HakwatchError


@dataclass(frozen=True)
class UsdtProbe:
    path: str
    provider: str
    name: str
    arguments: str
    address: int            # the probe's virtual address as linked (after the .stapsdt.base fix-up)
    semaphore_address: int  # 0 when the probe has no semaphore
    offset: int             # file offset of the probe site
    semaphore_offset: int   # file offset of the semaphore (0 when none)


def _vaddr_to_offset(elf: ELFFile, vaddr: int) -> int:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= vaddr < seg["p_vaddr"] + seg["p_memsz"]:
            return vaddr - seg["p_vaddr"] + seg["p_offset"]
    raise HakwatchError(f"address {vaddr:#x} is in no loadable segment")


def read_probes(path: str | Path) -> list[UsdtProbe]:
    path = str(path)
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            notes = elf.get_section_by_name(".note.stapsdt")
            base_sec = elf.get_section_by_name(".stapsdt.base")
            if notes is None:
                return []
            probes = []
            for note in notes.iter_notes():
                # type 3 (NT_STAPSDT), which pyelftools names after the GNU note of the same number
                if note["n_name"] != "stapsdt":
                    continue
                desc = note["n_descdata"]
                pc, base, sem = struct.unpack_from("<QQQ", desc)
                provider, name, args = desc[24:].split(b"\0")[:3]
                # Prelinking moves code: the note records where .stapsdt.base was, the section says
                # where it is; the difference applies to the probe and its semaphore.
                shift = base_sec["sh_addr"] - base if base_sec is not None and base else 0
                pc, sem = pc + shift, (sem + shift if sem else 0)
                probes.append(UsdtProbe(
                    path=path, provider=provider.decode(), name=name.decode(), arguments=args.decode(),
                    address=pc, semaphore_address=sem,
                    offset=_vaddr_to_offset(elf, pc),
                    semaphore_offset=_vaddr_to_offset(elf, sem) if sem else 0,
                ))
            return probes
    except FileNotFoundError:
        raise HakwatchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise HakwatchError(f"{path}: is a directory, not a library") from None
    except PermissionError:
        raise HakwatchError(f"{path}: permission denied") from None
    except OSError as e:
        raise HakwatchError(f"{path}: {e.strerror}") from None
    except ELFError:
        raise HakwatchError(f"{path}: not an ELF file") from None


_REGS = {
    "ax": "ax", "bx": "bx", "cx": "cx", "dx": "dx", "si": "si", "di": "di", "bp": "bp", "sp": "sp",
    "ip": "ip", **{f"r{i}": f"r{i}" for i in range(8, 16)},
}


def _reg(name: str) -> str:
    """%rax, %eax, %ax, %al, %r12d, %r15w ... -> the pt_regs field (x86-64)."""
    n = name.lstrip("%")
    m = re.fullmatch(r"(r(?:8|9|1[0-5]))[dwb]?", n)
    if m:
        return m.group(1)
    m = re.fullmatch(r"[re]?([abcd]x|si|di|bp|sp|ip)|([abcd])l|(si|di|bp|sp)l", n)
    if not m:
        raise HakwatchError(f"unsupported register {name} in a USDT argument")
    key = m.group(1) or (m.group(2) + "x" if m.group(2) else m.group(3))
    return _REGS[key]


def _ctype(size: int) -> str:
    base = {1: "8", 2: "16", 4: "32", 8: "64"}.get(abs(size))
    if not base:
        raise HakwatchError(f"unsupported USDT argument size {size}")
    return ("s" if size < 0 else "u") + base


def argument_expressions(arguments: str) -> list[str]:
    """C expressions (for a handler taking `struct pt_regs *ctx`) reading each argument."""
    out = []
    for spec in arguments.split():
        size_s, _, loc = spec.partition("@")
        t = _ctype(int(size_s))
        if loc.startswith("$"):
            out.append(f"(({t}){int(loc[1:], 0)})")
        elif loc.startswith("%"):
            out.append(f"(({t})ctx->{_reg(loc)})")
        else:
            m = re.fullmatch(r"(-?\d*)\((%\w+)\)", loc)
            if not m:
                raise HakwatchError(f"unsupported USDT argument {spec}")
            off = int(m.group(1) or 0)
            out.append(f"({{ {t} _v = 0; bpf_probe_read_user(&_v, sizeof(_v), "
                       f"(void *)(ctx->{_reg(m.group(2))} + ({off}))); _v; }})")
    return out
