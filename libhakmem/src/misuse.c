/*
 * Heap misuse: the start-up secrets, the exact checks the slow paths make, and the report (DESIGN.md,
 * "Heap misuse", has the table of what is detected where). The fast paths make the cheap checks
 * inline (free.c): a multiply for "starts a block", a compare of the block's second word with the key
 * for "already free"; whatever they flag comes here to be confirmed and reported.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

uint64_t hak_free_key, hak_link_secret;
uint64_t hak_class_div[HAK_NUM_CLASSES + 1];

/* getrandom without blocking; early in boot, before the kernel's pool is ready, a mix of what differs
 * between processes and runs (the clock, the stack's address under ASLR, the pid). */
static uint64_t random_word(void)
{
	uint64_t v;
	if (getrandom(&v, sizeof v, GRND_NONBLOCK) == sizeof v && v)
		return v;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	v = (uint64_t)t.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uintptr_t)&t ^ (uint64_t)getpid() << 32 ^ (uint64_t)t.tv_sec;
	v ^= v >> 31;
	v *= 0xbf58476d1ce4e5b9ull;
	return (v ^ v >> 29) | 1;
}

void hak_misuse_init(void)
{
	hak_free_key = random_word();
	/* Bytes 6 and 7 of the secret become the low bytes of a stored link (user addresses have zeros
	 * there): never zero, so an off-by-one NUL always changes the link. */
	hak_link_secret = random_word() | 1ull << 48 | 1ull << 56;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++)
		hak_class_div[c] = UINT64_MAX / hak_class_size[c] + 1;
	hak_class_div[HAK_NO_CLASS] = 0;
}

static bool on_list(const struct hak_block *head, const struct hak_block *b, size_t most)
{
	for (; head && most; head = hak_link_get(head), most--)
		if (head == b)
			return true;
	return false;
}

/* Whether `b`, of a slab this thread owns, is free: in the thread's cache of its class, on its slab's
 * free list or on its remote list. Those are all the places a free block of an owned slab can be (a
 * block of another thread's slab never enters this thread's cache), and only this thread takes blocks
 * off them, so the walk is exact. */
bool hak_block_in_lists(struct hak_tcache *tc, struct hak_superslab *ss, unsigned cls, const struct hak_block *b)
{
	struct hak_slab *s = hak_block_slab(ss, b);
	if (!s)
		return false;
	return on_list(tc->head[cls], b, hak_cache_len(tc, cls)) || on_list(s->free, b, s->carved) ||
	       on_list(atomic_load_explicit(&s->remote, memory_order_acquire), b, s->carved);
}

/* Whether `b`, a carved block carrying its free mark, is free. In a slab this thread owns, its lists
 * say so exactly. In another thread's, whose lists cannot be walked from here, the mark does: it is
 * the block's own address XORed with a secret, which a correct program cannot write there (it is
 * cleared when the block is handed out, and stale bytes copied from elsewhere carry another address). */
bool hak_block_freed(struct hak_superslab *ss, unsigned cls, struct hak_block *b)
{
	if (b->key != hak_free_mark(b))
		return false;
	if (atomic_load_explicit(&ss->owner, memory_order_relaxed) != hak_self())
		return true;
	return hak_block_in_lists(&hak_tc, ss, cls, b);
}

static const char *const what[HAKMEM_NUM_HEAP_ERRORS] = {
	[HAKMEM_HEAP_DOUBLE_FREE] = "double free",
	[HAKMEM_HEAP_INVALID_POINTER] = "invalid pointer",
	[HAKMEM_HEAP_CORRUPT_FREE_LIST] = "corrupted free list",
};

static size_t put(char *line, size_t n, const char *s)
{
	while (*s && n < 254)
		line[n++] = *s++;
	return n;
}

static size_t put_number(char *line, size_t n, uint64_t v, unsigned base)
{
	char digits[24];
	unsigned k = 0;
	do
		digits[k++] = "0123456789abcdef"[v % base];
	while ((v /= base));
	if (base == 16)
		n = put(line, n, "0x");
	while (k && n < 254)
		line[n++] = digits[--k];
	return n;
}

/* One line on stderr, as glibc's own ("free(): double free detected in tcache 2"), written without
 * stdio: nothing here may allocate. Then the count, flushed at once so that hakwatch and HAKMEM_STATS
 * have it before an abort; then the probe (for a stack), then abort() unless told to go on. */
void hak_heap_error(enum hakmem_heap_error kind, const char *call, const void *p, size_t class_size)
{
	char line[256];
	size_t n = put(line, 0, "hakmem: ");
	n = put(line, n, call);
	n = put(line, n, "(): ");
	n = put(line, n, what[kind]);
	n = put(line, n, " ");
	n = put_number(line, n, (uintptr_t)p, 16);
	if (class_size) {
		n = put(line, n, " (size class ");
		n = put_number(line, n, class_size, 10);
		n = put(line, n, ")");
	}
	n = put(line, n, hak_opt.heap_errors_report ? ": leaked, going on\n" : ": aborting\n");
	(void)!write(2, line, n);
	struct hak_tcache *tc = &hak_tc;
	tc->counters.heap_errors[kind]++;
	hak_stats_flush_thread(tc);
	if (HAK_PROBE_ENABLED(HEAP_ERROR))
		HAK_PROBE(HEAP_ERROR, kind, (void *)p, class_size);
	if (!hak_opt.heap_errors_report)
		abort();
}
