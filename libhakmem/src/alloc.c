/*
 * malloc and friends. The fast path is a table lookup for the class, a pop from the thread cache (the
 * link decoded, the block's free mark cleared) and the requested size added up; everything else
 * (first use of the thread, refills, large blocks) is out of line. Blocks handed out per class are
 * counted at the next flush (hak_stats_flush_thread).
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* The fast path's pop of `b`, the head of the class's cache. `n` is what the program asked for,
 * counted as requested bytes (a block's class size is derived). */
static inline __attribute__((always_inline)) void *pop(struct hak_tcache *tc, size_t cls, struct hak_block *b, size_t n)
{
	hak_debug(hak_check_cached_block(b, cls));
	tc->head[cls] = hak_link_get(b);
	b->key = 0; /* no longer free: a free() of it is no double free */
	tc->room[cls]++;
	tc->counters.bytes[HAKMEM_B_REQUESTED] += n;
	return b;
}

static HAK_NOINLINE void *alloc_slow(struct hak_tcache *tc, unsigned cls, size_t n)
{
	if (unlikely(!tc->heap) && !hak_heap_init(tc)) {
		errno = ENOMEM;
		return NULL;
	}
	struct hak_block *b = tc->head[cls];
	if (!b) {
		if (!hak_refill(tc, cls)) {
			errno = ENOMEM;
			return NULL;
		}
		b = tc->head[cls];
	}
	pop(tc, cls, b, n);
	if (unlikely(tc->exited))
		hak_heap_teardown(tc);
	else
		hak_stats_maybe_flush(tc);
	return b;
}

static inline void *alloc_class(struct hak_tcache *tc, unsigned cls, size_t n)
{
	struct hak_block *b = tc->head[cls];
	return likely(b) ? pop(tc, cls, b, n) : alloc_slow(tc, cls, n);
}

/* Before the library is initialised the class tables are all zero and every size looks like class
 * 0, whose cache is empty: so the first malloc always lands here, initialises, and looks again. */
static HAK_NOINLINE void *alloc_first(struct hak_tcache *tc, size_t n)
{
	hak_ensure_init();
	return alloc_class(tc, hak_class_of(n), n);
}

static HAK_NOINLINE void *alloc_large(size_t n, size_t align, bool zero)
{
	struct hak_tcache *tc = &hak_tc;
	if (n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	hak_ensure_init();
	if (unlikely(!tc->heap))
		hak_heap_init(tc);
	bool fresh;
	void *p = hak_large_alloc(n, align, &fresh);
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	tc->counters.allocs[HAKMEM_SLOT_LARGE]++;
	tc->counters.bytes[HAKMEM_B_REQUESTED] += n;
	tc->slow_bytes_since_flush += n;
	if (unlikely(tc->exited))
		hak_heap_teardown(tc);
	else if (tc->heap)
		hak_stats_maybe_flush(tc);
	if (zero && !fresh)
		memset(p, 0, n);
	return p;
}

void *hak_malloc(size_t n)
{
	struct hak_tcache *tc = &hak_tc;
	size_t cls;
	/* Small sizes first and inline: the common case falls through with no jump. */
	if (likely(n <= 1024))
		cls = hak_class_small[(n + 15) >> 4];
	else if (n <= HAK_MAX_SMALL)
		cls = hak_class_medium[(n - 1) >> 8];
	else
		return alloc_large(n, 0, false);
	struct hak_block *b = tc->head[cls];
	if (likely(b))
		return pop(tc, cls, b, n);
	return tc->heap ? alloc_slow(tc, cls, n) : alloc_first(tc, n);
}

HAK_API void *malloc(size_t n) __attribute__((alias("hak_malloc")));

void *hak_calloc(size_t count, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(count, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	if (n > HAK_MAX_SMALL)
		return alloc_large(n, 0, true);
	void *p = hak_malloc(n);
	if (p)
		memset(p, 0, n);
	return p;
}

/* `align` is a power of two. Up to 4 KiB, a class whose size is a multiple of the alignment serves
 * it: slabs start on 4 KiB boundaries, so such blocks are aligned. Larger alignments get a mapping. */
void *hak_aligned(size_t align, size_t n)
{
	if (align <= 16)
		return hak_malloc(n);
	if (n > PTRDIFF_MAX || align > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	size_t need = n < align ? align : n;
	if (align <= 4096 && need <= HAK_MAX_SMALL) {
		hak_ensure_init();
		unsigned cls = hak_class_of(need);
		while (cls < HAK_NUM_CLASSES && hak_class_size[cls] % align)
			cls++;
		if (cls < HAK_NUM_CLASSES)
			return alloc_class(&hak_tc, cls, n);
	}
	return alloc_large(n, align, false);
}

void *hak_realloc(void *p, size_t n)
{
	if (!p)
		return hak_malloc(n);
	if (n == 0) { /* glibc frees and returns NULL */
		hak_free(p);
		return NULL;
	}
	size_t old = hak_usable_size(p);
	if (!old || (hak_is_small(p) && hak_block_freed(hak_ss_of(p), hak_page_cls(hak_ss_of(p), p), p))) {
		/* not a live block of ours (freed, interior, foreign): reported; reporting only, nothing of
		 * it is kept */
		hak_heap_error(HAKMEM_HEAP_INVALID_POINTER, "realloc", p, 0);
		return hak_malloc(n);
	}
	/* Shrinking by less than half, or growing within the block: keep it. */
	if (n <= old && (n >= old / 2 || old <= 64))
		return p;
	void *q = hak_malloc(n);
	if (!q)
		return NULL; /* errno set; the old block is untouched */
	memcpy(q, p, n < old ? n : old);
	hak_free(p);
	return q;
}
