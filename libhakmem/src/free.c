/*
 * free(): the address says everything. Its 2 MiB-aligned base is the SuperSlab (a bit in the
 * SuperSlab map says the block is ours), the page says the class, and one compare of the SuperSlab's
 * owner with this thread's thread pointer picks the route:
 *   tls_sll    ours, and the thread cache has room: push, done (the fast path);
 *   ss_local   ours, the cache is full: straight back to the slab (and the class's cache grows);
 *   ss_remote  another thread's (or an abandoned) slab: one CAS onto the slab's remote list;
 *   large      a block with its own mapping.
 * Before any route, two checks (DESIGN.md, "Heap misuse"): the pointer starts a block of its page's
 * class (one multiply), and the block does not carry its free mark (one compare): what fails either
 * goes out of line to be confirmed and reported. That the block was handed out (carved) is checked by
 * ss_local, and for ss_remote by the owner when it drains the remote list.
 */
#include "internal.h"

/* What every slow free ends with: an exiting thread flushes at once, a thread that only frees gets
 * a heap (its counters go out at its exit; the library is initialised: the block is in one of its
 * SuperSlabs), the others flush when it is time. */
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
	hak_stats_maybe_flush_after_free(tc);
}

/* ss_local: the cache is full, straight back to the slab. (Returning half the cache here instead was
 * measured slower: walking the list to split it misses the cache on every block.) */
static HAK_NOINLINE void free_local(struct hak_block *b)
{
	struct hak_tcache *tc = &hak_tc;
	struct hak_superslab *ss = hak_ss_of(b);
	unsigned cls = hak_page_cls(ss, b);
	tc->room[cls] = 0; /* the fast path's subtract borrowed (from 0) */
	struct hak_slab *s = hak_carved_slab(ss, b);
	if (!s) {
		hak_heap_error(HAKMEM_HEAP_INVALID_POINTER, "free", b, hak_class_size[cls]);
		return;
	}
	b->key = hak_free_mark(b);
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
static HAK_NOINLINE void free_remote(struct hak_block *b)
{
	struct hak_tcache *tc = &hak_tc;
	struct hak_superslab *ss = hak_ss_of(b);
	struct hak_slab *s = hak_slab_of(ss, b); /* the carved bound: checked by the owner's drain */
	b->key = hak_free_mark(b);
	tc->slow_bytes_since_flush += s->bsize;
	tc->counters.slab_frees[s->cls][HAKMEM_SLAB_REMOTE]++;
	/* Read before the block is published: after the CAS its owner may drain it, empty the slab and
	 * unmap the SuperSlab. (Should the SuperSlab change hands meanwhile, the old heap gets the flag,
	 * harmlessly, and the adopter drained every remote list when it took it.) */
	struct hak_heap *owner = atomic_load_explicit(&ss->heap, memory_order_relaxed);
	struct hak_block *old = atomic_load_explicit(&s->remote, memory_order_relaxed);
	do
		hak_link_set(b, old);
	while (!atomic_compare_exchange_weak_explicit(&s->remote, &old, b, memory_order_release,
						      memory_order_relaxed));
	/* The first remote block on a slab tells its owner to look at its full slabs. */
	if (!old && owner)
		atomic_store_explicit(&owner->remote_pending, 1, memory_order_relaxed);
	after_slow_free(tc);
}

/* One place in the cache: a subtract from memory and a jump on its borrow (GCC makes five instructions
 * of the same C). When there is none, the room wrapped around and the slow path resets it. */
static inline __attribute__((always_inline)) bool take_room(uint32_t __seg_fs *room)
{
	asm goto("subl $1, %0\n\tjb %l[full]" : "+m"(*room) : : "cc" : full);
	return true;
full:
	return false;
}

/* Not the start of a block of its page's class, or in a page with no blocks. */
static HAK_NOINLINE void free_invalid(void *p)
{
	struct hak_block *b;
	enum hak_sampled sampled = hak_sample_free(p, &b); /* a sampled block starts 16 bytes (or its alignment) in */
	if (sampled == HAK_SAMPLE_FREED) {
		hak_free(b); /* the block the sample lies in, freed as any block is */
		return;
	}
	unsigned cls = hak_page_cls(hak_ss_of(p), p);
	hak_heap_error(sampled == HAK_SAMPLE_FREED_BEFORE ? HAKMEM_HEAP_DOUBLE_FREE : HAKMEM_HEAP_INVALID_POINTER, "free",
		       p, cls == HAK_NO_CLASS ? 0 : hak_class_size[cls]);
}

/* The block carries its free mark. */
static HAK_NOINLINE void free_marked(struct hak_block *b)
{
	struct hak_superslab *ss = hak_ss_of(b);
	unsigned cls = hak_page_cls(ss, b);
	if (!hak_block_slab(ss, b)) {
		hak_heap_error(HAKMEM_HEAP_INVALID_POINTER, "free", b, hak_class_size[cls]);
		return;
	}
	if (!hak_block_freed(ss, cls, b)) { /* a live block that holds its mark by a 1 in 2^64 chance */
		b->key = 0;
		hak_free(b);
		return;
	}
	hak_heap_error(HAKMEM_HEAP_DOUBLE_FREE, "free", b, hak_class_size[cls]);
}

/* Out of line so that free()'s fast path saves no registers and sets up no frame. */
static HAK_NOINLINE void free_not_small(void *p)
{
	if (!p)
		return;
	enum hak_large_state state = hak_large_state(p);
	if (state != HAK_LARGE_LIVE) {
		hak_heap_error(state == HAK_LARGE_FREED ? HAKMEM_HEAP_DOUBLE_FREE : HAKMEM_HEAP_INVALID_POINTER, "free",
			       p, 0);
		return;
	}
	struct hak_tcache *tc = &hak_tc;
	if (unlikely(!tc->heap) && !tc->exited)
		hak_heap_init(tc); /* a live large block: the library is initialised */
	tc->counters.frees[HAKMEM_SLOT_LARGE]++;
	tc->slow_bytes_since_flush += hak_large_usable(p);
	hak_sample_free_large(p);
	hak_large_free(p);
	if (unlikely(tc->exited))
		hak_stats_flush_thread(tc);
	else if (tc->heap)
		hak_stats_maybe_flush(tc);
}

void hak_free(void *p)
{
	if (likely(hak_is_small(p))) {
		struct hak_superslab *ss = hak_ss_of(p);
		uintptr_t off = (uintptr_t)p & (HAK_SS_SIZE - 1);
		size_t cls = ss->page_cls[off >> HAK_PAGE_SHIFT];
		/* The slow paths below take the block alone and work the rest out again: setting up more
		 * arguments would cost the fast path register moves. */
		struct hak_tcache __seg_fs *tc = hak_tc_fs();
		struct hak_block *b = p;
		if (unlikely(off * hak_class_div[cls] >= hak_class_div[cls])) {
			free_invalid(p);
			return;
		}
		uint64_t mark = hak_free_mark(b);
		if (unlikely(b->key == mark)) {
			free_marked(b);
			return;
		}
		if (unlikely(atomic_load_explicit(&ss->owner, memory_order_relaxed) != hak_self())) {
			free_remote(b);
			return;
		}
		if (unlikely(!take_room(&tc->room[cls]))) {
			free_local(b);
			return;
		}
		hak_check(hak_block_slab(ss, b)); /* carved: what the fast path does not check */
		hak_link_set(b, tc->head[cls]);
		b->key = mark;
		tc->head[cls] = b;
		tc->counters.frees[cls]++;
		return;
	}
	free_not_small(p);
}

HAK_API void free(void *p) __attribute__((alias("hak_free")));

size_t hak_usable_size(const void *p)
{
	if (hak_is_small(p)) {
		struct hak_slab *s = hak_block_slab(hak_ss_of(p), p);
		return s ? s->bsize : hak_sample_usable(p);
	}
	if (p && hak_large_state(p) == HAK_LARGE_LIVE)
		return hak_large_usable(p);
	return 0;
}
