"""Profiles (hakwatch/profile/profiles.py, hakwatch/profile/pprof.py) from hand-made stacks: the allocator's frames go,
the folded format is root first with the churn event as the root, pprof keeps names and values."""

import gzip

from hakwatch.profile.pprof import to_folded, to_pprof
from hakwatch.profile.profiles import KINDS, Frame, Profile, _program_frames
from hakwatch.profile.symbols import Mapping

HAK = Mapping(0x1000, 0x2000, 0, "/usr/lib/x86_64-linux-gnu/libhakmem.so.1")
LIBC = Mapping(0x3000, 0x4000, 0, "/usr/lib/x86_64-linux-gnu/libc.so.6")
APP = Mapping(0x5000, 0x6000, 0, "/srv/app")


def frames(*spec):
    return [Frame(addr, name, m) for addr, name, m in spec]


def test_the_allocators_frames_and_the_c_library_under_them_go_from_the_leaf_end():
    stack = frames((0x3010, "munmap", LIBC), (0x1010, "hak_superslab_release", HAK), (0x1020, "free", HAK),
                   (0x5010, "drop_cache", APP), (0x3020, "__libc_start_call_main", LIBC))
    assert [f.function for f in _program_frames(stack)] == ["drop_cache", "__libc_start_call_main"]


def test_a_programs_own_call_into_the_c_library_stays():
    stack = frames((0x3010, "mmap64", LIBC), (0x5010, "map_arena", APP))
    assert [f.function for f in _program_frames(stack)] == ["mmap64", "map_arena"]


def test_a_stack_of_the_allocator_alone_stays_whole():
    stack = frames((0x1010, "hak_init", HAK))
    assert _program_frames(stack) == stack


def profile(kind):
    a = tuple(frames((0x5010, "leaf", APP), (0x5020, "main", APP)))
    b = tuple(frames((0x5030, "other", APP), (0x5020, "main", APP)))
    labels = {"event": "ss_unmap"} if kind == "churn" else {}
    return Profile(kind=kind, sample_types=KINDS[kind], samples=[(a, (3, 300), labels), (b, (1, 100), labels)],
                   mappings=[APP], start_ns=1, duration_ns=2)


def test_folded_is_root_first_with_bytes_or_events():
    assert to_folded(profile("alloc")) == "main;leaf 300\nmain;other 100\n"
    assert to_folded(profile("churn")) == "ss_unmap;main;leaf 3\nss_unmap;main;other 1\n"


def test_pprof_keeps_names_values_labels_and_mappings():
    from hakwatch.profile import profile_pb2
    p = profile_pb2.Profile()
    p.ParseFromString(gzip.decompress(to_pprof(profile("churn"))))
    s = p.string_table
    assert [(s[t.type], s[t.unit]) for t in p.sample_type] == [("events", "count"), ("bytes", "bytes")]
    names = {f.id: s[f.name] for f in p.function}
    loc = {x.id: names[x.line[0].function_id] for x in p.location}
    assert [([loc[i] for i in smp.location_id], list(smp.value)) for smp in p.sample] == [
        (["leaf", "main"], [3, 300]), (["other", "main"], [1, 100])]
    assert all({s[lb.key]: s[lb.str] for lb in smp.label} == {"event": "ss_unmap"} for smp in p.sample)
    assert s[p.mapping[0].filename] == "/srv/app" and p.mapping[0].has_functions
    assert all(x.mapping_id == 1 for x in p.location)


def test_merged_processes_and_lost_stacks_keep_their_own_locations():
    from hakwatch.profile import profile_pb2
    from hakwatch.profile.profiles import LOST, merge
    other = Mapping(0x5000, 0x6000, 0, "/srv/other")  # the same addresses in another process's program
    a = profile("alloc")
    b = Profile(kind="alloc", sample_types=KINDS["alloc"], mappings=[other], start_ns=1, duration_ns=2,
                samples=[(tuple(frames((0x5010, "handler", other))), (1, 64), {"pid": "2"}),
                         ((Frame(0, LOST, None),), (1, 32), {"pid": "2"})])
    p = profile_pb2.Profile()
    p.ParseFromString(gzip.decompress(to_pprof(merge([a, b], "alloc", 1))))
    s = p.string_table
    names = {f.id: s[f.name] for f in p.function}
    loc = {x.id: names[x.line[0].function_id] for x in p.location}
    assert [[loc[i] for i in smp.location_id] for smp in p.sample] == [
        ["leaf", "main"], ["other", "main"], ["handler"], [LOST]]
    assert len(p.mapping) == 2 and {s[m.filename] for m in p.mapping} == {"/srv/app", "/srv/other"}
