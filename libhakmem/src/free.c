/*
 * free(): the address says everything. Its 2 MiB-aligned base is the SuperSlab (a bit in the
 * SuperSlab map says the block is ours), the page says the slab, the slab says the class, and one
 * compare of the SuperSlab's owner with this thread's cache picks the route:
 *   tls_sll    ours, and the thread cache has room: push, done (the fast path);
 *   ss_local   ours, the cache is full: straight back to the slab (and the class's cache grows);
 *   ss_remote  another thread's (or an abandoned) slab: one CAS onto the slab's remote list;
 *   large      a block with its own mapping.
 */
#include "internal.h"

static HAK_NOINLINE void free_slow(struct hak_tcache *tc, struct hak_superslab *ss, struct hak_slab *s,
				   struct hak_block *b)
{
	/* read now: on the ss_local route the slab may be released, its SuperSlab unmapped */
	unsigned cls = s->cls;
	uint32_t bsize = s->bsize;
	tc->bytes_since_flush += bsize;
	if (atomic_load_explicit(&ss->owner, memory_order_relaxed) == tc) {
		/* The cache is full: straight back to the slab. (Returning half the cache here instead was
		 * measured slower: walking the list to split it misses the cache on every block.) */
		tc->counters.frees[cls]++;
		tc->counters.slab_frees[HAKMEM_SLAB_LOCAL]++;
		tc->counters.bytes[HAKMEM_B_SLAB_LOCAL_FREE] += bsize;
		hak_slab_put_local(tc->heap, ss, s, b);
		/* A class that overflows its cache gets a bigger one, up to 256 KiB of blocks (tcmalloc's
		 * slow start): bursts of frees then stay on the fast path. */
		unsigned most = HAK_CACHE_MAX_BYTES / hak_class_size[cls];
		if (tc->limit[cls] < most)
			tc->limit[cls] += tc->limit[cls] / 4 + 1;
	} else {
		tc->counters.frees[cls]++;
		tc->counters.slab_frees[HAKMEM_SLAB_REMOTE]++;
		tc->counters.bytes[HAKMEM_B_SLAB_REMOTE_FREE] += bsize;
		struct hak_block *old = atomic_load_explicit(&s->remote, memory_order_relaxed);
		do
			b->next = old;
		while (!atomic_compare_exchange_weak_explicit(&s->remote, &old, b, memory_order_release,
							      memory_order_relaxed));
		/* The first remote block on a slab tells its owner to look at its full slabs. */
		struct hak_heap *owner = atomic_load_explicit(&ss->heap, memory_order_relaxed);
		if (!old && owner)
			atomic_store_explicit(&owner->remote_pending, 1, memory_order_relaxed);
	}
	tc->slow_since_flush++;
	if (unlikely(tc->exited)) {
		if (tc->heap)
			hak_heap_teardown(tc);
		else
			hak_stats_flush(&tc->counters);
		return;
	}
	/* A thread that only frees still needs a heap: its counters are flushed at its exit. */
	if (unlikely(!tc->heap) && !hak_heap_init(tc))
		return;
	hak_stats_maybe_flush(tc);
}

/* Out of line so that free()'s fast path saves no registers and sets up no frame. */
static HAK_NOINLINE void free_not_small(void *p)
{
	if (p && hak_large_owns(p)) {
		struct hak_tcache *tc = &hak_tc;
		if (unlikely(!tc->heap) && !tc->exited)
			hak_heap_init(tc);
		tc->counters.frees[HAKMEM_SLOT_LARGE]++;
		tc->bytes_since_flush += hak_large_usable(p);
		hak_large_free(p);
		if (unlikely(tc->exited))
			hak_stats_flush(&tc->counters);
		else if (tc->heap)
			hak_stats_maybe_flush(tc);
	}
	/* Anything else is not ours (or NULL): ignored, never a crash. */
}

void hak_free(void *p)
{
	if (likely(hak_is_small(p))) {
		struct hak_superslab *ss = hak_ss_of(p);
		unsigned cls = ss->page_cls[((uintptr_t)p - (uintptr_t)ss) >> HAK_PAGE_SHIFT];
		struct hak_tcache *tc = &hak_tc;
		struct hak_block *b = p;
		if (likely(atomic_load_explicit(&ss->owner, memory_order_relaxed) == tc &&
			   tc->count[cls] < tc->limit[cls])) {
			b->next = tc->head[cls];
			tc->head[cls] = b;
			tc->count[cls]++;
			tc->counters.frees[cls]++;
			return;
		}
		free_slow(tc, ss, hak_slab_of(ss, p), b);
		return;
	}
	free_not_small(p);
}

size_t hak_usable_size(const void *p)
{
	if (hak_is_small(p))
		return hak_slab_of(hak_ss_of(p), p)->bsize;
	if (p && hak_large_owns(p))
		return hak_large_usable(p);
	return 0;
}
