"""USDT notes and argument specs: offsets from pyelftools agree with readelf, and every argument
form the SDT note can hold becomes the right C expression."""

import re
import subprocess

import pytest

from hakwatch.errors import HakwatchError
from hakwatch.attach.usdt import argument_expressions, read_probes


def test_probes_match_readelf(libhakmem):
    notes = subprocess.run(["readelf", "-n", str(libhakmem)], capture_output=True, text=True, check=True).stdout
    expected = {m.group(1): (int(m.group(2), 16), int(m.group(3), 16))
                for m in re.finditer(r"Name: (\w+)\s+Location: (0x[0-9a-f]+), Base: 0x[0-9a-f]+, Semaphore: (0x[0-9a-f]+)", notes)}
    got = {p.name: (p.address, p.semaphore_address) for p in read_probes(libhakmem)}
    assert got == expected


def test_probe_offsets_point_at_nops(libhakmem):
    data = libhakmem.read_bytes()
    for p in read_probes(libhakmem):
        assert data[p.offset] == 0x90, f"{p.name}: byte at file offset {p.offset:#x} is not a nop"


@pytest.mark.parametrize("spec,expr", [
    ("8@%rdi", "((u64)ctx->di)"),
    ("-4@%eax", "((s32)ctx->ax)"),
    ("4@%r12d", "((u32)ctx->r12)"),
    ("1@%sil", "((u8)ctx->si)"),
    ("4@$5", "((u32)5)"),
    ("8@-16(%rbp)", "({ u64 _v = 0; bpf_probe_read_user(&_v, sizeof(_v), (void *)(ctx->bp + (-16))); _v; })"),
])
def test_argument_specs(spec, expr):
    assert argument_expressions(spec) == [expr]


def test_not_an_elf_file(tmp_path):
    f = tmp_path / "x.so"
    f.write_text("hello")
    with pytest.raises(HakwatchError, match="not an ELF file"):
        read_probes(f)


def test_every_hakmem_probe_has_one_site(libhakmem):
    """hakwatch attaches one site per probe: a second site of `flush` would be counted nowhere."""
    names = [p.name for p in read_probes(libhakmem) if p.provider == "hakmem"]
    assert sorted(names) == sorted(set(names))
