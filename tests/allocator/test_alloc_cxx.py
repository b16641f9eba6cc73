"""C++'s operator new and delete are libhakmem's (src/cxx.c), every replaceable form: objects,
arrays, sized delete, nothrow and aligned forms are served by the allocator (and counted), and with
no memory the standard's behaviour holds: the new-handler, then bad_alloc, or null for nothrow."""

import subprocess

from hakmem_testlib import PROGRAMS, check_stats_schema, load_stats


def test_operator_new_and_delete(hak, tmp_path):
    binary = tmp_path / "alloc_cxx"
    subprocess.run(["g++", "-O2", "-g", "-Wall", "-Werror", "-std=c++17", "-o", str(binary),
                    str(PROGRAMS / "alloc_cxx.cpp")], check=True)
    stats = tmp_path / "stats.json"
    res = hak.run([binary], stats=stats)
    assert res.stdout == "ok\n", res.report()
    s = check_stats_schema(load_stats(stats))
    # 100,000 new int, 100,000 new char[], the Wide ones and a large block, all through the allocator
    assert sum(s["allocs"].values()) >= 200_000, s["allocs"]
    assert s["allocs"].get("large", 0) >= 1, s["allocs"]
