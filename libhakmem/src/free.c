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

/* What every slow free ends with: an exiting thread flushes at once, a thread that only frees gets
 * a heap (its counters go out at its exit), the others flush when it is time. */
static inline void after_slow_free(struct hak_tcache *tc)
{
	if (unlikely(tc->exited)) {
		if (tc->heap)
			hak_heap_teardown(tc);
		else
			hak_stats_flush_thread(tc);
		return;
	}
	if (unlikely(!tc->heap) && !hak_heap_init(tc))
		return;
	hak_stats_maybe_flush(tc);
}

/* ss_local: the cache is full, straight back to the slab. (Returning half the cache here instead was
 * measured slower: walking the list to split it misses the cache on every block.) */
static HAK_NOINLINE void free_local(struct hak_tcache *tc, struct hak_superslab *ss, struct hak_slab *s,
				    struct hak_block *b)
{
	unsigned cls = s->cls;
	tc->room[cls] = 0; /* the fast path's subtract borrowed */
	tc->slow_bytes_since_flush += s->bsize;
	tc->counters.slab_frees[cls][HAKMEM_SLAB_LOCAL]++;
	hak_slab_put_local(tc->heap, ss, s, b); /* may release the slab and its SuperSlab: s is gone */
	/* A class that overflows its cache gets a bigger one, up to 256 KiB of blocks (tcmalloc's slow
	 * start): bursts of frees then stay on the fast path. */
	unsigned most = HAK_CACHE_MAX_BYTES / hak_class_size[cls];
	if (tc->limit[cls] < most) {
		unsigned more = tc->limit[cls] / 4 + 1;
		tc->limit[cls] += more;
		tc->room[cls] += more;
	}
	after_slow_free(tc);
}

/* ss_remote: another thread's (or an abandoned) slab. Its own function, a leaf but for the tail call
 * to the flush check, so that it saves no registers. */
static HAK_NOINLINE void free_remote(struct hak_tcache *tc, struct hak_superslab *ss, struct hak_slab *s,
				     struct hak_block *b)
{
	tc->slow_bytes_since_flush += s->bsize;
	tc->counters.slab_frees[s->cls][HAKMEM_SLAB_REMOTE]++;
	/* Read before the block is published: after the CAS its owner may drain it, empty the slab and
	 * unmap the SuperSlab. (Should the SuperSlab change hands meanwhile, the old heap gets the flag,
	 * harmlessly, and the adopter drained every remote list when it took it.) */
	struct hak_heap *owner = atomic_load_explicit(&ss->heap, memory_order_relaxed);
	struct hak_block *old = atomic_load_explicit(&s->remote, memory_order_relaxed);
	do
		b->next = old;
	while (!atomic_compare_exchange_weak_explicit(&s->remote, &old, b, memory_order_release,
						      memory_order_relaxed));
	/* The first remote block on a slab tells its owner to look at its full slabs. */
	if (!old && owner)
		atomic_store_explicit(&owner->remote_pending, 1, memory_order_relaxed);
	after_slow_free(tc);
}

/* One place in the cache: a subtract from memory and a jump on its borrow (GCC makes five instructions
 * of the same C). When there is none, the room wrapped around and the slow path resets it. */
static inline __attribute__((always_inline)) bool take_room(uint32_t *room)
{
	asm goto("subl $1, %0\n\tjb %l[full]" : "+m"(*room) : : "cc" : full);
	return true;
full:
	return false;
}

/* Out of line so that free()'s fast path saves no registers and sets up no frame. */
static HAK_NOINLINE void free_not_small(void *p)
{
	if (p && hak_large_owns(p)) {
		struct hak_tcache *tc = &hak_tc;
		if (unlikely(!tc->heap) && !tc->exited)
			hak_heap_init(tc);
		tc->counters.frees[HAKMEM_SLOT_LARGE]++;
		tc->slow_bytes_since_flush += hak_large_usable(p);
		hak_large_free(p);
		if (unlikely(tc->exited))
			hak_stats_flush_thread(tc);
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
		if (unlikely(atomic_load_explicit(&ss->owner, memory_order_relaxed) != hak_self())) {
			free_remote(tc, ss, hak_slab_of(ss, p), b);
			return;
		}
		if (unlikely(!take_room(&tc->room[cls]))) {
			free_local(tc, ss, hak_slab_of(ss, p), b);
			return;
		}
		b->next = tc->head[cls];
		tc->head[cls] = b;
		tc->counters.frees[cls]++;
		return;
	}
	free_not_small(p);
}

HAK_API void free(void *p) __attribute__((alias("hak_free")));

size_t hak_usable_size(const void *p)
{
	if (hak_is_small(p))
		return hak_slab_of(hak_ss_of(p), p)->bsize;
	if (p && hak_large_owns(p))
		return hak_large_usable(p);
	return 0;
}
