"""Series per group (hakwatch/read/groups.py): a group's counters are its members' sum and never go down as
members exit, expire or exec; its gauges are the sum over the members alive now."""

from hakwatch.read.groups import Groups
from hakwatch.contract.layout import counters_ctype, flat, load
from hakwatch.read.reader import Raw, kernel_words


def member(pid, comm, allocs, frees, mmaps, inits=1, exited=False):
    """A process that allocated `allocs` 64-byte blocks and freed `frees`, made `mmaps` mmap calls of
    4 KiB (each taking 1-2 ns) and 10 page faults for each."""
    lay, c = load(), counters_ctype()()
    i64 = lay.class_sizes.index(64)
    c.allocs[i64], c.frees[i64] = allocs, frees
    c.bytes[lay.byte_counts.index("requested")] = allocs * 60
    kernel = [0] * kernel_words()
    kernel[:4] = [mmaps, mmaps * 4096, mmaps, mmaps]  # mmap: calls, bytes, sum_ns, hist[0]
    kernel[-1] = 10 * mmaps
    return Raw(pid=pid, comm=comm, inits=inits, exited_ns=1 if exited else 0, counters=flat(c), kernel=kernel,
               resident=None if exited else {"anon": (allocs - frees) * 64})


def test_counters_add_up_and_gauges_count_the_living():
    g = Groups("comm")
    out = g.fold({1: member(1, "a", 100, 50, 2), 2: member(2, "a", 50, 0, 1), 3: member(3, "b", 7, 6, 1)})
    assert set(out) == {"a", "b"}
    a = out["a"]
    assert a.allocs == {"64": 150} and a.frees["tls_sll"] == 50 and a.members == 2
    assert a.memory.live_bytes == {"64": 6400} and a.memory.requested == 9000 and a.resident == {"anon": 6400}
    assert a.syscalls["mmap"].calls == 3 and a.syscalls["mmap"].hist[0] == 3 and a.page_faults == 30
    # pid 2 exits: its counts stay, its memory no longer counts
    out = g.fold({1: member(1, "a", 120, 60, 2), 2: member(2, "a", 60, 0, 1, exited=True)})
    assert out["a"].allocs == {"64": 180} and out["a"].memory.live_bytes == {"64": 3840}
    assert out["a"].memory.requested == 10800 and out["a"].resident == {"anon": 3840}
    # pid 2 expires and pid 3's group empties: their counts stay with their groups
    out = g.fold({1: member(1, "a", 130, 60, 2)})
    assert out["a"].allocs == {"64": 190} and out["a"].members == 1
    assert out["b"].allocs == {"64": 7} and out["b"].members == 0 and not out["b"].memory.live_bytes
    assert out["b"].resident is None and out["b"].syscalls["mmap"].calls == 1


def test_an_exec_keeps_the_old_image_counts_and_the_kernel_view_once():
    g = Groups("comm")
    g.fold({1: member(1, "sh", 40, 30, 3)})
    # exec: the allocator's counts start over (inits 2), the pid's syscalls and faults go on
    out = g.fold({1: member(1, "prog", 5, 0, 4, inits=2)})
    assert out["sh"].allocs == {"64": 40} and out["sh"].syscalls["mmap"].calls == 3 and out["sh"].page_faults == 30
    assert out["prog"].allocs == {"64": 5} and out["prog"].syscalls["mmap"].calls == 1 and out["prog"].page_faults == 10
    assert out["sh"].memory.live_bytes == {} and out["prog"].memory.live_bytes == {"64": 320}
    out = g.fold({})
    assert out["prog"].allocs == {"64": 5} and out["prog"].syscalls["mmap"].calls == 1


def test_a_member_keeps_its_group_when_it_renames_itself():
    g = Groups("comm")
    g.fold({1: member(1, "a", 10, 0, 1)})
    out = g.fold({1: member(1, "renamed", 20, 0, 1)})  # prctl(PR_SET_NAME): no exec
    assert set(out) == {"a"} and out["a"].allocs == {"64": 20}


def test_units_and_cgroups_name_groups():
    unit, cgroup = Groups("unit"), Groups("cgroup")
    t = member(1, "postgres", 1, 0, 1)
    t.cgroup = "/system.slice/postgresql@15-main.service"
    assert set(unit.fold({1: t})) == {"postgresql@15-main.service"}
    assert set(cgroup.fold({1: t})) == {"/system.slice/postgresql@15-main.service"}


def test_a_process_forgotten_while_a_scrape_read_it_counts_once():
    g = Groups("comm")
    final = {1: member(1, "a", 100, 0, 1, exited=True)}
    g.fold(final)
    g.forget(final)            # expiry, from the main thread
    out = g.fold(final)        # a scrape that read the maps just before
    assert out["a"].allocs == {"64": 100} and out["a"].members == 0
    out = g.fold({})
    assert out["a"].allocs == {"64": 100}


def test_a_process_forgotten_before_any_scrape_saw_it_still_counts():
    g = Groups("comm")
    g.forget({1: member(1, "a", 100, 0, 1, exited=True)})
    assert g.fold({})["a"].allocs == {"64": 100}
