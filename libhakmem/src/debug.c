/*
 * The debug build's invariant checks (HAKMEM_DEBUG; hak_check() in internal.h). Each walks what the
 * release build trusts: a slab's counts against its lists, a thread cache's list against its length,
 * the memory layers against the mapped bytes. They cost a walk per refill and per slab event, so the
 * debug build is for tests and for hunting a bug, not for production.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

void hak_check_failed(const char *what, const char *file, int line)
{
	char num[16];
	int k = sizeof num;
	num[--k] = 0;
	do
		num[--k] = '0' + line % 10;
	while ((line /= 10) && k);
	const char *parts[] = {"hakmem: internal check failed: ", what, " (", file, ":", num + k, ")\n"};
	for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++)
		(void)!write(2, parts[i], strlen(parts[i]));
	abort();
}

/* A block in a thread cache: a carved block of the class's slab, marked free. */
void hak_check_cached_block(const struct hak_block *b, unsigned cls)
{
	hak_check(hak_is_small(b));
	struct hak_slab *s = hak_block_slab(hak_ss_of(b), b);
	hak_check(s != NULL);
	hak_check(s->cls == cls);
	hak_check(b->key == hak_free_mark(b));
}

static size_t list_length(const struct hak_slab *s, const struct hak_block *b)
{
	size_t n = 0;
	for (; b; b = hak_link_get(b), n++) {
		hak_check(n < s->capacity);
		hak_check(hak_block_slab(hak_ss_of(b), b) == s);
		hak_check(b->key == hak_free_mark(b));
	}
	return n;
}

/* A slab owned by this thread: its counts agree with each other, with its lists and with its
 * SuperSlab's page maps. (Other threads only push onto the remote list meanwhile.) */
void hak_check_slab(const struct hak_superslab *ss, const struct hak_slab *s)
{
	hak_check(s->npages && s->carved <= s->capacity && s->used <= s->carved);
	unsigned first = s - ss->slabs;
	hak_check(first > 0 && first + s->npages <= HAK_SS_PAGES);
	for (unsigned p = first; p < first + s->npages; p++)
		hak_check(ss->page_slab[p] == first && ss->page_cls[p] == s->cls && !(ss->free_pages >> p & 1));
	hak_check((uintptr_t)(s->start - (const char *)ss) % s->bsize == 0);
	/* Every carved block is out (used: with the program, in a cache or on the remote list) or on the
	 * free list; fewer only after a corrupted list was cut (HAKMEM_HEAP_ERRORS=report). */
	size_t local = list_length(s, s->free);
	size_t remote = list_length(s, atomic_load_explicit(&s->remote, memory_order_acquire));
	hak_check(local + s->used <= s->carved && remote <= s->used);
	hak_check(ss->used_pages == (uint32_t)__builtin_popcount(~ss->free_pages & ~1u));
}

/* A thread cache's class: its list is as long as its length says, of free blocks of the class. */
void hak_check_cache(const struct hak_tcache *tc, unsigned cls)
{
	uint32_t len = hak_cache_len(tc, cls), n = 0;
	hak_check(tc->room[cls] <= tc->limit[cls]);
	for (const struct hak_block *b = tc->head[cls]; b; b = hak_link_get(b), n++) {
		hak_check(n < len);
		hak_check_cached_block(b, cls);
	}
	hak_check(n == len);
}

/* The process totals: the memory layers add up to the mapped bytes (DESIGN.md, "The memory layers"). */
void hak_check_totals(const struct hakmem_counters *t)
{
	int64_t layers[HAKMEM_NUM_LAYERS], sum = 0;
	hak_layers(t, layers);
	for (unsigned i = 0; i < HAKMEM_NUM_LAYERS; i++)
		sum += layers[i];
	hak_check(sum == hak_mapped_bytes(t));
}
