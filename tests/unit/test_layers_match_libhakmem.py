"""The layer arithmetic's two homes agree (DESIGN.md, "The memory layers"): libhakmem/src/layers.c,
compiled here with a driver (layers_unit_vectors.c), and hakwatch/read/layers.py, on every unit counters
block. Both are linear in the counts, so agreeing on each word alone is agreeing on every block: every
layer, live bytes by class and of large blocks, mapped bytes, the resident estimate, SuperSlabs by
state. No root, no BPF: the suites that run both sides on a real process need both."""

import subprocess
from pathlib import Path

import pytest
from hakwatch.read.layers import memory
from hakwatch.contract.layout import PROBES_DIR, load, plain, words

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "libhakmem" / "src"


@pytest.fixture(scope="module")
def libhakmem_gauges(tmp_path_factory) -> list[dict]:
    """What layers.c makes of each unit block, by word. Built without probes (HAKMEM_NO_PROBES, as
    `make noprobes` does): the arithmetic fires none, so it needs no probe header from dtrace.
    classes.c brings the library's own table of class sizes."""
    exe = tmp_path_factory.mktemp("layers") / "layers_unit_vectors"
    subprocess.run(["cc", "-std=gnu11", "-O2", "-Wall", "-DHAKMEM_NO_PROBES", f"-I{PROBES_DIR}", f"-I{SRC}", "-pthread",
                    str(Path(__file__).with_name("layers_unit_vectors.c")), str(SRC / "layers.c"), str(SRC / "classes.c"),
                    "-o", str(exe)], check=True)
    lines = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    lay = load()
    assert int(lines[0]) == words(lay), "the driver's counters block is not hakwatch's"
    slots = [str(size) for size in lay.class_sizes] + [load().large_slot]
    gauges = []
    for w, line in enumerate(lines[1:]):
        index, *values = map(int, line.split())
        assert index == w
        live, values = values[:len(slots)], values[len(slots):]
        layers, values = values[:len(lay.layers)], values[len(lay.layers):]
        mapped, resident, *superslabs = values
        gauges.append({
            "live_bytes": {k: v for k, v in zip(slots, live) if v},
            "layers": dict(zip(lay.layers, layers)),
            "mapped": mapped,
            "resident_estimate": resident,
            "superslabs": dict(zip(load().superslab_states, superslabs, strict=True)),
        })
    assert len(gauges) == words(lay)
    return gauges


def test_every_unit_block_gives_the_same_gauges(libhakmem_gauges):
    lay = load()
    differ = {}
    for w, c in enumerate(libhakmem_gauges):
        unit = [0] * words(lay)
        unit[w] = 1
        m = memory(lay, plain(unit, lay))
        py = {"live_bytes": m.live_bytes, "layers": m.layers, "mapped": m.mapped,
              "resident_estimate": m.resident_estimate, "superslabs": m.superslabs}
        if py != c:
            differ[w] = {k: (c[k], py[k]) for k in c if c[k] != py[k]}
    assert not differ, f"word -> gauge -> (layers.c, layers.py): {differ}"


def test_every_gauge_moves_for_some_word(libhakmem_gauges):
    """The comparison covers each gauge: each is nonzero for some unit block (else a gauge both sides
    left at 0 would agree by saying nothing)."""
    lay = load()
    moved = {k for c in libhakmem_gauges for k, v in c["layers"].items() if v}
    assert moved == set(lay.layers)
    assert {k for c in libhakmem_gauges for k in c["live_bytes"]} == {str(s) for s in lay.class_sizes} | {load().large_slot}
    assert any(c["mapped"] for c in libhakmem_gauges) and any(c["resident_estimate"] for c in libhakmem_gauges)
    assert {k for c in libhakmem_gauges for k, v in c["superslabs"].items() if v} == set(load().superslab_states)
