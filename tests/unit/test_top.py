"""`hakwatch top` and `snapshot` (hakwatch/commands/top.py) on two made-up reads of a target: the syscalls per
thousand allocations are the churn alert's ratio, of the syscalls probes/hakwatch_maps.h names for it
(mincore, which only looks, is left out)."""
from hakwatch.contract.layout import load
from hakwatch.read.reader import SyscallTotals, Target
from hakwatch.commands.top import view


def read(allocs: int, calls: int) -> Target:
    """A target that made `allocs` allocations and `calls` calls of each traced syscall."""
    return Target(pid=42, comm="app", allocs={"16": allocs},
                  syscalls={name: SyscallTotals(calls=calls) for name in load().syscalls})


def test_syscalls_per_1k_allocs_is_the_churn_alerts_ratio():
    v = view(read(allocs=0, calls=0), read(allocs=10_000, calls=3), seconds=1.0)
    assert set(load().syscalls) - set(load().churn_syscalls), "every traced syscall is churn: the test shows nothing"
    assert v["syscalls_per_1k_allocs"] == 1000 * 3 * len(load().churn_syscalls) / 10_000
    assert v["syscalls_per_s"] == dict.fromkeys(load().syscalls, 3.0)
