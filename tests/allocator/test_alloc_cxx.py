"""C++'s operator new and delete are libhakmem's (src/cxx.c), every replaceable form: objects,
arrays, sized delete, nothrow and aligned forms are served by the allocator (and counted), and with
no memory the standard's behaviour holds: the new-handler, then bad_alloc, or null for nothrow; an
alignment that is no power of two is refused the same way. A program that replaces operator
new(size_t) and delete(void*) gets every other form through its own pair."""

import subprocess

from hakmem_testlib import PROGRAMS, check_stats_schema, load_stats


def build_cxx(name, tmp_path):
    binary = tmp_path / name
    subprocess.run(["g++", "-O2", "-g", "-Wall", "-Werror", "-std=c++17", "-o", str(binary),
                    str(PROGRAMS / f"{name}.cpp")], check=True)
    return binary


def test_operator_new_and_delete(hak, tmp_path):
    binary = build_cxx("alloc_cxx", tmp_path)
    stats = tmp_path / "stats.json"
    res = hak.run([binary], stats=stats)
    assert res.stdout == "ok\n", res.report()
    s = check_stats_schema(load_stats(stats))
    # 100,000 new int, 100,000 new char[], the Wide ones and a large block, all through the allocator
    assert sum(s["allocs"].values()) >= 200_000, s["allocs"]
    assert s["allocs"].get("large", 0) >= 1, s["allocs"]


def test_a_program_replacing_new_and_delete_gets_every_form_through_them(hak, tmp_path):
    res = hak.run([build_cxx("alloc_cxx_replaced", tmp_path)])
    assert res.stdout == "ok\n" and res.stderr == "", res.report()
