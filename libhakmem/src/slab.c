/*
 * Slabs and thread-cache refills. Everything here runs on the owning thread only (other threads touch
 * a slab through its `remote` list alone), so there are no locks and no atomics but the one exchange
 * that drains a remote list.
 *
 * A refill tries, in order (the stages of probes/hakmem_counters.h): the current slab's local free
 * list, its remote list, its never-carved blocks; then another slab of the class with blocks (local,
 * remote, carve again), a new slab from the thread's SuperSlabs or from an abandoned one (slab), a
 * SuperSlab from the LRU (lru), a new mapping (map). The stage counted is the one that served it.
 */
#include <string.h>

#include "internal.h"

static void list_push(struct hak_slab_list *l, struct hak_slab *s, uint8_t which)
{
	s->list = which;
	s->prev = NULL;
	s->next = l->head;
	if (l->head)
		l->head->prev = s;
	l->head = s;
}

static void list_remove(struct hak_heap *h, struct hak_slab *s)
{
	struct hak_slab_list *l = s->list == HAK_LIST_AVAIL ? &h->avail[s->cls] : &h->full[s->cls];
	if (s->list == HAK_LIST_NONE)
		return;
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->list = HAK_LIST_NONE;
}


/* A link that does not decode to a block of its slab: overwritten (a heap overflow, a write after
 * free). Reported; the rest of the list stays where it is, never to be handed out. */
static void corrupt_link(const struct hak_slab *s, const struct hak_block *b)
{
	hak_heap_error(HAKMEM_HEAP_CORRUPT_FREE_LIST, "malloc", b, s->bsize);
}

/* The remote list, taken whole with one exchange; returns how many blocks came back. */
static unsigned drain_remote(struct hak_slab *s)
{
	if (!atomic_load_explicit(&s->remote, memory_order_relaxed))
		return 0;
	struct hak_block *b = atomic_exchange_explicit(&s->remote, NULL, memory_order_acquire);
	if (!b)
		return 0;
	/* Remote frees check only what free()'s fast path checks; the carved bound is checked here, by
	 * the owner, for every block on the list. */
	struct hak_carved k = hak_carved_of(s);
	if (!hak_starts_carved(&k, b)) {
		hak_heap_error(HAKMEM_HEAP_INVALID_POINTER, "free", b, s->bsize);
		return 0; /* the whole list is leaked */
	}
	unsigned n = 1;
	struct hak_block *last = b, *next;
	while ((next = hak_link_get(last))) {
		if (!hak_starts_carved(&k, next)) {
			corrupt_link(s, last);
			break;
		}
		last = next;
		n++;
	}
	hak_link_set(last, s->free);
	s->free = b;
	s->used -= n;
	hak_tc.counters.bytes[HAKMEM_B_REMOTE_DRAINED] += (uint64_t)n * s->bsize;
	return n;
}

static bool slab_has_blocks(struct hak_slab *s)
{
	return s->free || s->carved < s->capacity || atomic_load_explicit(&s->remote, memory_order_relaxed);
}

/* Move up to `want` blocks from the slab into the thread cache. */
static unsigned take(struct hak_tcache *tc, unsigned cls, struct hak_slab *s, unsigned want, unsigned *stage)
{
	unsigned n = 0;
	if (!s->free && drain_remote(s))
		*stage = HAKMEM_STAGE_REMOTE > *stage ? HAKMEM_STAGE_REMOTE : *stage;
	else if (s->free)
		*stage = *stage > HAKMEM_STAGE_LOCAL ? *stage : HAKMEM_STAGE_LOCAL;
	/* The first `want` blocks of the free list move to the cache as they are: links do not depend on
	 * the list they are in, so only the last one is linked anew, to the cache's old head. */
	struct hak_block *head = tc->head[cls], *b = s->free, *last = NULL;
	struct hak_carved k = hak_carved_of(s);
	if (b) {
		struct hak_block *first = b;
		while (n < want && b) {
			struct hak_block *next = hak_link_get(b);
			if (next && !hak_starts_carved(&k, next)) {
				corrupt_link(s, b);
				next = NULL;
			}
			last = b;
			b = next;
			n++;
		}
		hak_link_set(last, head);
		head = first;
	}
	s->free = b;
	if (n < want && s->carved < s->capacity) {
		if (*stage < HAKMEM_STAGE_CARVE)
			*stage = HAKMEM_STAGE_CARVE;
		/* The slab's fields in locals: the stores to the blocks could alias them, as far as the
		 * compiler knows, and it would reload and store them for every block. */
		uint32_t most = want - n < s->capacity - s->carved ? want - n : s->capacity - s->carved;
		size_t bsize = s->bsize;
		uint64_t key = hak_free_key;
		char *from = s->start + (size_t)s->carved * bsize, *to = from + most * bsize;
		for (char *p = from; p < to; p += bsize) {
			struct hak_block *b = (struct hak_block *)p;
			hak_link_set(b, head);
			b->key = key ^ (uintptr_t)p; /* its free mark: freeing it now is a double free */
			head = b;
		}
		s->carved += most;
		n += most;
		tc->counters.bytes[HAKMEM_B_CARVED] += (uint64_t)most * bsize;
		hak_ss_touch(hak_ss_of(s->start), from, to);
	}
	tc->head[cls] = head;
	tc->room[cls] -= n;
	s->used += n;
	return n;
}

/* A slab's first block is at the first offset in its pages that is a multiple of the block size, so
 * that free() can tell a block's start from its offset in the SuperSlab alone (types.h). That costs a
 * slab at most one block of its capacity. */
static void slab_init(struct hak_superslab *ss, unsigned first, unsigned pages, unsigned cls)
{
	struct hak_slab *s = &ss->slabs[first];
	memset(s, 0, sizeof *s);
	size_t bsize = hak_class_size[cls], from = (size_t)first * HAK_PAGE_SIZE, to = from + pages * HAK_PAGE_SIZE;
	size_t start = (from + bsize - 1) / bsize * bsize;
	s->start = (char *)ss + start;
	s->bsize = bsize;
	s->capacity = (to - start) / bsize;
	s->cls = cls;
	s->npages = pages;
	for (unsigned p = first; p < first + pages; p++) {
		ss->page_slab[p] = first;
		ss->page_cls[p] = cls;
	}
	uint32_t mask = ((1u << pages) - 1) << first;
	ss->free_pages &= ~mask;
	ss->used_pages += pages;
	hak_tc.counters.bytes[HAKMEM_B_SLAB_IN] += to - from;
}

/* The pages a slab of `pages` pages may start at, each bit p with pages p..p+pages-1 all in `m`: a
 * slab is aligned to its length (which keeps big blocks well aligned) and page 0, the header, is
 * never in one. */
_Static_assert(HAK_SLAB_MAX_PAGES == 8, "runs_in's starts are those of slabs of 1, 2, 4 and 8 pages");

static uint32_t runs_in(uint32_t m, unsigned pages)
{
	static const uint32_t starts[HAK_SLAB_MAX_PAGES + 1] = {
		[1] = 0xfffffffe, [2] = 0x55555554, [4] = 0x11111110, [8] = 0x01010100};
	for (unsigned shift = 1; shift < pages; shift *= 2)
		m &= m >> shift;
	return m & starts[pages];
}

/* Where a new slab of `pages` pages goes: free pages of one of the heap's SuperSlabs, the first run
 * whose pages are all resident (hak_ss_touch) if there is one, else the first run. What the program
 * freed is reused before fresh pages are faulted in, so peak RSS follows what is live, not what was
 * ever free in some other place. False when no SuperSlab has room. */
struct slab_place {
	struct hak_superslab *ss;
	unsigned first;
};

static bool place_slab(struct hak_heap *h, unsigned pages, struct slab_place *out)
{
	bool found = false;
	for (struct hak_superslab *ss = h->superslabs; ss; ss = ss->next) {
		uint32_t free = runs_in(ss->free_pages, pages);
		if (!free)
			continue;
		uint32_t warm = free & runs_in(ss->resident, pages);
		if (warm) {
			*out = (struct slab_place){ss, __builtin_ctz(warm)};
			return true;
		}
		if (!found) {
			*out = (struct slab_place){ss, __builtin_ctz(free)};
			found = true;
		}
	}
	return found;
}

/* Give an empty slab's pages back to its SuperSlab; an empty SuperSlab leaves the heap. */
void hak_slab_release(struct hak_heap *h, struct hak_superslab *ss, struct hak_slab *s)
{
	hak_check(s->used == 0);
	hak_debug(hak_check_slab(ss, s));
	list_remove(h, s);
	if (h->current[s->cls] == s)
		h->current[s->cls] = NULL;
	unsigned first = s - ss->slabs, pages = s->npages;
	hak_tc.counters.bytes[HAKMEM_B_SLAB_OUT] += (uint64_t)pages * HAK_PAGE_SIZE;
	hak_tc.counters.bytes[HAKMEM_B_SLAB_OUT_CARVED] += (uint64_t)s->carved * s->bsize;
	s->npages = 0;
	memset(&ss->page_cls[first], HAK_NO_CLASS, pages); /* free() of a block of it: invalid pointer */
	uint32_t mask = ((1u << pages) - 1) << first;
	ss->free_pages |= mask;
	ss->used_pages -= pages;
	if (ss->used_pages)
		return;
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		h->superslabs = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	hak_ss_retire(ss);
}

/* A block back to its own slab, by the slab's owner (the `ss_local` route, and thread caches being
 * returned). The current slab of a class is kept even when empty, so a malloc/free loop that crosses
 * a slab boundary does not release and re-create it over and over. */
void hak_slab_put_local(struct hak_heap *h, struct hak_superslab *ss, struct hak_slab *s, struct hak_block *b)
{
	hak_check(s->used > 0 && hak_block_slab(ss, b) == s);
	hak_link_set(b, s->free);
	s->free = b;
	s->used--;
	if (s->list == HAK_LIST_FULL) {
		list_remove(h, s);
		list_push(&h->avail[s->cls], s, HAK_LIST_AVAIL);
	}
	if (s->used == 0 && h->current[s->cls] != s)
		hak_slab_release(h, ss, s);
}

/* Take over a SuperSlab: file its slabs in this heap's lists, releasing those that turn out empty. */
void hak_slab_adopt_superslab(struct hak_heap *h, struct hak_superslab *ss)
{
	atomic_store_explicit(&ss->heap, h, memory_order_relaxed);
	atomic_store_explicit(&ss->owner, hak_self(), memory_order_release);
	ss->prev = NULL;
	ss->next = h->superslabs;
	if (ss->next)
		ss->next->prev = ss;
	h->superslabs = ss;
	for (unsigned i = 0; i < HAK_SS_PAGES; i++) {
		struct hak_slab *s = &ss->slabs[i];
		if (!s->npages || ss->page_slab[i] != i)
			continue;
		s->list = HAK_LIST_NONE;
		drain_remote(s);
		if (s->used == 0) {
			/* Releasing the last slab retires the SuperSlab: it must not be touched after. */
			bool last = ss->used_pages == s->npages;
			hak_slab_release(h, ss, s);
			if (last)
				return;
			continue;
		}
		/* Asked once: another thread's remote free may land between two reads of the remote list,
		 * and a slab filed in one list under the other's name corrupts both (a refill then spun
		 * for ever on a full slab at the head of `avail`). */
		bool has_blocks = slab_has_blocks(s);
		list_push(has_blocks ? &h->avail[s->cls] : &h->full[s->cls], s,
			  has_blocks ? HAK_LIST_AVAIL : HAK_LIST_FULL);
	}
}

/* Full slabs that got remote frees since we last looked: drain them, release the empty ones and make
 * the rest available. Only walks the full lists when some other thread said it freed into one. */
static void collect_remote(struct hak_heap *h)
{
	if (!atomic_load_explicit(&h->remote_pending, memory_order_relaxed))
		return;
	atomic_store_explicit(&h->remote_pending, 0, memory_order_relaxed);
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		struct hak_slab *s = h->full[c].head;
		while (s) {
			struct hak_slab *next = s->next;
			if (atomic_load_explicit(&s->remote, memory_order_relaxed)) {
				drain_remote(s);
				list_remove(h, s);
				if (s->used == 0 && h->current[c] != s)
					hak_slab_release(h, hak_ss_of(s), s);
				else
					list_push(&h->avail[c], s, HAK_LIST_AVAIL);
			}
			s = next;
		}
	}
}

struct hak_slab *hak_slab_new(struct hak_heap *h, unsigned cls, unsigned *stage)
{
	unsigned pages = hak_class_pages[cls];
	for (;;) {
		struct slab_place at;
		if (place_slab(h, pages, &at)) {
			slab_init(at.ss, at.first, pages, cls);
			return &at.ss->slabs[at.first];
		}
		struct hak_superslab *ss = hak_ss_take_abandoned();
		if (ss) {
			*stage = HAKMEM_STAGE_SLAB;
			hak_slab_adopt_superslab(h, ss);
			struct hak_slab *s = h->avail[cls].head;
			if (s) {
				list_remove(h, s);
				return s;
			}
			continue;
		}
		ss = hak_ss_obtain(h, stage);
		if (!ss)
			return NULL;
	}
}

/* The next slab of the class to refill from, out of any list: one with blocks, else a new one. */
static struct hak_slab *next_slab(struct hak_heap *h, unsigned cls, unsigned *stage)
{
	struct hak_slab *s = h->avail[cls].head;
	if (!s) {
		collect_remote(h);
		s = h->avail[cls].head;
	}
	if (s) {
		list_remove(h, s);
		return s;
	}
	*stage = HAKMEM_STAGE_SLAB;
	return hak_slab_new(h, cls, stage);
}

/* How many blocks one refill brings: enough to amortise the slow path, no more than half the cache.
 * A thread's first refills of a class bring 4, 8, 16... blocks: a short-lived thread that mallocs a
 * block or two does not carve (and return at its exit) a hundred. */
static unsigned batch_of(struct hak_tcache *tc, unsigned cls)
{
	unsigned b = tc->limit[cls] / 2, ramp = 4u << tc->refill_ramp[cls];
	if (ramp < b) {
		tc->refill_ramp[cls]++;
		return ramp;
	}
	return b ? b : 1;
}

unsigned hak_refill(struct hak_tcache *tc, unsigned cls)
{
	struct hak_heap *h = tc->heap;
	uint64_t t0 __attribute__((unused)) = HAK_PROBE_ENABLED(REFILL) ? hak_now_ns() : 0; /* no probes: unused */
	unsigned stage = HAKMEM_STAGE_LOCAL, want = batch_of(tc, cls), n = 0;
	struct hak_slab *s = h->current[cls];
	if (s)
		n = take(tc, cls, s, want, &stage);
	while (!n) {
		if (s)
			list_push(&h->full[cls], s, HAK_LIST_FULL);
		stage = HAKMEM_STAGE_LOCAL;
		s = next_slab(h, cls, &stage);
		h->current[cls] = s;
		if (!s)
			return 0;
		n = take(tc, cls, s, want, &stage);
	}
	hak_debug(hak_check_slab(hak_ss_of(s->start), s));
	hak_debug(hak_check_cache(tc, cls));
	tc->counters.refills[cls][stage]++;
	tc->counters.refill_objects[cls] += n;
	if (HAK_PROBE_ENABLED(REFILL))
		HAK_PROBE(REFILL, hak_class_size[cls], stage, n, hak_now_ns() - t0);
	h->refills_since_flush++;
	h->objects_since_flush += n;
	tc->slow_bytes_since_flush += (uint64_t)n * hak_class_size[cls];
	return n;
}
