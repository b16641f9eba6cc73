"""Series per group (hakwatch/groups.py): a group's counters are its members' sum and never go down as
members exit, expire or exec; its gauges are the sum over the members alive now."""

from hakwatch.groups import Groups
from hakwatch.layers import Memory
from hakwatch.reader import SyscallTotals, Target


def member(pid, comm, allocs, live, mmaps, inits=1, exited=False):
    t = Target(pid=pid, comm=comm, inits=inits, exited_ns=1 if exited else 0, allocs={"64": allocs},
               frees={"tls_sll": allocs // 2}, page_faults=10 * mmaps)
    t.memory = Memory(live_bytes={"64": live}, layers={"live": live}, mapped=live, resident_estimate=live,
                      superslabs={"live": 1}, requested=allocs * 60, allocated=allocs * 64)
    t.syscalls = {"mmap": SyscallTotals(mmaps, mmaps * 4096, mmaps * 1000, [mmaps] + [0] * 39)}
    t.resident = {"anon": live}
    return t


def test_counters_add_up_and_gauges_count_the_living():
    g = Groups("comm")
    out = g.fold({1: member(1, "a", 100, 6400, 2), 2: member(2, "a", 50, 3200, 1), 3: member(3, "b", 7, 64, 1)})
    assert set(out) == {"a", "b"}
    a = out["a"]
    assert a.allocs == {"64": 150} and a.frees == {"tls_sll": 75} and a.members == 2
    assert a.memory.live_bytes == {"64": 9600} and a.memory.requested == 9000 and a.resident == {"anon": 9600}
    assert a.syscalls["mmap"].calls == 3 and a.syscalls["mmap"].hist[0] == 3 and a.page_faults == 30
    # pid 2 exits: its counts stay, its memory no longer counts
    out = g.fold({1: member(1, "a", 120, 6400, 2), 2: member(2, "a", 60, 3200, 1, exited=True)})
    assert out["a"].allocs == {"64": 180} and out["a"].memory.live_bytes == {"64": 6400}
    # pid 2 expires and pid 3's group empties: their counts stay with their groups
    out = g.fold({1: member(1, "a", 130, 6400, 2)})
    assert out["a"].allocs == {"64": 190} and out["a"].members == 1
    assert out["b"].allocs == {"64": 7} and out["b"].members == 0 and not out["b"].memory.live_bytes


def test_an_exec_keeps_the_old_image_counts_and_the_kernel_view_once():
    g = Groups("comm")
    g.fold({1: member(1, "sh", 40, 640, 3)})
    # exec: the allocator's counts start over (inits 2), the pid's syscalls and faults go on
    out = g.fold({1: member(1, "prog", 5, 320, 4, inits=2)})
    assert out["sh"].allocs == {"64": 40} and out["sh"].syscalls["mmap"].calls == 3 and out["sh"].page_faults == 30
    assert out["prog"].allocs == {"64": 5} and out["prog"].syscalls["mmap"].calls == 1 and out["prog"].page_faults == 10
    assert out["sh"].memory.live_bytes == {} and out["prog"].memory.live_bytes == {"64": 320}
    out = g.fold({})
    assert out["prog"].allocs == {"64": 5} and out["prog"].syscalls["mmap"].calls == 1


def test_units_and_cgroups_name_groups():
    unit, cgroup = Groups("unit"), Groups("cgroup")
    t = member(1, "postgres", 1, 64, 1)
    t.cgroup = "/system.slice/postgresql@15-main.service"
    assert set(unit.fold({1: t})) == {"postgresql@15-main.service"}
    assert set(cgroup.fold({1: t})) == {"/system.slice/postgresql@15-main.service"}


def test_a_process_forgotten_while_a_scrape_read_it_counts_once():
    g = Groups("comm")
    final = {1: member(1, "a", 100, 64, 1, exited=True)}
    g.fold(final)
    g.forget(final)            # expiry, from the main thread
    out = g.fold(final)        # a scrape that read the maps just before
    assert out["a"].allocs == {"64": 100} and out["a"].members == 0
    out = g.fold({})
    assert out["a"].allocs == {"64": 100}
