/*
 * HAKMEM_STATS: the process totals as JSON (schema in libhakmem/STATS.md), written by the library
 * destructor after the last flush. Built in a static buffer with no malloc and no stdio (which mallocs
 * its FILEs and buffers): a block allocated now would be a count the file leaves out.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

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

/* v in decimal at the end of buf (24 bytes: 20 digits at most, and the NUL): returns where it starts. */
static const char *decimal(char buf[24], uint64_t v)
{
	int i = 23;
	buf[i] = 0;
	do
		buf[--i] = '0' + v % 10;
	while (v /= 10);
	return buf + i;
}

static void put_u64(uint64_t v)
{
	char buf[24];
	put(decimal(buf, v));
}

static void put_i64(int64_t v)
{
	if (v < 0) {
		put("-");
		v = -v;
	}
	put_u64((uint64_t)v);
}

/* A key of an object: `first` says whether it opens the object (no comma before it). */
static void put_key(const char *key, int *first)
{
	put(*first ? "\"" : ", \"");
	*first = 0;
	put(key);
	put("\": ");
}

/* A class as a key: its block size. */
static void put_class_key(unsigned cls, int *first)
{
	char buf[24];
	put_key(decimal(buf, hak_class_size[cls]), first);
}

/* One of the top-level keys after the first. */
static void put_section(const char *key)
{
	put(",\n \"");
	put(key);
	put("\": ");
}

static const char *const stage_names[] = {HAKMEM_STAGE_NAMES};
static const char *const route_names[] = {HAKMEM_ROUTE_NAMES};
static const char *const os_names[] = {HAKMEM_OS_CALL_NAMES};
static const char *const ss_names[] = {HAKMEM_SS_EVENT_NAMES};
static const char *const large_names[] = {HAKMEM_LARGE_EVENT_NAMES};
static const char *const heap_error_names[] = {HAKMEM_HEAP_ERROR_NAMES};
static const char *const layer_names[] = {HAKMEM_LAYER_NAMES};
static const char *const ss_states[] = {HAKMEM_SUPERSLAB_STATE_NAMES};

/* A map keyed by a fixed list of names: every name, zero or not. */
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

/* By route: the counters keep the cache route and large blocks in frees[], the slab routes in
 * slab_frees[], each by class. */
static void put_frees(const struct hakmem_counters *t)
{
	int64_t routes[HAKMEM_NUM_ROUTES] = {0};
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		routes[HAKMEM_ROUTE_TLS_SLL] += (int64_t)t->frees[c];
		routes[HAKMEM_ROUTE_SS_LOCAL] += (int64_t)t->slab_frees[c][HAKMEM_SLAB_LOCAL];
		routes[HAKMEM_ROUTE_SS_REMOTE] += (int64_t)t->slab_frees[c][HAKMEM_SLAB_REMOTE];
	}
	routes[HAKMEM_ROUTE_LARGE] = (int64_t)t->frees[HAKMEM_SLOT_LARGE];
	put_named(route_names, HAKMEM_NUM_ROUTES, routes);
}

/* By class, the classes with any refill, then by stage. */
static void put_refills(const struct hakmem_counters *t)
{
	int first = 1;
	put("{");
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		uint64_t any = 0;
		for (unsigned s = 0; s < HAKMEM_NUM_STAGES; s++)
			any |= t->refills[c][s];
		if (any) {
			put_class_key(c, &first);
			put_named_u64(stage_names, HAKMEM_NUM_STAGES, t->refills[c]);
		}
	}
	put("}");
}

static void put_syscalls(const struct hakmem_counters *t)
{
	int first = 1;
	put("{");
	for (unsigned i = 0; i < HAKMEM_NUM_OS_CALLS; i++) {
		put_key(os_names[i], &first);
		put("{\"calls\": ");
		put_u64(t->os_calls[i]);
		put(", \"bytes\": ");
		put_u64(t->os_bytes[i]);
		put("}");
	}
	put("}");
}

/* Requested and allocated: a small block counts its class size, a large one its whole mapping. */
static void put_bytes(const struct hakmem_counters *t)
{
	int64_t allocated = hak_live_bytes(t, HAKMEM_SLOT_LARGE) + (int64_t)t->bytes[HAKMEM_B_LARGE_FREE];
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		allocated += (int64_t)t->allocs[c] * hak_class_size[c];
	put("{\"requested\": ");
	put_u64(t->bytes[HAKMEM_B_REQUESTED]);
	put(", \"allocated\": ");
	put_i64(allocated);
	put("}");
}

static void put_superslabs(const struct hakmem_counters *t)
{
	int64_t ss[3];
	_Static_assert(sizeof ss_states / sizeof *ss_states == 3, "hak_superslabs() gives three: live, cached, purged");
	hak_superslabs(t, &ss[0], &ss[1], &ss[2]);
	put_named(ss_states, 3, ss);
}

static void put_memory(const struct hakmem_counters *t)
{
	int64_t layers[HAKMEM_NUM_LAYERS];
	hak_layers(t, layers);
	put("{\"mapped\": ");
	put_i64(hak_mapped_bytes(t));
	put(", \"resident_estimate\": ");
	put_i64(hak_resident_estimate(t));
	put(",\n  \"layers\": ");
	put_named(layer_names, HAKMEM_NUM_LAYERS, layers);
	put("}");
}

static void render(int pid, const struct hakmem_counters *t)
{
	out_len = 0;
	put("{\"schema\": \"" HAKMEM_STATS_SCHEMA "\", \"pid\": ");
	put_u64(pid);
	put(", \"version\": \"" HAKMEM_VERSION "\"");
	put_section("allocs");
	put_by_class(allocs_of, t, true);
	put_section("frees");
	put_frees(t);
	put_section("refills");
	put_refills(t);
	put_section("refill_objects");
	put_by_class(refill_objects_of, t, false);
	put_section("superslab_events");
	put_named_u64(ss_names, HAKMEM_NUM_SS_EVENTS, t->ss_events);
	put_section("large_events");
	put_named_u64(large_names, HAKMEM_NUM_LARGE_EVENTS, t->large_events);
	put_section("heap_errors");
	put_named_u64(heap_error_names, HAKMEM_NUM_HEAP_ERRORS, t->heap_errors);
	put_section("syscalls");
	put_syscalls(t);
	put_section("bytes");
	put_bytes(t);
	put_section("live_bytes");
	put_by_class(hak_live_bytes, t, true);
	put_section("superslabs");
	put_superslabs(t);
	put_section("memory");
	put_memory(t);
	put("}\n");
}

/* The path with every %p replaced by the pid. */
static int expand_path(char *dst, size_t cap, int pid)
{
	size_t n = 0;
	for (const char *s = hak_opt.stats_path; *s; s++) {
		if (s[0] == '%' && s[1] == 'p') {
			char num[24];
			for (const char *d = decimal(num, (unsigned)pid); *d; d++)
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

static void write_out(const char *path)
{
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

void hak_stats_write_file(void)
{
	/* static, as the buffer is: the destructor may run on a thread's small stack (exit() there) */
	static struct hakmem_counters totals;
	char path[sizeof hak_opt.stats_path + 32];
	int pid = getpid();
	if (!hak_opt.stats_path[0] || expand_path(path, sizeof path, pid))
		return;
	hak_stats_snapshot(&totals);
	render(pid, &totals);
	write_out(path);
}
