/*
 * What hakwatch's BPF program (probes/hakwatch.bpf.c) and its Python reader (hakwatch/layout.py,
 * which reads this text) share beyond the allocator's counters block: the memory syscalls traced, in
 * the order of their index in the `syscalls` map, those the churn alert counts, the size of the latency
 * histograms, and the events and lost stacks of profiles. Keep each #define on one line.
 */
#ifndef HAKWATCH_MAPS_H
#define HAKWATCH_MAPS_H

enum hakwatch_syscall {
	HAKWATCH_SC_MMAP,
	HAKWATCH_SC_MUNMAP,
	HAKWATCH_SC_MADVISE,
	HAKWATCH_SC_MREMAP,
	HAKWATCH_SC_BRK,
	HAKWATCH_SC_MINCORE,
	HAKWATCH_NUM_SYSCALLS
};
#define HAKWATCH_SYSCALL_NAMES "mmap", "munmap", "madvise", "mremap", "brk", "mincore"
/* The memory syscalls of churn: those that map, unmap, resize or purge memory (mincore only looks).
 * The churn alert's ratio (grafana/alerts/hakwatch.rules.yml, held to this list by tests/grafana), the
 * dashboards' and `hakwatch top`'s count these. */
#define HAKWATCH_CHURN_SYSCALL_NAMES "mmap", "munmap", "madvise", "mremap", "brk"

/* Latency histograms: slot i counts 2^i <= nanoseconds < 2^(i+1), 1 ns .. ~9 minutes. */
#define HAKWATCH_HIST_SLOTS 40

/* What a call site (a user stack) did, in the `sites` map of profiles: an allocation sample, one of
 * the allocator's slow-path events, or a memory syscall (HAKWATCH_EV_SYSCALL + its index above). */
enum hakwatch_event {
	HAKWATCH_EV_SAMPLE,
	HAKWATCH_EV_SS_MAP,
	HAKWATCH_EV_SS_UNMAP,
	HAKWATCH_EV_SS_LRU_EVICT,
	HAKWATCH_EV_SS_MADVISE,
	HAKWATCH_EV_LARGE_MAP,
	HAKWATCH_EV_LARGE_UNMAP,
	HAKWATCH_EV_SYSCALL
};
#define HAKWATCH_EVENT_NAMES "sample", "ss_map", "ss_unmap", "ss_lru_evict", "ss_madvise", "large_map", "large_unmap"
/* A site's stack id when no stack could be taken (the stack map was full, or two stacks hashed alike). */
#define HAKWATCH_STACK_LOST -1

#endif
