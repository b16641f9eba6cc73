/*
 * What hakwatch's BPF program (probes/hakwatch.bpf.c) and its Python reader (hakwatch/contract/layout.py,
 * which reads this text) share beyond the allocator's counters block: the memory syscalls traced, in
 * the order of their index in the `syscalls` map, those the churn alert counts, the size of the latency
 * histograms, the events and lost stacks of profiles, and the keys and values of the maps Python reads
 * (layout.py builds their ctypes from the structs below: one field a line, of __u32, __s32, __u64 or
 * char, arrays of a number or a #define of this file). Keep each #define on one line.
 */
#ifndef HAKWATCH_MAPS_H
#define HAKWATCH_MAPS_H

#include <linux/types.h>

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


/* A process's comm: TASK_COMM_LEN of the kernel's ABI (linux/sched.h would define it, but parsing that
 * header doubles the BPF program's compile time, and so the time hakwatch takes to start serving). */
#define HAKWATCH_COMM_LEN 16

/* `targets`: pid -> a watched process. */
struct target {
	__u64 exited_ns;		/* 0 while alive */
	char comm[HAKWATCH_COMM_LEN];
	__u32 inits;			/* init probes seen since watched: a seed read before an exec must not stay */
};

/* `syscalls`: the memory syscalls of a process, by their index above. */
struct sc_key {
	__u32 pid;
	__u32 nr;			/* index into HAKWATCH_SYSCALL_NAMES, not the syscall number */
};

struct sc_val {
	__u64 calls;
	__u64 bytes;
	__u64 sum_ns;
	__u64 hist[HAKWATCH_HIST_SLOTS];
};

/* `refill_ns` (--detail refill): refills of a class by stage and log2 of their nanoseconds. */
struct refill_key {
	__u32 pid;
	__u32 class_size;
	__u32 stage;
	__u32 slot;			/* log2 of nanoseconds */
};

struct refill_val {
	__u64 count;
	__u64 sum_ns;
};

/* `sites` (profiles): what each call site did. */
struct site_key {
	__u32 pid;
	__s32 stack;			/* in `stacks`, or HAKWATCH_STACK_LOST */
	__u32 event;			/* enum hakwatch_event */
	__u32 pad;
};

struct site_val {
	__u64 count;			/* events; for samples, the objects they stand for */
	__u64 bytes;			/* bytes; for samples, their weights */
};

/* `live` (profiles): samples not freed yet, by address. */
struct live_key {
	__u32 pid;
	__u32 pad;
	__u64 addr;
};

struct live_val {
	__s32 stack;
	__u32 pad;
	__u64 objects;
	__u64 bytes;
};

#endif
