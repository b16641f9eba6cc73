"""The contract's one home: hakwatch/contract/layout.py reads probes/hakmem_counters.h and
probes/hakwatch_maps.h, and the ctypes mirror it builds has exactly the C compiler's layout of
struct hakmem_counters and struct hakmem_totals (size and every field's offset)."""

import ctypes as ct
import subprocess

from hakwatch.contract.layout import PROBES_DIR, counters_ctype, load, map_ctype, state_map_ctype, totals_ctype


def c_layout(tmp_path) -> dict[str, int]:
    fields = [name for name, _ in load().fields]
    lines = [f'printf("{n} %zu\\n", offsetof(struct hakmem_counters, {n}));' for n in fields]
    src = tmp_path / "layout.c"
    src.write_text("\n".join([
        "#include <stddef.h>", "#include <stdio.h>", '#include "hakmem_counters.h"',
        "int main(void) {",
        'printf("sizeof_counters %zu\\n", sizeof(struct hakmem_counters));',
        'printf("sizeof_totals %zu\\n", sizeof(struct hakmem_totals));',
        'printf("totals_counters %zu\\n", offsetof(struct hakmem_totals, counters));',
        *lines, "return 0; }"]))
    exe = tmp_path / "layout"
    subprocess.run(["cc", f"-I{PROBES_DIR}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def test_ctypes_layout_is_the_c_compilers(tmp_path):
    c = c_layout(tmp_path)
    Counters, Totals = counters_ctype(), totals_ctype()
    assert ct.sizeof(Counters) == c.pop("sizeof_counters")
    assert ct.sizeof(Totals) == c.pop("sizeof_totals")
    assert Totals.counters.offset == c.pop("totals_counters")
    assert {name: getattr(Counters, name).offset for name, _ in load().fields} == c


def test_name_lists_match_their_enums():
    lay = load()
    fields = dict(lay.fields)
    assert fields["refills"] == (len(lay.class_sizes), len(lay.stages))
    assert fields["allocs"] == fields["frees"] == (len(lay.class_sizes) + 1,)
    assert fields["slab_frees"] == (len(lay.class_sizes), 2)
    assert fields["os_calls"] == (len(lay.os_calls),)
    assert fields["ss_events"] == (len(lay.ss_events),)
    assert fields["large_events"] == (len(lay.large_events),)
    assert fields["bytes"] == (len(lay.byte_counts),)
    assert len(lay.syscalls) == 6 and lay.hist_slots == 40


def c_offsets(tmp_path, header: str, structs: dict[str, list[str]]) -> dict[str, int]:
    """sizeof and offsetof as the C compiler has them, for these structs of a header of probes/."""
    lines = []
    for struct, fields in structs.items():
        lines.append(f'printf("{struct} %zu\\n", sizeof(struct {struct}));')
        lines += [f'printf("{struct}.{f} %zu\\n", offsetof(struct {struct}, {f}));' for f in fields]
    src = tmp_path / "offsets.c"
    src.write_text("\n".join(["#include <stddef.h>", "#include <stdio.h>", f'#include "{header}"',
                              "int main(void) {", *lines, "return 0; }"]))
    exe = tmp_path / "offsets"
    subprocess.run(["cc", f"-I{PROBES_DIR}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines())}


def python_offsets(types: dict[str, type]) -> dict[str, int]:
    out = {}
    for struct, t in types.items():
        out[struct] = ct.sizeof(t)
        out.update({f"{struct}.{f}": getattr(t, f).offset for f, _ in t._fields_})
    return out


def test_map_structs_are_the_c_compilers(tmp_path):
    """The keys and values of the maps Python reads, as layout.py builds them from hakwatch_maps.h."""
    from hakwatch.attach.bpf import MAP_STRUCTS
    names = {n for pair in MAP_STRUCTS.values() for n in pair if isinstance(n, str)}
    types = {n: map_ctype(n) for n in names}
    assert python_offsets(types) == c_offsets(tmp_path, "hakwatch_maps.h",
                                              {n: [f for f, _ in t._fields_] for n, t in types.items()})


def test_state_map_is_the_c_compilers(tmp_path):
    t = state_map_ctype()
    assert python_offsets({"hakmem_state_map": t}) == c_offsets(
        tmp_path, "hakmem_counters.h", {"hakmem_state_map": [f for f, _ in t._fields_]})
