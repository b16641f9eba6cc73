/*
 * Counters: the thread's block of deltas is added to the process totals and goes out through the
 * `flush` probe with them, always in that order and under one lock; so the totals (HAKMEM_STATS)
 * and what hakwatch keeps in BPF (the totals at the first flush it sees, every delta after) are the
 * same numbers, however late it attached. SuperSlab and large-block events are rare: counted in the
 * same block, and fired as their own probes for tools that want each one (bpftrace, stacks).
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

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

/* ---- HAKMEM_STATS: JSON (schema in libhakmem/STATS.md) built in a static buffer, no malloc, no stdio */

static char out[64 * 1024];
static size_t out_len;

static void put(const char *s)
{
	size_t n = strlen(s);
	if (out_len + n < sizeof out) {
		memcpy(out + out_len, s, n);
		out_len += n;
	}
}

static void put_u64(uint64_t v)
{
	char buf[24];
	int i = sizeof buf - 1;
	buf[i] = 0;
	do
		buf[--i] = '0' + v % 10;
	while (v /= 10);
	put(buf + i);
}

static void put_key(const char *key, int *first)
{
	put(*first ? "\"" : ", \"");
	*first = 0;
	put(key);
	put("\": ");
}

static void put_class_key(unsigned cls, int *first)
{
	char buf[24];
	int i = sizeof buf - 1;
	uint64_t v = hak_class_size[cls];
	buf[i] = 0;
	do
		buf[--i] = '0' + v % 10;
	while (v /= 10);
	put_key(buf + i, first);
}

static const char *const stage_names[] = {HAKMEM_STAGE_NAMES};
static const char *const route_names[] = {HAKMEM_ROUTE_NAMES};
static const char *const os_names[] = {HAKMEM_OS_CALL_NAMES};
static const char *const ss_names[] = {HAKMEM_SS_EVENT_NAMES};
static const char *const large_names[] = {HAKMEM_LARGE_EVENT_NAMES};
static const char *const heap_error_names[] = {HAKMEM_HEAP_ERROR_NAMES};
static const char *const layer_names[] = {HAKMEM_LAYER_NAMES};

static void put_i64(int64_t v)
{
	if (v < 0) {
		put("-");
		v = -v;
	}
	put_u64((uint64_t)v);
}

static void put_named(const char *const *names, unsigned n, const int64_t *v)
{
	int first = 1;
	put("{");
	for (unsigned i = 0; i < n; i++) {
		put_key(names[i], &first);
		put_i64(v[i]);
	}
	put("}");
}

static void put_named_u64(const char *const *names, unsigned n, const __u64 *v)
{
	int64_t s[8];
	_Static_assert(HAKMEM_NUM_SS_EVENTS <= 8 && HAKMEM_NUM_STAGES <= 8 && HAKMEM_NUM_LARGE_EVENTS <= 8 &&
			       HAKMEM_NUM_HEAP_ERRORS <= 8, "s[]");
	for (unsigned i = 0; i < n; i++)
		s[i] = (int64_t)v[i];
	put_named(names, n, s);
}

/* allocs, refill_objects, live_bytes: by class, nonzero ones only, then large */
static void put_by_class(int64_t (*value)(const struct hakmem_counters *, unsigned), const struct hakmem_counters *t,
			 bool with_large)
{
	int first = 1;
	put("{");
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		int64_t v = value(t, c);
		if (v) {
			put_class_key(c, &first);
			put_i64(v);
		}
	}
	if (with_large && value(t, HAKMEM_SLOT_LARGE)) {
		put_key(HAKMEM_SLOT_NAME_LARGE, &first);
		put_i64(value(t, HAKMEM_SLOT_LARGE));
	}
	put("}");
}

static int64_t allocs_of(const struct hakmem_counters *t, unsigned slot) { return (int64_t)t->allocs[slot]; }
static int64_t refill_objects_of(const struct hakmem_counters *t, unsigned c) { return (int64_t)t->refill_objects[c]; }

static void render(int pid)
{
	const struct hakmem_counters *t = &hakmem_totals.counters;
	int first;
	out_len = 0;
	put("{\"schema\": \"" HAKMEM_STATS_SCHEMA "\", \"pid\": ");
	put_u64(pid);
	put(", \"version\": \"" HAKMEM_VERSION "\",\n \"allocs\": ");
	put_by_class(allocs_of, t, true);
	int64_t routes[HAKMEM_NUM_ROUTES] = {0};
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		routes[HAKMEM_ROUTE_TLS_SLL] += (int64_t)t->frees[c];
		routes[HAKMEM_ROUTE_SS_LOCAL] += (int64_t)t->slab_frees[c][HAKMEM_SLAB_LOCAL];
		routes[HAKMEM_ROUTE_SS_REMOTE] += (int64_t)t->slab_frees[c][HAKMEM_SLAB_REMOTE];
	}
	routes[HAKMEM_ROUTE_LARGE] = (int64_t)t->frees[HAKMEM_SLOT_LARGE];
	put(",\n \"frees\": ");
	put_named(route_names, HAKMEM_NUM_ROUTES, routes);
	put(",\n \"refills\": {");
	first = 1;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		uint64_t any = 0;
		for (unsigned s = 0; s < HAKMEM_NUM_STAGES; s++)
			any |= t->refills[c][s];
		if (any) {
			put_class_key(c, &first);
			put_named_u64(stage_names, HAKMEM_NUM_STAGES, t->refills[c]);
		}
	}
	put("},\n \"refill_objects\": ");
	put_by_class(refill_objects_of, t, false);
	put(",\n \"superslab_events\": ");
	put_named_u64(ss_names, HAKMEM_NUM_SS_EVENTS, t->ss_events);
	put(",\n \"large_events\": ");
	put_named_u64(large_names, HAKMEM_NUM_LARGE_EVENTS, t->large_events);
	put(",\n \"heap_errors\": ");
	put_named_u64(heap_error_names, HAKMEM_NUM_HEAP_ERRORS, t->heap_errors);
	put(",\n \"syscalls\": {");
	first = 1;
	for (unsigned i = 0; i < HAKMEM_NUM_OS_CALLS; i++) {
		put_key(os_names[i], &first);
		put("{\"calls\": ");
		put_u64(t->os_calls[i]);
		put(", \"bytes\": ");
		put_u64(t->os_bytes[i]);
		put("}");
	}
	int64_t allocated = hak_live_bytes(t, HAKMEM_SLOT_LARGE) + (int64_t)t->bytes[HAKMEM_B_LARGE_FREE];
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		allocated += (int64_t)t->allocs[c] * hak_class_size[c];
	put("},\n \"bytes\": {\"requested\": ");
	put_u64(t->bytes[HAKMEM_B_REQUESTED]);
	put(", \"allocated\": ");
	put_i64(allocated);
	put("},\n \"live_bytes\": ");
	put_by_class(hak_live_bytes, t, true);
	int64_t ss[3], layers[HAKMEM_NUM_LAYERS];
	hak_superslabs(t, &ss[0], &ss[1], &ss[2]);
	put(",\n \"superslabs\": ");
	static const char *const ss_states[] = {HAKMEM_SUPERSLAB_STATE_NAMES};
	_Static_assert(sizeof ss_states / sizeof *ss_states == 3, "hak_superslabs() gives three: live, cached, purged");
	put_named(ss_states, 3, ss);
	hak_layers(t, layers);
	put(",\n \"memory\": {\"mapped\": ");
	put_i64(hak_mapped_bytes(t));
	put(", \"resident_estimate\": ");
	put_i64(hak_resident_estimate(t));
	put(",\n  \"layers\": ");
	put_named(layer_names, HAKMEM_NUM_LAYERS, layers);
	put("}}\n");
}

/* The path with every %p replaced by the pid. */
static int expand_path(char *dst, size_t cap, int pid)
{
	size_t n = 0;
	for (const char *s = hak_opt.stats_path; *s; s++) {
		if (s[0] == '%' && s[1] == 'p') {
			char num[24];
			int i = sizeof num - 1;
			unsigned v = pid;
			num[i] = 0;
			do
				num[--i] = '0' + v % 10;
			while (v /= 10);
			for (const char *d = num + i; *d; d++)
				if (n + 1 < cap)
					dst[n++] = *d;
			s++;
		} else if (n + 1 < cap) {
			dst[n++] = *s;
		}
	}
	dst[n] = 0;
	return n + 1 < cap ? 0 : -1;
}

void hak_stats_write_file(void)
{
	char path[sizeof hak_opt.stats_path + 32];
	int pid = getpid();
	if (!hak_opt.stats_path[0] || expand_path(path, sizeof path, pid))
		return;
	hak_lock(&totals_lock);
	render(pid);
	hak_unlock(&totals_lock);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		static const char msg[] = "hakmem: cannot write HAKMEM_STATS file\n";
		(void)!write(2, msg, sizeof msg - 1);
		return;
	}
	for (size_t done = 0; done < out_len;) {
		ssize_t w = write(fd, out + done, out_len - done);
		if (w <= 0)
			break;
		done += w;
	}
	close(fd);
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
