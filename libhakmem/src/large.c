/*
 * Large blocks (above the largest size class): each is its own mapping, with a 64-byte header right
 * before the block that says where the mapping starts and how long it is. A few recently freed
 * mappings are kept in a small cache, so a program that frees and mallocs big buffers in a loop
 * (or grows one with realloc) does not make two syscalls per iteration.
 *
 * Misuse: a freed block's header says so (FREED_MAGIC) while its mapping is cached, and the last
 * RECENT blocks whose mappings went back to the kernel are remembered, so that freeing either again
 * is reported as a double free rather than read through an unmapped header.
 */
#include <string.h>

#include "internal.h"

#define HEADER 64
#define MAGIC 0x68616b6d656dULL /* "hakmem" */
#define FREED_MAGIC 0x6672656564ULL /* "freed" */
#define RECENT 64
#define CACHE_SLOTS 8
#define CACHE_MAX_BYTES ((size_t)64 << 20)	/* cached mappings hold at most this much in all */
#define CACHE_MAX_ONE ((size_t)16 << 20)	/* bigger mappings always go back at once */

struct large_header {
	uint64_t magic;		/* MAGIC ^ the block's address: a stale or foreign pointer does not match */
	size_t map_bytes;
	char *map_base;
	size_t sampled;		/* the size asked for, when the block is an allocation sample (sample.c) */
	char pad[HEADER - 32];
};

struct cached {
	char *base;
	size_t bytes;
};

static hak_lock_t cache_lock = HAK_LOCK_INIT;
static struct cached cache[CACHE_SLOTS];	/* oldest first */
static unsigned cache_len;
static size_t cache_bytes;
static uintptr_t recent[RECENT];	/* blocks whose mappings were unmapped, a ring; under cache_lock */
static unsigned recent_next;

static struct large_header *header_of(const void *p)
{
	return (struct large_header *)((char *)p - HEADER);
}

static char *cache_take(size_t bytes, size_t *got)
{
	char *base = NULL;
	if (!cache_len)
		return NULL;
	hak_lock(&cache_lock);
	for (unsigned i = cache_len; i-- > 0;) {
		/* Reuse a mapping no more than a quarter too big, most recent first. */
		if (cache[i].bytes >= bytes && cache[i].bytes - bytes <= bytes / 4) {
			base = cache[i].base;
			*got = cache[i].bytes;
			cache_bytes -= cache[i].bytes;
			memmove(&cache[i], &cache[i + 1], (cache_len - i - 1) * sizeof cache[0]);
			cache_len--;
			break;
		}
	}
	hak_unlock(&cache_lock);
	return base;
}

static void unmap(char *base, size_t bytes)
{
	/* The block starts HEADER bytes in for the usual alignment; an aligned one elsewhere, and a
	 * double free of that goes unremembered (its header is gone: a fault, never a reuse). */
	hak_lock(&cache_lock);
	recent[recent_next++ % RECENT] = (uintptr_t)base + HEADER;
	hak_unlock(&cache_lock);
	hak_stats_large_event(HAKMEM_LARGE_UNMAP, base, bytes);
	hak_os_unmap(base, bytes);
}

/* The kernel hands unmapped addresses out again: a new block there is live. */
static void forget_unmapped(const void *p)
{
	hak_lock(&cache_lock);
	for (unsigned i = 0; i < RECENT; i++)
		if (recent[i] == (uintptr_t)p)
			recent[i] = 0;
	hak_unlock(&cache_lock);
}

void *hak_large_alloc(size_t n, size_t align, bool *fresh)
{
	if (align < HEADER)
		align = HEADER;
	size_t bytes = (n + align + 4095) & ~(size_t)4095;
	if (bytes < n) /* n close to PTRDIFF_MAX: wrapped */
		return NULL;
	size_t got = bytes;
	char *base = align == HEADER ? cache_take(bytes, &got) : NULL;
	*fresh = !base;
	if (!base) {
		base = hak_os_map(bytes);
		if (!base)
			return NULL;
		hak_stats_large_event(HAKMEM_LARGE_MAP, base, bytes);
	}
	hak_tc.counters.bytes[HAKMEM_B_LARGE_ALLOC] += got;
	char *p = (char *)(((uintptr_t)base + HEADER + align - 1) & ~(uintptr_t)(align - 1));
	struct large_header *h = header_of(p);
	h->map_base = base;
	h->map_bytes = got;
	h->sampled = 0;
	h->magic = MAGIC ^ (uintptr_t)p;
	forget_unmapped(p);
	return p;
}

static bool recently_unmapped(const void *p)
{
	bool found = false;
	hak_lock(&cache_lock);
	for (unsigned i = 0; i < RECENT && !found; i++)
		found = recent[i] == (uintptr_t)p;
	hak_unlock(&cache_lock);
	return found;
}

/* A pointer that is no small block: a large block, one freed before, or not ours. (Reads the 64 bytes
 * before `p`, as glibc reads a chunk's header: a pointer to the very start of a foreign mapping
 * faults there.) */
enum hak_large_state hak_large_state(const void *p)
{
	if ((uintptr_t)p & (HEADER - 1))
		return HAK_LARGE_NOT_OURS;
	if (recently_unmapped(p))
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
	char *evict = NULL;
	size_t evict_bytes = 0;
	if (bytes <= CACHE_MAX_ONE) {
		hak_lock(&cache_lock);
		if (cache_len == CACHE_SLOTS || cache_bytes + bytes > CACHE_MAX_BYTES) {
			evict = cache[0].base;
			evict_bytes = cache[0].bytes;
			cache_bytes -= evict_bytes;
			memmove(&cache[0], &cache[1], (cache_len - 1) * sizeof cache[0]);
			cache_len--;
		}
		if (cache_bytes + bytes <= CACHE_MAX_BYTES) {
			cache[cache_len++] = (struct cached){base, bytes};
			cache_bytes += bytes;
			base = NULL;
		}
		hak_unlock(&cache_lock);
	}
	if (evict)
		unmap(evict, evict_bytes);
	if (base)
		unmap(base, bytes);
}

/* malloc_trim: every cached mapping goes back; returns the bytes unmapped. */
size_t hak_large_trim(void)
{
	struct cached drop[CACHE_SLOTS];
	hak_lock(&cache_lock);
	unsigned n = cache_len;
	memcpy(drop, cache, n * sizeof cache[0]);
	cache_len = 0;
	cache_bytes = 0;
	hak_unlock(&cache_lock);
	size_t bytes = 0;
	for (unsigned i = 0; i < n; i++) {
		unmap(drop[i].base, drop[i].bytes);
		bytes += drop[i].bytes;
	}
	return bytes;
}

void hak_large_fork_prepare(void)
{
	hak_lock(&cache_lock);
}

void hak_large_fork_parent(void)
{
	hak_unlock(&cache_lock);
}

/* The child inherits the cached mappings (copy-on-write) with the parent's totals, which count them. */
void hak_large_fork_child(void)
{
	hak_lock_reset(&cache_lock);
}
