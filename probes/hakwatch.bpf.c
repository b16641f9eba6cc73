/*
 * hakwatch's kernel side (compiled by bcc). Everything is aggregated here, in maps that hakwatch
 * reads at scrape time: no per-event perf or ring buffer on the metrics path.
 *
 * Allocator counts come from libhakmem's `flush` probe: the first one seen for a process hands over
 * its totals (so a process watched late starts exact), every later one a delta to add. Which
 * processes are watched is the `targets` map, which this program keeps current by itself:
 *   - the `init` USDT probe (fired once in libhakmem's constructor) adds the process when hakwatch
 *     runs with --lib (FOLLOW_INIT), and resets its counters when it fires again for a pid already
 *     watched (after exec() the allocator starts over, and so must its totals);
 *   - task_newtask adds the new processes (not threads) of watched processes (FOLLOW_FORK, `run`);
 *   - sched_process_exit of a group leader marks it exited; hakwatch deletes it after --retention.
 * A target refused because the map is full is counted in `dropped`.
 *
 * With WATCH_EXECS (attach --all), every exec on the host is noted in `execs`: hakwatch looks at
 * those processes for copies of libhakmem it does not know yet.
 *
 * With PROFILE, the user stacks of allocation samples, of the allocator's slow-path events and of
 * memory syscalls (about SYSCALL_STACKS_PER_S a second a process at most, each drawn at random and
 * counted for the calls it stands for) go into `stacks`, and what each
 * did into `sites` (and `live`, the samples not freed yet): hakwatch's profiles (hakwatch/profile/profiles.py).
 *
 * Set by hakwatch through -D: MAX_TARGETS, FOLLOW_INIT, FOLLOW_FORK, WATCH_EXECS, PROFILE (with
 * STACK_ENTRIES, LIVE_SAMPLES, SYSCALL_STACKS_PER_S), and
 * ARG_<probe>_<n>, the C expression reading a USDT argument from the registers, made from the ELF
 * note's argument spec.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/sched.h>	/* CLONE_THREAD */

#include "hakmem_counters.h"
#include "hakwatch_maps.h"

struct inflight {
	u64 start_ns;
	u64 bytes;
	u32 nr;
};

BPF_HASH(targets, u32, struct target, MAX_TARGETS);
BPF_ARRAY(dropped, u64, 1);
/* Per process: its totals, and in `seq` the sequence number of the last flush they include. */
BPF_HASH(counters, u32, struct hakmem_totals, MAX_TARGETS);
BPF_PERCPU_ARRAY(scratch, struct hakmem_totals, 1);
BPF_HASH(syscalls, struct sc_key, struct sc_val, MAX_TARGETS * HAKWATCH_NUM_SYSCALLS);
/* A syscall's start, by thread id. Task storage is faster for a thread's later calls (sys_enter 182 ->
 * 112 ns, bpf_stats) but creating it costs ~1 us, paid by every new thread's first call: worse where
 * threads come and go (larson: glibc's madvise of each exiting thread's stack). */
BPF_HASH(inflight, u32, struct inflight, MAX_TARGETS * 64);
BPF_HASH(faults, u32, u64, MAX_TARGETS);
BPF_HASH(refill_ns, struct refill_key, struct refill_val, MAX_TARGETS * 256);
BPF_HASH(execs, u32, u64, 4096);	/* pid -> when it exec'd (WATCH_EXECS); hakwatch deletes what it read */

static inline u32 current_pid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

static inline int watched(u32 pid)
{
	return targets.lookup(&pid) != NULL;
}

static inline void add_target(u32 pid)
{
	struct target t = {};
	bpf_get_current_comm(&t.comm, sizeof(t.comm));
	if (targets.insert(&pid, &t) != 0 && !targets.lookup(&pid)) {
		int zero = 0;
		u64 *d = dropped.lookup(&zero);
		if (d)
			__sync_fetch_and_add(d, 1);
	}
}

/* ---- USDT probes of libhakmem (attached by library path, semaphore managed by the kernel) */

int on_init(struct pt_regs *ctx)
{
	u32 pid = current_pid();
	struct target *t = targets.lookup(&pid);
	if (t) {
		/* exec(): a new image with a fresh allocator, same pid */
		counters.delete(&pid);
		__sync_fetch_and_add(&t->inits, 1);
		bpf_get_current_comm(&t->comm, sizeof(t->comm));
		return 0;
	}
#if FOLLOW_INIT
	add_target(pid);
#endif
	return 0;
}

/* flush(delta, totals): the allocator fires it under its stats lock, after adding the delta to the
 * totals and bumping their seq, so flushes of one process never overlap and each has its own seq.
 * The first one seen starts the process's entry from the totals; later ones add their delta, unless
 * the entry already includes it: hakwatch seeds the entry of a process it attaches to late from
 * /proc/PID/mem (with the seq read there), and that read may have come after this flush's add. */
int on_flush(struct pt_regs *ctx)
{
	u32 pid = current_pid();
	if (!watched(pid))
		return 0;
	struct hakmem_totals *totals_user = (struct hakmem_totals *)ARG_flush_1;
	u64 seq;
	if (bpf_probe_read_user(&seq, sizeof(seq), &totals_user->seq) != 0)
		return 0;
	struct hakmem_totals *sum = counters.lookup(&pid);
	if (!sum) {
		int zero = 0;
		struct hakmem_totals *snap = scratch.lookup(&zero);
		if (!snap)
			return 0;
		if (bpf_probe_read_user(snap, sizeof(*snap), totals_user) != 0)
			return 0;
		if (counters.insert(&pid, snap) == 0)
			return 0;
		sum = counters.lookup(&pid); /* seeded meanwhile: the seq check below decides */
		if (!sum)
			return 0;
	}
	if (sum->seq >= seq)
		return 0;
	int zero = 0;
	struct hakmem_totals *block = scratch.lookup(&zero);
	if (!block)
		return 0;
	if (bpf_probe_read_user(&block->counters, sizeof(block->counters), (void *)ARG_flush_0) != 0)
		return 0;
	/* Most of the block is zero (a thread touches a few classes): add only the rest, since each
	 * atomic add is a locked instruction and a flush has ~500 fields. */
	u64 *to = (u64 *)&sum->counters, *from = (u64 *)&block->counters;
	for (int i = 0; i < sizeof(block->counters) / sizeof(u64); i++)
		if (from[i])
			__sync_fetch_and_add(&to[i], from[i]);
	sum->seq = seq;
	return 0;
}

/* Attached only with --detail refill: how long refills take, per class and stage. */
int on_refill(struct pt_regs *ctx)
{
	u32 pid = current_pid();
	if (!watched(pid))
		return 0;
	struct refill_key k = {.pid = pid, .class_size = ARG_refill_0, .stage = ARG_refill_1};
	u64 ns = ARG_refill_3;
	k.slot = bpf_log2l(ns ? ns : 1);
	struct refill_val zero = {}, *v = refill_ns.lookup_or_try_init(&k, &zero);
	if (v) {
		__sync_fetch_and_add(&v->count, 1);
		__sync_fetch_and_add(&v->sum_ns, ns);
	}
	return 0;
}

/* ---- profiles: who allocates, who holds, who makes the kernel work */

#if PROFILE




BPF_STACK_TRACE(stacks, STACK_ENTRIES);
BPF_HASH(sites, struct site_key, struct site_val, STACK_ENTRIES);
BPF_HASH(live, struct live_key, struct live_val, LIVE_SAMPLES);
/* A stack walk costs ~1.8 us, and a program that starts and ends thousands of threads a second makes
 * as many madvise calls (glibc's, on each exiting thread's stack). So each memory syscall of a process
 * is stacked with probability 2^-shift, and counted for 2^shift: `shift` goes up after a second
 * (2^30 ns) in which more than SYSCALL_STACKS_PER_S were stacked, down after one with less than a
 * quarter of that. Each call is drawn on its own: the counts by stack stay unbiased, bursts or not. */
struct stack_pace {
	u64 second;
	u32 taken;
	u32 shift;
};
BPF_HASH(syscall_pace, u32, struct stack_pace, MAX_TARGETS);

static inline s32 user_stack(struct pt_regs *ctx)
{
	s32 stack = stacks.get_stackid(ctx, BPF_F_USER_STACK);
	return stack < 0 ? HAKWATCH_STACK_LOST : stack;
}

static inline void add_site(u32 pid, s32 stack, u32 event, u64 count, u64 bytes)
{
	struct site_key k = {.pid = pid, .stack = stack, .event = event};
	struct site_val zero = {}, *v = sites.lookup_or_try_init(&k, &zero);
	if (v) {
		__sync_fetch_and_add(&v->count, count);
		__sync_fetch_and_add(&v->bytes, bytes);
	}
}

/* sample_alloc(addr, size, weight): the sample stands for `weight` bytes, weight/size objects. */
int on_sample_alloc(struct pt_regs *ctx)
{
	u32 pid = current_pid();
	if (!watched(pid))
		return 0;
	u64 size = ARG_sample_alloc_1, weight = ARG_sample_alloc_2;
	u64 objects = size ? weight / size : 0;
	s32 stack = user_stack(ctx);
	add_site(pid, stack, HAKWATCH_EV_SAMPLE, objects, weight);
	struct live_key k = {.pid = pid, .addr = ARG_sample_alloc_0};
	struct live_val v = {.stack = stack, .objects = objects, .bytes = weight};
	live.update(&k, &v); /* a full map leaves it out of the in-use profile */
	return 0;
}

int on_sample_free(struct pt_regs *ctx)
{
	struct live_key k = {.pid = current_pid(), .addr = ARG_sample_free_0};
	live.delete(&k);
	return 0;
}

/* The allocator's slow-path events (addr, bytes), each with its own function: a USDT probe's
 * function is attached at that probe's site alone. */
static inline int slow_event(struct pt_regs *ctx, u32 event, u64 bytes)
{
	u32 pid = current_pid();
	if (watched(pid))
		add_site(pid, user_stack(ctx), event, 1, bytes);
	return 0;
}

int on_ss_map(struct pt_regs *ctx) { return slow_event(ctx, HAKWATCH_EV_SS_MAP, ARG_ss_map_1); }
int on_ss_unmap(struct pt_regs *ctx) { return slow_event(ctx, HAKWATCH_EV_SS_UNMAP, ARG_ss_unmap_1); }
int on_ss_lru_evict(struct pt_regs *ctx) { return slow_event(ctx, HAKWATCH_EV_SS_LRU_EVICT, ARG_ss_lru_evict_1); }
int on_ss_madvise(struct pt_regs *ctx) { return slow_event(ctx, HAKWATCH_EV_SS_MADVISE, ARG_ss_madvise_1); }
int on_large_map(struct pt_regs *ctx) { return slow_event(ctx, HAKWATCH_EV_LARGE_MAP, ARG_large_map_1); }
int on_large_unmap(struct pt_regs *ctx) { return slow_event(ctx, HAKWATCH_EV_LARGE_UNMAP, ARG_large_unmap_1); }

static inline void syscall_site(void *ctx, u32 pid, u32 event, u64 bytes)
{
	struct stack_pace zero = {}, *p = syscall_pace.lookup_or_try_init(&pid, &zero);
	if (!p)
		return;
	u64 second = bpf_ktime_get_ns() >> 30;
	if (second != p->second) {
		if (p->taken > SYSCALL_STACKS_PER_S && p->shift < 16)
			p->shift++;
		else if (p->taken < SYSCALL_STACKS_PER_S / 4 && p->shift)
			p->shift--;
		p->second = second;
		p->taken = 0;
	}
	u32 shift = p->shift & 15;
	if (bpf_get_prandom_u32() & ((1u << shift) - 1))
		return;
	p->taken++;
	add_site(pid, user_stack(ctx), event, 1ull << shift, bytes << shift);
}
#endif

/* ---- processes */

TRACEPOINT_PROBE(task, task_newtask)
{
#if FOLLOW_FORK
	if (args->clone_flags & CLONE_THREAD)
		return 0;
	if (!watched(current_pid()))
		return 0;
	u32 child = args->pid;
	struct target t = {};
	__builtin_memcpy(&t.comm, args->comm, sizeof(t.comm));
	if (targets.insert(&child, &t) != 0) {
		int zero = 0;
		u64 *d = dropped.lookup(&zero);
		if (d)
			__sync_fetch_and_add(d, 1);
	}
#endif
	return 0;
}

#if WATCH_EXECS /* otherwise not even attached (bcc attaches the TRACEPOINT_PROBEs it finds) */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
	u32 pid = current_pid();
	u64 now = bpf_ktime_get_ns();
	execs.update(&pid, &now); /* a full map drops it: the periodic rescan finds it later */
	return 0;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 pid = id >> 32;
	if ((u32)id != pid)
		return 0; /* a thread, not the process */
	struct target *t = targets.lookup(&pid);
	if (t)
		t->exited_ns = bpf_ktime_get_ns();
	return 0;
}

/* ---- memory syscalls of watched processes: count, bytes, enter-to-exit time */

static inline int sys_enter(void *ctx, u32 nr, u64 bytes)
{
	u64 id = bpf_get_current_pid_tgid();
	if (!watched(id >> 32))
		return 0;
#if PROFILE
	syscall_site(ctx, id >> 32, HAKWATCH_EV_SYSCALL + nr, bytes);
#endif
	u32 tid = id;
	struct inflight f = {.start_ns = bpf_ktime_get_ns(), .bytes = bytes, .nr = nr};
	inflight.update(&tid, &f);
	return 0;
}

static inline int sys_exit(void)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = id;
	struct inflight *f = inflight.lookup(&tid);
	if (!f)
		return 0;
	u64 ns = bpf_ktime_get_ns() - f->start_ns;
	struct sc_key k = {.pid = id >> 32, .nr = f->nr};
	u64 bytes = f->bytes;
	inflight.delete(&tid);
	struct sc_val zero = {};
	struct sc_val *v = syscalls.lookup_or_try_init(&k, &zero);
	if (!v)
		return 0;
	__sync_fetch_and_add(&v->calls, 1);
	__sync_fetch_and_add(&v->bytes, bytes);
	__sync_fetch_and_add(&v->sum_ns, ns);
	u32 slot = bpf_log2l(ns ? ns : 1);
	if (slot >= HAKWATCH_HIST_SLOTS)
		slot = HAKWATCH_HIST_SLOTS - 1;
	__sync_fetch_and_add(&v->hist[slot], 1);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_mmap) { return sys_enter(args, HAKWATCH_SC_MMAP, args->len); }
TRACEPOINT_PROBE(syscalls, sys_exit_mmap) { return sys_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_munmap) { return sys_enter(args, HAKWATCH_SC_MUNMAP, args->len); }
TRACEPOINT_PROBE(syscalls, sys_exit_munmap) { return sys_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_madvise) { return sys_enter(args, HAKWATCH_SC_MADVISE, args->len_in); }
TRACEPOINT_PROBE(syscalls, sys_exit_madvise) { return sys_exit(); }
/* mremap: the new length; brk: no length at all (its argument is an address), so 0 bytes */
TRACEPOINT_PROBE(syscalls, sys_enter_mremap) { return sys_enter(args, HAKWATCH_SC_MREMAP, args->new_len); }
TRACEPOINT_PROBE(syscalls, sys_exit_mremap) { return sys_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_brk) { return sys_enter(args, HAKWATCH_SC_BRK, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_brk) { return sys_exit(); }
TRACEPOINT_PROBE(syscalls, sys_enter_mincore) { return sys_enter(args, HAKWATCH_SC_MINCORE, args->len); }
TRACEPOINT_PROBE(syscalls, sys_exit_mincore) { return sys_exit(); }

/* ---- page faults taken in user mode */

TRACEPOINT_PROBE(exceptions, page_fault_user)
{
	u32 pid = current_pid();
	if (!watched(pid))
		return 0;
	u64 zero = 0, *n = faults.lookup_or_try_init(&pid, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}
