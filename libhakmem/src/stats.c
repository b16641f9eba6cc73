/*
 * Counters: the thread's block of deltas is added to the process totals and goes out through the
 * `flush` probe with them, always in that order and under one lock; so the totals (HAKMEM_STATS)
 * and what hakwatch keeps in BPF (the totals at the first flush it sees, every delta after) are the
 * same numbers, however late it attached. SuperSlab and large-block events are rare: counted in the
 * same block, and fired as their own probes for tools that want each one (bpftrace, stacks).
 */
#include <string.h>

#include "internal.h"

#define FLUSH_EVERY_REFILLS 256
#define FLUSH_EVERY_OBJECTS 4096

/* Threads that exit while `flush` is attached hand their deltas to hak_exited, which goes out through
 * the probe at most every EXITED_FLUSH_NS, with the next flush of any thread, or at process exit,
 * instead of once per exiting thread: a probe's first hit in a thread costs far more than the ~400 ns
 * of a warm one, and a program that churns threads paid it at every exit (larson, 2 threads, 6,000
 * thread exits a second: 8% of its throughput with hakwatch attached, against 1.5% without the
 * exit-time traps). Totals stay exact: every delta goes out once, the last ones at process exit. */
#define EXITED_FLUSH_NS (10 * 1000 * 1000)

static hak_lock_t totals_lock = HAK_LOCK_INIT;
/* Everything flushed (HAKMEM_STATS), exported for hakwatch's late attach (probes/hakmem_counters.h). */
HAK_API struct hakmem_totals hakmem_totals;
HAK_API const char hakmem_version[] = HAKMEM_VERSION;
struct hakmem_counters hak_exited;		/* exited threads' deltas not yet through the probe */
static bool exited_pending;
static uint64_t exited_flushed_ns;

/* Under totals_lock: what a reader of the process's memory sees (the totals, the exited batch, the
 * threads' blocks and their list) changes only while seq is odd. */
static void change_begin(void)
{
	__atomic_store_n(&hakmem_totals.seq, hakmem_totals.seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void change_end(void)
{
	__atomic_store_n(&hakmem_totals.seq, hakmem_totals.seq + 1, __ATOMIC_RELEASE);
}

void hak_stats_change_begin(void)
{
	hak_lock(&totals_lock);
	change_begin();
}

void hak_stats_change_end(void)
{
	change_end();
	hak_unlock(&totals_lock);
}

/* The probe's one site: hakwatch attaches one place per probe, with one reading of its arguments. */
static HAK_NOINLINE void fire_flush(struct hakmem_counters *delta)
{
	struct hakmem_totals *totals = &hakmem_totals;
	__asm__("" : "+r"(totals)); /* in a register, not sym@GOTPCREL(%rip): see init.c */
	HAK_PROBE(FLUSH, delta, totals);
}

static void add_counters(struct hakmem_counters *sum, const struct hakmem_counters *c)
{
	uint64_t *to = (uint64_t *)sum;
	const uint64_t *from = (const uint64_t *)c;
	for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)
		to[i] += from[i];
}

/* Inside a change: the delta goes into the totals, then out through the probe with a seq of its own
 * (odd: the change is not over), so the totals the probe hands over always include it and a consumer
 * that starts from them misses and repeats nothing. The caller zeroes the delta before the change ends. */
static void add_and_fire_locked(struct hakmem_counters *delta)
{
	__atomic_store_n(&hakmem_totals.seq, hakmem_totals.seq + 2, __ATOMIC_RELAXED);
	add_counters(&hakmem_totals.counters, delta);
	if (HAK_PROBE_ENABLED(FLUSH))
		fire_flush(delta);
}

static void flush_exited_locked(uint64_t now_ns)
{
	if (!exited_pending)
		return;
	add_and_fire_locked(&hak_exited);
	memset(&hak_exited, 0, sizeof hak_exited);
	exited_pending = false;
	exited_flushed_ns = now_ns;
}

/* The blocks the thread's cache handed out since the last flush, by class: what entered it (refills,
 * frees to it) less what left it otherwise (returns to slabs) less what it holds more than then.
 * Inside a change: a reader works the same out from the same fields, and must not see half of it. */
static void settle_allocs(struct hak_tcache *tc)
{
	struct hakmem_counters *c = &tc->counters;
	hak_sample_settle(tc);
	for (unsigned k = 0; k < HAK_NUM_CLASSES; k++) {
		uint32_t len = hak_cache_len(tc, k);
		int64_t grown = (int64_t)len - tc->flushed_len[k];
		c->allocs[k] += (uint64_t)((int64_t)(c->refill_objects[k] + c->frees[k] - tc->returned[k]) - grown);
		tc->flushed_len[k] = len;
		tc->returned[k] = 0;
	}
}

void hak_stats_flush_thread(struct hak_tcache *tc)
{
	hak_lock(&totals_lock);
	change_begin();
	settle_allocs(tc);
	if (exited_pending)
		flush_exited_locked(hak_now_ns());
	add_and_fire_locked(&tc->counters);
	memset(&tc->counters, 0, sizeof tc->counters);
	tc->flush_seq = hakmem_totals.seq;
	change_end();
	/* Only on a thread's own flush: one thread flushing another's (at exit, in a forked child) may
	 * catch it between the two counts of one operation. */
	if (tc == &hak_tc)
		hak_debug(hak_check_totals(&hakmem_totals.counters));
	hak_unlock(&totals_lock);
}

/* While attached, exiting threads' deltas wait in the exited batch and reach the totals when the batch
 * goes out; unattached, straight into the totals. */
void hak_stats_flush_exiting(struct hak_tcache *tc)
{
	struct hakmem_counters *c = &tc->counters;
	hak_lock(&totals_lock);
	change_begin();
	settle_allocs(tc);
	if (HAK_PROBE_ENABLED(FLUSH)) {
		add_counters(&hak_exited, c);
		exited_pending = true;
		uint64_t now = hak_now_ns();
		if (now - exited_flushed_ns >= EXITED_FLUSH_NS)
			flush_exited_locked(now);
	} else {
		if (exited_pending) /* detached since: nobody is left to hand the batch to */
			flush_exited_locked(hak_now_ns());
		add_and_fire_locked(c);
	}
	memset(c, 0, sizeof *c);
	tc->flush_seq = hakmem_totals.seq;
	change_end();
	hak_unlock(&totals_lock);
}

void hak_stats_maybe_flush(struct hak_tcache *tc)
{
	struct hak_heap *h = tc->heap;
	if (h->refills_since_flush < FLUSH_EVERY_REFILLS && h->objects_since_flush < FLUSH_EVERY_OBJECTS &&
	    tc->slow_bytes_since_flush < HAK_FLUSH_EVERY_SLOW_BYTES)
		return;
	h->refills_since_flush = 0;
	h->objects_since_flush = 0;
	tc->slow_bytes_since_flush = 0;
	hak_stats_flush_thread(tc);
}

/* A memory syscall changes the layers by megabytes: its counts go out with the thread's next flush. */
void hak_stats_flush_soon(void)
{
	hak_tc.slow_bytes_since_flush = HAK_FLUSH_EVERY_SLOW_BYTES;
}

void hak_stats_ss_event(enum hakmem_ss_event ev, void *addr, size_t bytes)
{
	hak_tc.counters.ss_events[ev]++;
	switch (ev) {
	case HAKMEM_SS_MAP: if (HAK_PROBE_ENABLED(SS_MAP)) HAK_PROBE(SS_MAP, addr, bytes); break;
	case HAKMEM_SS_UNMAP: if (HAK_PROBE_ENABLED(SS_UNMAP)) HAK_PROBE(SS_UNMAP, addr, bytes); break;
	case HAKMEM_SS_LRU_PUT: if (HAK_PROBE_ENABLED(SS_LRU_PUT)) HAK_PROBE(SS_LRU_PUT, addr, bytes); break;
	case HAKMEM_SS_LRU_HIT: if (HAK_PROBE_ENABLED(SS_LRU_HIT)) HAK_PROBE(SS_LRU_HIT, addr, bytes); break;
	case HAKMEM_SS_LRU_EVICT: if (HAK_PROBE_ENABLED(SS_LRU_EVICT)) HAK_PROBE(SS_LRU_EVICT, addr, bytes); break;
	case HAKMEM_SS_MADVISE: if (HAK_PROBE_ENABLED(SS_MADVISE)) HAK_PROBE(SS_MADVISE, addr, bytes); break;
	default: break; /* unpurge has no probe: ss_lru_hit and ss_lru_evict say where the entry went */
	}
}

void hak_stats_large_event(enum hakmem_large_event ev, void *addr, size_t bytes)
{
	hak_tc.counters.large_events[ev]++;
	hak_tc.counters.bytes[ev == HAKMEM_LARGE_MAP ? HAKMEM_B_LARGE_MAP : HAKMEM_B_LARGE_UNMAP] += bytes;
	if (ev == HAKMEM_LARGE_MAP && HAK_PROBE_ENABLED(LARGE_MAP))
		HAK_PROBE(LARGE_MAP, addr, bytes);
	if (ev == HAKMEM_LARGE_UNMAP && HAK_PROBE_ENABLED(LARGE_UNMAP))
		HAK_PROBE(LARGE_UNMAP, addr, bytes);
}

/* The totals whole, for HAKMEM_STATS: copied under the lock every flush holds from its first change
 * to its last, so no flush is caught half done. */
void hak_stats_snapshot(struct hakmem_counters *out)
{
	hak_lock(&totals_lock);
	*out = hakmem_totals.counters;
	hak_unlock(&totals_lock);
}

void hak_stats_fork_prepare(void)
{
	hak_lock(&totals_lock);
}

void hak_stats_fork_parent(void)
{
	hak_unlock(&totals_lock);
}

/* The child inherits the totals (and a pending batch of exited threads' counts): they describe the
 * heap it inherits, so its gauges are right from its first flush. */
void hak_stats_fork_child(void)
{
	hak_lock_reset(&totals_lock);
}
