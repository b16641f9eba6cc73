"""Facts of the contract's headers that layout.Layout does not hold yet, read from the same text with
layout.py's helpers: the HAKMEM_STATS schema name, the SuperSlab states and the large slot's name
(probes/hakmem_counters.h), the memory syscalls of churn and a lost stack's id
(probes/hakwatch_maps.h). Each belongs in Layout; once there, its readers take it from load()."""

from hakwatch.layout import COUNTERS_H, MAPS_H, _define, _names, load

_counters, _maps = COUNTERS_H.read_text(), MAPS_H.read_text()


def _string(text: str, name: str, where) -> str:
    return _define(text, name, where).strip('"')


STATS_SCHEMA = _string(_counters, "HAKMEM_STATS_SCHEMA", COUNTERS_H)
SUPERSLAB_STATES = _names(_counters, "HAKMEM_SUPERSLAB_STATE_NAMES", COUNTERS_H)  # live, cached, purged
LARGE_SLOT = _string(_counters, "HAKMEM_SLOT_NAME_LARGE", COUNTERS_H)
CHURN_SYSCALLS = _names(_maps, "HAKWATCH_CHURN_SYSCALL_NAMES", MAPS_H)
STACK_LOST = int(_define(_maps, "HAKWATCH_STACK_LOST", MAPS_H))

# Churn is counted from the syscalls the BPF program traces: a name it does not trace counts nothing.
if not set(CHURN_SYSCALLS) <= set(load().syscalls):
    raise ValueError(f"{MAPS_H}: HAKWATCH_CHURN_SYSCALL_NAMES {CHURN_SYSCALLS} are not all traced ({load().syscalls})")
