/*
 * Counters: the thread's block of deltas goes out through the `flush` probe and is added to the
 * process totals, always, attached or not; so the totals (HAKMEM_STATS) and the sum of every flushed
 * block (what hakwatch adds up in BPF) are the same numbers. SuperSlab and large-block events are
 * rare: counted here with atomics and fired as their own probes.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define FLUSH_EVERY_REFILLS 256
#define FLUSH_EVERY_OBJECTS 4096
#define FLUSH_EVERY_SLOW_FREES 4096

/* Threads that exit while `flush` is attached hand their deltas to `exited`, which goes out through
 * the probe at most every EXITED_FLUSH_NS, with the next flush of any thread, or at process exit,
 * instead of once per exiting thread: a probe's first hit in a thread costs far more than the ~400 ns
 * of a warm one, and a program that churns threads paid it at every exit (larson, 2 threads, 6,000
 * thread exits a second: 8% of its throughput with hakwatch attached, against 1.5% without the
 * exit-time traps). Totals stay exact: every delta goes out once, the last ones at process exit. */
#define EXITED_FLUSH_NS (10 * 1000 * 1000)

static hak_lock_t totals_lock = HAK_LOCK_INIT;
static struct hakmem_counters totals;		/* everything flushed: HAKMEM_STATS */
static struct hakmem_counters exited;		/* exited threads' deltas not yet through the probe */
static bool exited_pending;
static uint64_t exited_flushed_ns;
static _Atomic uint64_t ss_events[HAK_SS_NUM_EVENTS];
static _Atomic uint64_t large_events[HAK_LARGE_NUM_EVENTS];

/* The probe's one site: hakwatch attaches one place per probe, with one reading of its argument. */
static HAK_NOINLINE void fire_flush(struct hakmem_counters *c)
{
	HAK_PROBE(FLUSH, c);
}

static void add_counters(struct hakmem_counters *sum, const struct hakmem_counters *c)
{
	uint64_t *to = (uint64_t *)sum;
	const uint64_t *from = (const uint64_t *)c;
	for (size_t i = 0; i < sizeof *c / sizeof(uint64_t); i++)
		to[i] += from[i];
}

/* Under totals_lock. Detached since the deltas were kept: nobody is left to hand them to. */
static void flush_exited_locked(uint64_t now_ns)
{
	if (!exited_pending)
		return;
	if (HAK_PROBE_ENABLED(FLUSH))
		fire_flush(&exited);
	memset(&exited, 0, sizeof exited);
	exited_pending = false;
	exited_flushed_ns = now_ns;
}

void hak_stats_flush(struct hakmem_counters *c)
{
	if (HAK_PROBE_ENABLED(FLUSH))
		fire_flush(c);
	hak_lock(&totals_lock);
	add_counters(&totals, c);
	if (exited_pending)
		flush_exited_locked(hak_now_ns());
	hak_unlock(&totals_lock);
	memset(c, 0, sizeof *c);
}

void hak_stats_flush_exiting(struct hakmem_counters *c)
{
	hak_lock(&totals_lock);
	add_counters(&totals, c);
	if (HAK_PROBE_ENABLED(FLUSH)) {
		add_counters(&exited, c);
		exited_pending = true;
		uint64_t now = hak_now_ns();
		if (now - exited_flushed_ns >= EXITED_FLUSH_NS)
			flush_exited_locked(now);
	}
	hak_unlock(&totals_lock);
	memset(c, 0, sizeof *c);
}

void hak_stats_maybe_flush(struct hak_tcache *tc)
{
	struct hak_heap *h = tc->heap;
	if (h->refills_since_flush < FLUSH_EVERY_REFILLS && h->objects_since_flush < FLUSH_EVERY_OBJECTS &&
	    tc->slow_since_flush < FLUSH_EVERY_SLOW_FREES)
		return;
	h->refills_since_flush = 0;
	h->objects_since_flush = 0;
	tc->slow_since_flush = 0;
	hak_stats_flush(&tc->counters);
}

void hak_stats_ss_event(enum hak_ss_event ev, void *addr, size_t bytes)
{
	atomic_fetch_add_explicit(&ss_events[ev], 1, memory_order_relaxed);
	switch (ev) {
	case HAK_SS_MAP: if (HAK_PROBE_ENABLED(SS_MAP)) HAK_PROBE(SS_MAP, addr, bytes); break;
	case HAK_SS_UNMAP: if (HAK_PROBE_ENABLED(SS_UNMAP)) HAK_PROBE(SS_UNMAP, addr, bytes); break;
	case HAK_SS_LRU_PUT: if (HAK_PROBE_ENABLED(SS_LRU_PUT)) HAK_PROBE(SS_LRU_PUT, addr, bytes); break;
	case HAK_SS_LRU_HIT: if (HAK_PROBE_ENABLED(SS_LRU_HIT)) HAK_PROBE(SS_LRU_HIT, addr, bytes); break;
	case HAK_SS_LRU_EVICT: if (HAK_PROBE_ENABLED(SS_LRU_EVICT)) HAK_PROBE(SS_LRU_EVICT, addr, bytes); break;
	case HAK_SS_MADVISE: if (HAK_PROBE_ENABLED(SS_MADVISE)) HAK_PROBE(SS_MADVISE, addr, bytes); break;
	default: break;
	}
}

void hak_stats_large_event(enum hak_large_event ev, void *addr, size_t bytes)
{
	atomic_fetch_add_explicit(&large_events[ev], 1, memory_order_relaxed);
	if (ev == HAK_LARGE_MAP && HAK_PROBE_ENABLED(LARGE_MAP))
		HAK_PROBE(LARGE_MAP, addr, bytes);
	if (ev == HAK_LARGE_UNMAP && HAK_PROBE_ENABLED(LARGE_UNMAP))
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
static const char *const ss_names[] = {"map", "unmap", "lru_put", "lru_hit", "lru_evict", "madvise"};
static const char *const large_names[] = {"map", "unmap"};

static void put_named(const char *const *names, unsigned n, const __u64 *v)
{
	int first = 1;
	put("{");
	for (unsigned i = 0; i < n; i++) {
		put_key(names[i], &first);
		put_u64(v[i]);
	}
	put("}");
}

static void put_events(const char *const *names, unsigned n, _Atomic uint64_t *ev)
{
	__u64 v[HAK_SS_NUM_EVENTS];
	for (unsigned i = 0; i < n; i++)
		v[i] = atomic_load(&ev[i]);
	put_named(names, n, v);
}

static void render(int pid)
{
	const struct hakmem_counters *t = &totals;
	int first;
	out_len = 0;
	put("{\"schema\": \"hakmem-stats/1\", \"pid\": ");
	put_u64(pid);
	put(", \"version\": \"" HAKMEM_VERSION "\",\n \"allocs\": {");
	first = 1;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		if (t->allocs[c]) {
			put_class_key(c, &first);
			put_u64(t->allocs[c]);
		}
	if (t->allocs[HAKMEM_ALLOC_SLOT_LARGE]) {
		put_key(HAKMEM_ALLOC_SLOT_NAME_LARGE, &first);
		put_u64(t->allocs[HAKMEM_ALLOC_SLOT_LARGE]);
	}
	put("},\n \"frees\": ");
	put_named(route_names, HAKMEM_NUM_ROUTES, t->frees);
	put(",\n \"refills\": {");
	first = 1;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		uint64_t any = 0;
		for (unsigned s = 0; s < HAKMEM_NUM_STAGES; s++)
			any |= t->refills[c][s];
		if (any) {
			put_class_key(c, &first);
			put_named(stage_names, HAKMEM_NUM_STAGES, t->refills[c]);
		}
	}
	put("},\n \"refill_objects\": {");
	first = 1;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		if (t->refill_objects[c]) {
			put_class_key(c, &first);
			put_u64(t->refill_objects[c]);
		}
	put("},\n \"superslab_events\": ");
	put_events(ss_names, HAK_SS_NUM_EVENTS, ss_events);
	put(",\n \"large_events\": ");
	put_events(large_names, HAK_LARGE_NUM_EVENTS, large_events);
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

/* The child counts from zero: its HAKMEM_STATS file holds its own operations only. */
void hak_stats_fork_child(void)
{
	hak_lock_reset(&totals_lock);
	memset(&totals, 0, sizeof totals);
	memset(&exited, 0, sizeof exited);
	exited_pending = false;
	for (unsigned i = 0; i < HAK_SS_NUM_EVENTS; i++)
		atomic_store(&ss_events[i], 0);
	for (unsigned i = 0; i < HAK_LARGE_NUM_EVENTS; i++)
		atomic_store(&large_events[i], 0);
}
