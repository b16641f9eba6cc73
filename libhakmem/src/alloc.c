/*
 * malloc and friends. The fast path is a table lookup for the class, the requested size counted down
 * to the next sample (sample.c), and a pop from the thread cache (the link decoded, the block's free
 * mark cleared); everything else (first use of the thread, refills, samples, large blocks) is out of
 * line. Blocks handed out per class are counted at the next flush (hak_stats_flush_thread), requested
 * bytes from the countdown.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

/* The fast path's pop of `b`, the head of the class's cache, the cache addressed through %fs (the
 * same register as the countdown's). */
static inline __attribute__((always_inline)) void *pop(struct hak_tcache __seg_fs *tc, size_t cls, struct hak_block *b)
{
	hak_debug(hak_check_cached_block(b, cls));
	tc->head[cls] = hak_link_get(b);
	b->key = 0; /* no longer free: a free() of it is no double free */
	tc->room[cls]++;
	return b;
}

/* n bytes counted down to the next sample: a subtract from memory and a jump on its borrow (the
 * countdown crossed zero). */
static inline __attribute__((always_inline)) bool count_down(struct hak_tcache __seg_fs *tc, size_t n)
{
	asm goto("subq %1, %0\n\tjb %l[due]" : "+m"(tc->sample_left) : "r"(n) : "cc" : due);
	return true;
due:
	return false;
}

/* An allocation that fails was not asked for: its bytes come off the count again (at the next
 * settling), the countdown to the next sample left as it is. */
static void *fail(struct hak_tcache *tc, size_t n)
{
	tc->sample_base -= n;
	errno = ENOMEM;
	return NULL;
}

static HAK_NOINLINE void *alloc_slow(struct hak_tcache *tc, unsigned cls, size_t n)
{
	if (unlikely(!tc->heap)) {
		/* A heap needs the library initialised. Every small-block malloc makes its heap here, so
		 * this is where that is seen to, whatever the caller did before. */
		hak_ensure_init();
		if (!hak_heap_init(tc))
			return fail(tc, n);
	}
	struct hak_block *b = tc->head[cls];
	if (!b) {
		if (!hak_refill(tc, cls))
			return fail(tc, n);
		b = tc->head[cls];
	}
	pop(hak_tc_fs(), cls, b);
	if (unlikely(tc->exited))
		hak_heap_teardown(tc);
	else
		hak_stats_maybe_flush(tc);
	return b;
}

/* A block of class `cls` for n counted bytes. */
static inline void *alloc_class(struct hak_tcache *tc, unsigned cls, size_t n)
{
	struct hak_block *b = tc->head[cls];
	return likely(b) ? pop(hak_tc_fs(), cls, b) : alloc_slow(tc, cls, n);
}

/* The first class whose blocks hold n bytes and, the class size being a multiple of `align`, start
 * `align`-aligned (slabs start on 4 KiB boundaries); HAK_NUM_CLASSES when none does. */
static unsigned aligned_class(size_t n, size_t align)
{
	unsigned cls = hak_class_of(n);
	while (cls < HAK_NUM_CLASSES && hak_class_size[cls] % align)
		cls++;
	return cls;
}

/* Before the library is initialised the class tables are all zero and every size looks like class
 * 0, whose cache is empty: so the first malloc always lands here, initialises, and looks again. */
static HAK_NOINLINE void *alloc_first(struct hak_tcache *tc, size_t n)
{
	hak_ensure_init();
	return alloc_class(tc, hak_class_of(n), n);
}

/* A large block for n counted bytes. */
static void *alloc_large_block(size_t n, size_t align, bool zero)
{
	struct hak_tcache *tc = &hak_tc;
	hak_ensure_init();
	if (unlikely(!tc->heap))
		hak_heap_init(tc);
	bool fresh;
	void *p = hak_large_alloc(n, align, &fresh);
	if (!p)
		return fail(tc, n);
	tc->counters.allocs[HAKMEM_SLOT_LARGE]++;
	tc->slow_bytes_since_flush += n;
	if (unlikely(tc->exited))
		hak_heap_teardown(tc);
	else if (tc->heap)
		hak_stats_maybe_flush(tc);
	if (zero && !fresh)
		memset(p, 0, n);
	return p;
}

/* A sampled allocation (sample.c): `mean` is that of the interval that ended. The block has room for
 * the sample header before an `align`-aligned address. */
static void *alloc_sampled(size_t n, size_t align, bool zero, uint64_t mean)
{
	size_t offset = align > 16 ? align : 16;
	if (align <= 4096 && n <= HAK_MAX_SMALL - offset) {
		unsigned cls = aligned_class(n + offset, offset);
		if (cls < HAK_NUM_CLASSES) {
			struct hak_block *b = alloc_class(&hak_tc, cls, n);
			return b ? hak_sample_small(b, offset, n, mean) : NULL;
		}
	}
	void *p = alloc_large_block(n, align, zero);
	if (p)
		hak_sample_large(p, n, mean);
	return p;
}

/* The countdown crossed zero in this allocation of n bytes: a sample, if something is attached to
 * take it. */
static HAK_NOINLINE void *alloc_due(size_t n, size_t align, bool zero)
{
	hak_ensure_init(); /* the options first: the interval drawn next is HAKMEM_SAMPLE_INTERVAL's */
	uint64_t mean = hak_sample_due(&hak_tc, n); /* 0: no sample */
	if (mean) {
		void *p = alloc_sampled(n, align, zero, mean);
		if (p)
			return p;
		hak_tc.sample_base += n; /* counted again: the plain allocation below may still succeed */
	}
	if (align <= 4096 && n <= HAK_MAX_SMALL) {
		unsigned cls = aligned_class(n, align > 16 ? align : 16);
		if (cls < HAK_NUM_CLASSES)
			return alloc_class(&hak_tc, cls, n);
	}
	return alloc_large_block(n, align, zero);
}

/* malloc's fast path popped `b` of class `cls` and then crossed zero: `b` it is, unless the allocation
 * becomes a sample; then `b` goes back to the head of its cache, as it was. */
static HAK_NOINLINE void *malloc_due(struct hak_block *b, unsigned cls, size_t n)
{
	struct hak_tcache *tc = &hak_tc;
	uint64_t mean = hak_sample_due(tc, n);
	if (!mean)
		return b;
	hak_link_set(b, tc->head[cls]);
	b->key = hak_free_mark(b);
	tc->head[cls] = b;
	tc->room[cls]--;
	void *p = alloc_sampled(n, 0, false, mean);
	if (p)
		return p;
	tc->sample_base += n; /* counted again, and the block it had is its after all */
	return alloc_class(tc, cls, n);
}

static HAK_NOINLINE void *alloc_large(size_t n, size_t align, bool zero)
{
	struct hak_tcache *tc = &hak_tc;
	if (n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	if (__builtin_sub_overflow(tc->sample_left, n, &tc->sample_left))
		return alloc_due(n, align, zero);
	return alloc_large_block(n, align, zero);
}

/* malloc with the class's cache empty (or the thread new, or the library not initialised yet). */
static HAK_NOINLINE void *malloc_slow(unsigned cls, size_t n)
{
	struct hak_tcache *tc = &hak_tc;
	if (__builtin_sub_overflow(tc->sample_left, n, &tc->sample_left))
		return alloc_due(n, 0, false);
	return tc->heap ? alloc_slow(tc, cls, n) : alloc_first(tc, n);
}

/* operator new's out-of-line paths: malloc's, then C++'s failure behaviour (cxx.c). */
static HAK_NOINLINE void *new_slow(unsigned cls, size_t n)
{
	void *p = malloc_slow(cls, n);
	return likely(p) ? p : hak_new_failed(n);
}

static HAK_NOINLINE void *new_large(size_t n)
{
	void *p = alloc_large(n, 0, false);
	return likely(p) ? p : hak_new_failed(n);
}

/* malloc's body, also C++'s operator new's (`cxx`: its out-of-line paths go on to hak_new_failed
 * when they have no memory; the fast path, which cannot fail, is the same). */
static inline __attribute__((always_inline)) void *malloc_body(size_t n, bool cxx)
{
	size_t cls;
	/* Small sizes first and inline: the common case falls through with no jump. */
	if (likely(n <= 1024))
		cls = hak_class_small[(n + 15) >> 4];
	else if (n <= HAK_MAX_SMALL)
		cls = hak_class_medium[(n - 1) >> 8];
	else
		return cxx ? new_large(n) : alloc_large(n, 0, false);
	struct hak_tcache __seg_fs *tc = hak_tc_fs();
	struct hak_block *b = tc->head[cls];
	__asm__("" : "+a"(b)); /* in the return register from the start: no move before the ret */
	if (unlikely(!b))
		return cxx ? new_slow(cls, n) : malloc_slow(cls, n);
	pop(tc, cls, b);
	/* Counted last, as the requested-bytes counter it replaces was: on the way out. */
	if (unlikely(!count_down(tc, n)))
		return malloc_due(b, cls, n); /* cannot fail: `b` is there to fall back on */
	return b;
}

void *hak_malloc(size_t n)
{
	return malloc_body(n, false);
}

HAK_API void *malloc(size_t n) __attribute__((alias("hak_malloc")));

void *hak_new(size_t n)
{
	return malloc_body(n, true);
}

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
		unsigned cls = aligned_class(need, align);
		if (cls < HAK_NUM_CLASSES) {
			struct hak_tcache *tc = &hak_tc;
			if (__builtin_sub_overflow(tc->sample_left, n, &tc->sample_left))
				return alloc_due(n, align, false);
			return alloc_class(tc, cls, n);
		}
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
