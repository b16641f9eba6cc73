/*
 * Large blocks (above the largest size class): page runs with a 64-byte header right before the block
 * that says where the run starts and how long it is. Runs come from the kernel one mmap each; a
 * freed run is not given back at once but joins the free runs, which are coalesced by address
 * (the kernel places mappings next to each other) and handed out again best fit, split when much
 * bigger: a program that frees and mallocs big buffers of changing sizes reuses memory it already
 * has, its pages already faulted in, with no syscall. The free runs hold at most as much as the live
 * large blocks (or CACHE_MIN_BYTES): beyond, the oldest are unmapped (from their end), and runs idle
 * for the purge delay go back at the next large malloc or free (no timer thread, as for the SuperSlab
 * LRU), or at once when the kernel refuses a mapping. The bound is what
 * fragmentation asks for: with 20 live blocks of random 5-25 MiB replaced one by one
 * (mimalloc-bench's malloc-large), free runs bounded by a quarter of the live bytes still miss and
 * fault in 2.1 million pages (5.8 s), by half 0.8 million (3.1 s), by all of them 0.13 million (1.6 s;
 * peak RSS 518 MB, glibc's 534 MB).
 *
 * Misuse: a freed block's header says so (FREED_MAGIC) while its page is held and not handed out
 * again, and the last RECENT freed blocks are remembered whatever became of their pages, so that
 * freeing either again is reported as a double free rather than read through an unmapped header.
 */
#include <string.h>

#include "internal.h"

#define HEADER 64
#define MAGIC 0x68616b6d656dULL /* "hakmem" */
#define FREED_MAGIC 0x6672656564ULL /* "freed" */
#define RECENT 64
#define RUNS 64				/* free runs kept at most */
#define CACHE_MIN_BYTES ((size_t)64 << 20)	/* free runs may always hold this much */

struct large_header {
	uint64_t magic;		/* MAGIC ^ the block's address: a stale or foreign pointer does not match */
	size_t map_bytes;
	char *map_base;
	size_t sampled;		/* the size asked for, when the block is an allocation sample (sample.c) */
	char pad[HEADER - 32];
};

struct run {
	char *base;
	size_t bytes;
	uint64_t idle_since_ns;
};

static hak_lock_t runs_lock = HAK_LOCK_INIT;
static struct run runs[RUNS];	/* free runs, by address */
static unsigned runs_len;
static size_t runs_bytes;
static size_t live_bytes;	/* runs handed out as blocks */
static uintptr_t recent[RECENT];	/* the last blocks freed, a ring; under runs_lock */
static unsigned recent_next;

static struct large_header *header_of(const void *p)
{
	return (struct large_header *)((char *)p - HEADER);
}

static void runs_remove(unsigned i)
{
	runs_bytes -= runs[i].bytes;
	memmove(&runs[i], &runs[i + 1], (runs_len - i - 1) * sizeof runs[0]);
	runs_len--;
}

/* The best-fitting free run for `bytes`, split when the rest is worth keeping (an eighth of the
 * block or more): NULL when none is big enough. Under runs_lock. */
static char *runs_take(size_t bytes, size_t *got)
{
	unsigned best = runs_len;
	for (unsigned i = 0; i < runs_len; i++)
		if (runs[i].bytes >= bytes && (best == runs_len || runs[i].bytes < runs[best].bytes))
			best = i;
	if (best == runs_len)
		return NULL;
	char *base = runs[best].base;
	if (runs[best].bytes - bytes < bytes / 8) {
		*got = runs[best].bytes;
		runs_remove(best);
	} else {
		*got = bytes;
		runs[best].base += bytes;
		runs[best].bytes -= bytes;
		runs_bytes -= bytes;
	}
	live_bytes += *got;
	return base;
}

/* Ranges to unmap once runs_lock is released. */
struct unmaps {
	unsigned n;
	struct run r[RUNS + 1];
};

static void drop_run(unsigned i, struct unmaps *out)
{
	out->r[out->n++] = runs[i];
	runs_remove(i);
}

/* The run freed longest ago. Under runs_lock, with runs. */
static unsigned oldest_run(void)
{
	unsigned oldest = 0;
	for (unsigned i = 1; i < runs_len; i++)
		if (runs[i].idle_since_ns < runs[oldest].idle_since_ns)
			oldest = i;
	return oldest;
}

/* Give back runs idle for `delay_ns` and, oldest first, what the free runs hold beyond their bound
 * (from a run's end, so the rest of it stays where it is). Under runs_lock. */
static void runs_shrink(uint64_t now, uint64_t delay_ns, struct unmaps *out)
{
	for (unsigned i = runs_len; i-- > 0;)
		if (now - runs[i].idle_since_ns >= delay_ns)
			drop_run(i, out);
	size_t bound = live_bytes > CACHE_MIN_BYTES ? live_bytes : CACHE_MIN_BYTES;
	while (runs_bytes > bound) {
		unsigned oldest = oldest_run();
		size_t over = runs_bytes - bound;
		if (runs[oldest].bytes <= over) {
			drop_run(oldest, out);
		} else {
			runs[oldest].bytes -= over;
			runs_bytes -= over;
			out->r[out->n++] = (struct run){runs[oldest].base + runs[oldest].bytes, over, 0};
		}
	}
}

/* Whether a freed run may merge with its neighbour: not with one idle for half the purge delay, which
 * would otherwise never grow old while a small block next to it comes and goes. */
static bool mergeable(const struct run *neighbour, uint64_t now, uint64_t delay_ns)
{
	return now - neighbour->idle_since_ns < delay_ns / 2;
}

/* A freed run joins the free runs, merged with its neighbours; with no room for it, the oldest
 * run goes. Under runs_lock. */
static void runs_put(char *base, size_t bytes, uint64_t now, uint64_t delay_ns, struct unmaps *out)
{
	unsigned i = 0;
	while (i < runs_len && runs[i].base < base)
		i++;
	bool after_prev = i > 0 && runs[i - 1].base + runs[i - 1].bytes == base && mergeable(&runs[i - 1], now, delay_ns);
	bool before_next = i < runs_len && base + bytes == runs[i].base && mergeable(&runs[i], now, delay_ns);
	runs_bytes += bytes;
	if (after_prev) {
		runs[i - 1].bytes += bytes;
		runs[i - 1].idle_since_ns = now;
		if (before_next) {
			size_t next = runs[i].bytes;
			runs_remove(i);
			runs[i - 1].bytes += next;
			runs_bytes += next;
		}
		return;
	}
	if (before_next) {
		runs[i].base = base;
		runs[i].bytes += bytes;
		runs[i].idle_since_ns = now;
		return;
	}
	if (runs_len == RUNS) {
		unsigned oldest = oldest_run();
		drop_run(oldest, out);
		if (oldest < i)
			i--;
	}
	memmove(&runs[i + 1], &runs[i], (runs_len - i) * sizeof runs[0]);
	runs[i] = (struct run){base, bytes, now};
	runs_len++;
}

static void unmap_all(const struct unmaps *u)
{
	for (unsigned i = 0; i < u->n; i++) {
		hak_stats_large_event(HAKMEM_LARGE_UNMAP, u->r[i].base, u->r[i].bytes);
		hak_os_unmap(u->r[i].base, u->r[i].bytes);
	}
}

/* A fresh mapping; when the kernel refuses one (overcommit, RLIMIT_AS), the free runs go back and
 * it is asked once more. */
static char *map_fresh(size_t bytes)
{
	char *base = hak_os_map(bytes);
	if (!base && hak_large_trim())
		base = hak_os_map(bytes);
	if (base)
		hak_stats_large_event(HAKMEM_LARGE_MAP, base, bytes);
	return base;
}

void *hak_large_alloc(size_t n, size_t align, bool *fresh)
{
	if (align < HEADER)
		align = HEADER;
	size_t bytes = (n + align + 4095) & ~(size_t)4095;
	if (bytes < n) /* n close to PTRDIFF_MAX: wrapped */
		return NULL;
	size_t got = bytes;
	struct unmaps out;
	out.n = 0;
	hak_lock(&runs_lock);
	char *base = runs_take(bytes, &got);
	runs_shrink(hak_now_ns(), hak_opt.ss_purge_delay_ns, &out); /* now under the lock: see hak_large_free */
	hak_unlock(&runs_lock);
	unmap_all(&out);
	*fresh = !base;
	if (!base && !(base = map_fresh(bytes)))
		return NULL;
	hak_tc.counters.bytes[HAKMEM_B_LARGE_ALLOC] += got;
	char *p = (char *)(((uintptr_t)base + HEADER + align - 1) & ~(uintptr_t)(align - 1));
	struct large_header *h = header_of(p);
	h->map_base = base;
	h->map_bytes = got;
	h->sampled = 0;
	h->magic = MAGIC ^ (uintptr_t)p;
	hak_lock(&runs_lock);
	if (*fresh)
		live_bytes += bytes;
	for (unsigned i = 0; i < RECENT; i++) /* the address was a freed block's: a new block there is live */
		if (recent[i] == (uintptr_t)p)
			recent[i] = 0;
	hak_unlock(&runs_lock);
	return p;
}

static bool recently_freed(const void *p)
{
	bool found = false;
	hak_lock(&runs_lock);
	for (unsigned i = 0; i < RECENT && !found; i++)
		found = recent[i] == (uintptr_t)p;
	hak_unlock(&runs_lock);
	return found;
}

/* A pointer that is no small block: a large block, one freed before, or not ours. (Reads the 64 bytes
 * before `p`, as glibc reads a chunk's header: a pointer to the very start of a foreign mapping
 * faults there.) */
enum hak_large_state hak_large_state(const void *p)
{
	if ((uintptr_t)p & (HEADER - 1))
		return HAK_LARGE_NOT_OURS;
	if (recently_freed(p))
		return HAK_LARGE_FREED;
	uint64_t magic = header_of(p)->magic;
	if (magic == (MAGIC ^ (uintptr_t)p))
		return HAK_LARGE_LIVE;
	return magic == (FREED_MAGIC ^ (uintptr_t)p) ? HAK_LARGE_FREED : HAK_LARGE_NOT_OURS;
}

size_t hak_large_usable(const void *p)
{
	struct large_header *h = header_of(p);
	return h->map_base + h->map_bytes - (const char *)p;
}

void hak_large_set_sampled(void *p, size_t n)
{
	header_of(p)->sampled = n;
}

size_t hak_large_sampled(const void *p)
{
	return header_of(p)->sampled;
}

void hak_large_free(void *p)
{
	struct large_header *h = header_of(p);
	char *base = h->map_base;
	size_t bytes = h->map_bytes;
	h->magic = FREED_MAGIC ^ (uintptr_t)p;
	hak_tc.counters.bytes[HAKMEM_B_LARGE_FREE] += bytes;
	struct unmaps out;
	out.n = 0;
	hak_lock(&runs_lock);
	/* read under the lock, so that no run is stamped later than `now`: an earlier clock reading
	 * would make a run another thread just freed look idle for ages (unsigned wrap) */
	uint64_t now = hak_now_ns();
	recent[recent_next++ % RECENT] = (uintptr_t)p;
	live_bytes -= bytes;
	runs_put(base, bytes, now, hak_opt.ss_purge_delay_ns, &out);
	runs_shrink(now, hak_opt.ss_purge_delay_ns, &out);
	hak_unlock(&runs_lock);
	unmap_all(&out);
}

/* malloc_trim: every free run goes back; returns the bytes unmapped. */
size_t hak_large_trim(void)
{
	struct unmaps out;
	out.n = 0;
	hak_lock(&runs_lock);
	while (runs_len)
		drop_run(runs_len - 1, &out);
	hak_unlock(&runs_lock);
	unmap_all(&out);
	size_t bytes = 0;
	for (unsigned i = 0; i < out.n; i++)
		bytes += out.r[i].bytes;
	return bytes;
}

void hak_large_fork_prepare(void)
{
	hak_lock(&runs_lock);
}

void hak_large_fork_parent(void)
{
	hak_unlock(&runs_lock);
}

/* The child inherits the free runs (copy-on-write) with the parent's totals, which count them. */
void hak_large_fork_child(void)
{
	hak_lock_reset(&runs_lock);
}
