/*
 * Threads: a heap for each thread on its first slow path, given back at thread exit (its cache
 * returned to the slabs, its counters flushed, its SuperSlabs abandoned for other threads to adopt);
 * and fork, after which the child has one thread and counts from zero.
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

__thread struct hak_tcache hak_tc __attribute__((tls_model("initial-exec")));

/* Heaps come from mappings that are never unmapped (other threads may still flag a heap of an exited
 * thread, see types.h); a heap freed at thread exit is reused by the next thread. */
static hak_lock_t heaps_lock = HAK_LOCK_INIT;
static struct hak_heap *heap_pool;
/* Every live heap, for the exit-time flush, fork, and readers of the process's memory (state_map.c):
 * it changes only inside a stats change (hakmem_totals.seq odd). */
struct hak_heap *hak_registry;
/* Bumped with every change of the registry: a reader that finds it unchanged knows the list it walked
 * before is still the list, however many flushes went by. */
uint64_t hak_registry_changes;
static pthread_key_t exit_key;

/* Bytes a thread cache may hold per class: enough to absorb bursts, bounded so idle threads do not
 * sit on much memory. */
#define CACHE_BYTES (32 * 1024)
/* A new thread's cache limits, worked out once: a program that churns threads sets them up for each. */
static uint32_t first_limit[HAK_NUM_CLASSES];

#define HEAP_CHUNK_BYTES (64 * 1024)
/* The first heaps come from .bss: a program with a few threads maps nothing for them. Heaps are cut
 * from a chunk as threads first need them (threading a whole chunk onto the pool wrote all of its
 * 64 KiB: RSS every process paid for its one or two threads). */
static char first_heap_chunk[HEAP_CHUNK_BYTES] __attribute__((aligned(64)));
static char *chunk_next = first_heap_chunk, *chunk_end = first_heap_chunk + HEAP_CHUNK_BYTES;

static struct hak_heap *heap_alloc(void)
{
	struct hak_heap *h = heap_pool;
	if (h) {
		heap_pool = h->pool_next;
		return h;
	}
	if (chunk_end - chunk_next < (ptrdiff_t)sizeof *h) {
		char *chunk = hak_os_map(HEAP_CHUNK_BYTES);
		if (!chunk)
			return NULL;
		hak_tc.counters.bytes[HAKMEM_B_METADATA] += HEAP_CHUNK_BYTES;
		chunk_next = chunk;
		chunk_end = chunk + HEAP_CHUNK_BYTES;
	}
	h = (struct hak_heap *)chunk_next;
	chunk_next += sizeof *h;
	return h;
}

static void thread_exit(void *arg);

/* The caller has initialised the library (init.c, which calls down into hak_threads_init for the limits
 * and the exit key used here): malloc's slow paths before they make a heap; a free of one of our
 * blocks comes after the malloc that made it. */
struct hak_heap *hak_heap_init(struct hak_tcache *tc)
{
	hak_check(first_limit[0]); /* set by hak_threads_init */
	hak_lock(&heaps_lock);
	struct hak_heap *h = heap_alloc();
	if (h) {
		memset(h, 0, sizeof *h);
		h->tc = tc;
		hak_stats_change_begin();
		h->reg_next = hak_registry;
		if (hak_registry)
			hak_registry->reg_prev = h;
		hak_registry = h;
		hak_registry_changes++;
		tc->flush_seq = hakmem_totals.seq;
		hak_stats_change_end();
	}
	hak_unlock(&heaps_lock);
	if (!h)
		return NULL;
	memcpy(tc->limit, first_limit, sizeof first_limit);
	memcpy(tc->room, first_limit, sizeof first_limit);
	tc->heap = h;
	/* Any non-NULL value: the destructor runs at thread exit. Not for the main thread (exit() does
	 * not run key destructors), whose counters the library destructor flushes. */
	if (!tc->exited)
		pthread_setspecific(exit_key, h);
	return h;
}

static void registry_remove(struct hak_heap *h)
{
	hak_stats_change_begin();
	if (h->reg_prev)
		h->reg_prev->reg_next = h->reg_next;
	else
		hak_registry = h->reg_next;
	if (h->reg_next)
		h->reg_next->reg_prev = h->reg_prev;
	hak_registry_changes++;
	hak_stats_change_end();
}

/* Keep the `keep` most recently freed blocks of a class in the cache, give the rest back to their
 * slabs (they were counted as freed when they entered the cache). */
void hak_cache_shrink(struct hak_tcache *tc, unsigned cls, unsigned keep)
{
	struct hak_block *b = tc->head[cls], *last = NULL;
	for (unsigned i = 0; i < keep && b; i++) {
		last = b;
		b = hak_link_get(b);
	}
	if (last)
		hak_link_set(last, NULL);
	else
		tc->head[cls] = NULL;
	/* The cache's length drops to `keep` after the blocks are counted as returned, not before: a reader
	 * of the process's memory (state_map.c) that catches this thread in between then counts blocks still
	 * in the cache as handed out less (their return counted, their leaving not yet), never more. */
	bool shrink = hak_cache_len(tc, cls) > keep;
	uint64_t div = hak_class_div[cls];
	while (b) {
		/* What free() checked when the block came in; a link overwritten since fails it. */
		struct hak_superslab *ss = hak_ss_of(b);
		uintptr_t off = (uintptr_t)b - (uintptr_t)ss;
		if (!hak_is_small(b) || hak_page_cls(ss, b) != cls || off * div >= div) {
			/* what follows it is lost, never handed out (counted as handed out: leaked) */
			if (shrink)
				tc->room[cls] = tc->limit[cls] - keep;
			shrink = false;
			hak_heap_error(HAKMEM_HEAP_CORRUPT_FREE_LIST, "free", b, hak_class_size[cls]);
			break;
		}
		struct hak_block *next = hak_link_get(b);
		hak_slab_put_local(tc->heap, ss, hak_slab_of(ss, b), b);
		/* counted block by block: a heap error above flushes, and must see what went back before */
		tc->returned[cls]++;
		hak_tc.counters.bytes[HAKMEM_B_CACHE_RETURNED] += hak_class_size[cls];
		b = next;
	}
	if (shrink) {
		__asm__ volatile("" ::: "memory"); /* the counts first (x86 keeps stores in order) */
		tc->room[cls] = tc->limit[cls] - keep;
	}
}

/* Give every cached block back to its slab (they were counted as freed when they entered the cache). */
static void return_cache(struct hak_tcache *tc)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		if (tc->head[c])
			hak_cache_shrink(tc, c, 0);
		tc->limit[c] = tc->room[c] = 0;
	}
}

void hak_heap_teardown(struct hak_tcache *tc)
{
	struct hak_heap *h = tc->heap;
	if (!h)
		return;
	/* Current slabs are no longer special: the empty ones can go. */
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		h->current[c] = NULL;
	return_cache(tc);
	while (h->superslabs) {
		struct hak_superslab *ss = h->superslabs;
		h->superslabs = ss->next;
		hak_ss_abandon(ss);
	}
	tc->heap = NULL;
	hak_stats_flush_exiting(tc);
	hak_lock(&heaps_lock);
	registry_remove(h);
	h->pool_next = heap_pool;
	heap_pool = h;
	hak_unlock(&heaps_lock);
}

static void thread_exit(void *arg)
{
	hak_tc.exited = 1;
	hak_heap_teardown(&hak_tc);
}

/* At process exit, from the library destructor: flush every thread still alive (their counters are
 * read while they may run: exact for threads that are joined or idle, as the docs say). */
void hak_threads_flush_all(void)
{
	hak_lock(&heaps_lock);
	for (struct hak_heap *h = hak_registry; h; h = h->reg_next)
		if (h->tc != &hak_tc)
			hak_stats_flush_thread(h->tc);
	hak_unlock(&heaps_lock);
	hak_stats_flush_thread(&hak_tc);
}

static void fork_prepare(void)
{
	/* The parent's own deltas go out now, so the child starts from a zeroed block. */
	if (hak_tc.heap)
		hak_stats_flush_thread(&hak_tc);
	hak_lock(&heaps_lock);
	hak_ss_fork_prepare();
	hak_large_fork_prepare();
	hak_stats_fork_prepare();
}

static void fork_parent(void)
{
	hak_stats_fork_parent();
	hak_large_fork_parent();
	hak_ss_fork_parent();
	hak_unlock(&heaps_lock);
}

/* Only the forking thread exists in the child, which inherits the parent's heap and its totals (as
 * jemalloc's and tcmalloc's statistics do). The other threads' unflushed counts go into the totals
 * (their static TLS is still here) and their SuperSlabs become adoptable. Their heaps' lists are not
 * walked: fork() may have caught a thread in the middle of changing them. So the blocks in their
 * caches are lost to the child, as those threads are, and stay in the thread_cache layer. */
static void fork_child(void)
{
	hak_sample_fork_child();
	hak_stats_fork_child();
	hak_large_fork_child();
	hak_ss_fork_child();
	hak_lock_reset(&heaps_lock);
	struct hak_heap *h = hak_registry;
	while (h) {
		struct hak_heap *next = h->reg_next;
		if (h->tc != &hak_tc) {
			hak_stats_flush_thread(h->tc);
			while (h->superslabs) {
				struct hak_superslab *ss = h->superslabs;
				h->superslabs = ss->next;
				hak_ss_abandon(ss);
			}
			registry_remove(h);
			h->pool_next = heap_pool;
			heap_pool = h;
		}
		h = next;
	}
}

void hak_threads_init(void)
{
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		unsigned limit = CACHE_BYTES / hak_class_size[c];
		first_limit[c] = limit < 2 ? 2 : limit > 256 ? 256 : limit;
	}
	pthread_key_create(&exit_key, thread_exit);
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}
