/*
 * The small inline helpers the fast paths are made of, and the functions the files share.
 */
#ifndef HAKMEM_INTERNAL_H
#define HAKMEM_INTERNAL_H

#include <errno.h>
#include <sched.h>
#include <stdbool.h>

#include "probes.h"
#include "types.h"

#define HAK_API __attribute__((visibility("default")))
/* On declarations too: the fast paths then load a global with one instruction, not through the GOT. */
#define HAK_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define HAK_NOINLINE __attribute__((noinline))

#define HAKMEM_VERSION "0.1.0"
#define HAK_CACHE_MAX_BYTES (256 * 1024) /* a thread cache's class grows to at most this */
/* Mean bytes between allocation samples by default: tcmalloc's 2 MiB. A GB/s of allocation then makes
 * 500 samples a second, 0.3% of a core with their stacks taken (bench/RESULTS.md), and a minute of a
 * busy service thousands: enough for a profile's top sites. */
#define HAK_SAMPLE_INTERVAL 2097152
/* ... but at most about this many a second (sample.c's pace): a program allocating GB/s gets a wider
 * interval, not a slower profile. */
#define HAK_SAMPLE_MAX_RATE 500
#define HAK_XSTR(x) #x
#define HAK_STR(x) HAK_XSTR(x)

extern __thread struct hak_tcache hak_tc;

/* The thread cache as an address relative to %fs: its offset from the thread pointer, read from the
 * GOT as the compiler does for &hak_tc. Through it a fast path addresses the cache with %fs-prefixed
 * operands, inline asm included, with no need to add the thread pointer first. */
static inline struct hak_tcache __seg_fs *hak_tc_fs(void)
{
	uintptr_t off;
	__asm__("movq hak_tc@gottpoff(%%rip), %0" : "=r"(off));
	return (struct hak_tcache __seg_fs *)off;
}

/* This thread's thread pointer: unique among live threads, what SuperSlab owners are named by. */
static inline uintptr_t hak_self(void)
{
	return (uintptr_t)__builtin_thread_pointer();
}

/* Blocks in the class's cache. */
static inline uint32_t hak_cache_len(const struct hak_tcache *tc, unsigned cls)
{
	return tc->limit[cls] - tc->room[cls];
}

/* ---- size classes (classes.c): two tables make the lookup O(1) for every small size */
extern HAK_HIDDEN const uint32_t hak_class_size[HAK_NUM_CLASSES];
extern HAK_HIDDEN uint8_t hak_class_small[1024 / 16 + 1];	/* (n + 15) / 16 -> class, n <= 1024 */
extern HAK_HIDDEN uint8_t hak_class_medium[HAK_MAX_SMALL / 256];	/* (n - 1) / 256 -> class, n > 1024 */
extern HAK_HIDDEN uint8_t hak_class_pages[HAK_NUM_CLASSES];	/* pages a slab of the class spans */
void hak_classes_init(void);

static inline unsigned hak_class_of(size_t n)
{
	return n <= 1024 ? hak_class_small[(n + 15) >> 4] : hak_class_medium[(n - 1) >> 8];
}

/* Lemire's divisibility test: n % d == 0 exactly when n * c < c (mod 2^64), c = ceil(2^64 / d), for
 * n and d below 2^32. One entry per class and a last one of 0, which no offset passes: the class of
 * page 0 and of free pages (HAK_NO_CLASS). */
#define HAK_NO_CLASS HAK_NUM_CLASSES
extern HAK_HIDDEN uint64_t hak_class_div[HAK_NUM_CLASSES + 1];

/* ---- the SuperSlab map (superslab.c): one bit per 2 MiB of the 47-bit address space, set while
 * a SuperSlab lives there. It tells "our small block" from anything else with one load, no syscall
 * and no fault: the bitmap is zero-filled .bss the kernel maps on first touch. (A byte map saves free()
 * three instructions, but its 64 MiB of .bss would count whole against a strict overcommit limit,
 * vm.overcommit_memory=2, in every process; the bitmap's 8 MiB do too.) */
#define HAK_SEGMAP_WORDS ((size_t)1 << (47 - HAK_SS_SHIFT - 6))
extern HAK_HIDDEN _Atomic uint64_t hak_segmap[HAK_SEGMAP_WORDS];

static inline struct hak_superslab *hak_ss_of(const void *p)
{
	return (struct hak_superslab *)((uintptr_t)p & ~(HAK_SS_SIZE - 1));
}

static inline bool hak_is_small(const void *p)
{
	uintptr_t i = (uintptr_t)p >> HAK_SS_SHIFT;
	if (unlikely(i >= HAK_SEGMAP_WORDS * 64))
		return false;
	return atomic_load_explicit(&hak_segmap[i >> 6], memory_order_relaxed) >> (i & 63) & 1;
}

static inline unsigned hak_page_cls(const struct hak_superslab *ss, const void *p)
{
	return ss->page_cls[((uintptr_t)p - (uintptr_t)ss) >> HAK_PAGE_SHIFT];
}

static inline struct hak_slab *hak_slab_of(struct hak_superslab *ss, const void *p)
{
	size_t page = ((uintptr_t)p - (uintptr_t)ss) >> HAK_PAGE_SHIFT, first = ss->page_slab[page];
	return &ss->slabs[first];
}

/* ---- heap misuse (misuse.c, DESIGN.md "Heap misuse"). Two random words drawn at start-up: the key a
 * free block carries in its second word, and the secret its link is encoded with. */
extern HAK_HIDDEN uint64_t hak_free_key, hak_link_secret;

/* A link is stored rotated, XORed with the secret and with its own slot's address: overwritten whole
 * without the secret it decodes to noise, and a partial overwrite of its low bytes (an off-by-one)
 * lands in the top bits of the decoded pointer, which is then no user address at all (the next pop
 * faults) rather than a block's neighbour. */
#define HAK_LINK_ROTATE 16
static inline struct hak_block *hak_link_get(const struct hak_block *slot)
{
	uintptr_t v = (slot->link >> HAK_LINK_ROTATE | slot->link << (64 - HAK_LINK_ROTATE)) ^
		      hak_link_secret ^ (uintptr_t)slot;
	return (struct hak_block *)v;
}

static inline uintptr_t hak_link_encode(const struct hak_block *slot, const struct hak_block *next)
{
	uintptr_t v = (uintptr_t)next ^ hak_link_secret ^ (uintptr_t)slot;
	return v << HAK_LINK_ROTATE | v >> (64 - HAK_LINK_ROTATE);
}

static inline void hak_link_set(struct hak_block *slot, const struct hak_block *next)
{
	slot->link = hak_link_encode(slot, next);
}

/* The mark of a free block: the key XORed with the block's address, so that stale bytes a program
 * copies into a live block (uninitialised memory, padding) never look like a free block's mark. */
static inline uint64_t hak_free_mark(const struct hak_block *b)
{
	return hak_free_key ^ (uintptr_t)b;
}

void hak_misuse_init(void);
bool hak_block_freed(struct hak_superslab *ss, unsigned cls, struct hak_block *b);
bool hak_block_in_lists(struct hak_tcache *tc, struct hak_superslab *ss, unsigned cls, const struct hak_block *b);
void hak_heap_error(enum hakmem_heap_error kind, const char *call, const void *p, size_t class_size);

/* Whether `p`, known to be at a multiple of the block size, lies in the carved part of slab `s` (an
 * address below the start wraps to a huge offset). */
static inline bool hak_in_carved_part(const struct hak_slab *s, const void *p)
{
	return (size_t)((const char *)p - s->start) < (size_t)s->carved * s->bsize;
}

/* The carved blocks of a slab, as checks of "`p` starts one" need them. A walk of a slab's list reads
 * them once: as far as the compiler knows, the walk's stores to blocks could change the slab. */
struct hak_carved {
	const char *start;
	size_t bytes;
	uint64_t div;	/* hak_class_div of the slab's class */
};

static inline struct hak_carved hak_carved_of(const struct hak_slab *s)
{
	return (struct hak_carved){s->start, (size_t)s->carved * s->bsize, hak_class_div[s->cls]};
}

/* In the carved part, at a multiple of the block size (no division: the offset is below 2 MiB, so
 * Lemire's test holds; an address below the start wraps to a huge offset). */
static inline bool hak_starts_carved(const struct hak_carved *k, const void *p)
{
	size_t in = (const char *)p - k->start;
	return in < k->bytes && in * k->div < k->div;
}

/* Whether `p` starts a block of slab `s` handed out at least once. */
static inline bool hak_in_carved(const struct hak_slab *s, const void *p)
{
	struct hak_carved k = hak_carved_of(s);
	return hak_starts_carved(&k, p);
}

/* The slab of which `p` starts a block handed out at least once, or NULL. Also right for a SuperSlab
 * another thread owns: a slab's geometry does not change while any of its blocks is out, and `carved`
 * only grows meanwhile (a block passed to this thread was carved before it was passed). */
static inline struct hak_slab *hak_block_slab(struct hak_superslab *ss, const void *p)
{
	if (hak_page_cls(ss, p) == HAK_NO_CLASS)
		return NULL;
	struct hak_slab *s = hak_slab_of(ss, p);
	return s->npages && hak_in_carved(s, p) ? s : NULL;
}

/* The same for a pointer free() has checked to be at a multiple of its page's class size, in a page
 * of a slab: only the carved bound is left to check. */
static inline struct hak_slab *hak_carved_slab(struct hak_superslab *ss, const void *p)
{
	struct hak_slab *s = hak_slab_of(ss, p);
	return hak_in_carved_part(s, p) ? s : NULL;
}

/* ---- the debug build (`make debug`, HAKMEM_DEBUG): internal invariants checked as the allocator runs
 * (debug.c), as mimalloc's debug builds do. In the release build HAK_DEBUG is 0 and every check
 * compiles away; both builds compile every line of them. */
#ifdef HAKMEM_DEBUG
#define HAK_DEBUG 1
#else
#define HAK_DEBUG 0
#endif
#define hak_check(cond) ((void)(!HAK_DEBUG || (cond) || (hak_check_failed(#cond, __FILE__, __LINE__), 0)))
#define hak_debug(walk) do { if (HAK_DEBUG) walk; } while (0) /* one of the walks below */
__attribute__((noreturn)) void hak_check_failed(const char *what, const char *file, int line);
void hak_check_cached_block(const struct hak_block *b, unsigned cls);
void hak_check_slab(const struct hak_superslab *ss, const struct hak_slab *s);
void hak_check_cache(const struct hak_tcache *tc, unsigned cls);
void hak_check_totals(const struct hakmem_counters *t);

/* ---- locks: a test-and-set spinlock that yields. Held only around rare, short global operations
 * (LRU, abandoned list, registry, totals, large cache); re-initialised by zeroing in a forked child. */
typedef struct {
	atomic_flag f;
} hak_lock_t;
#define HAK_LOCK_INIT { ATOMIC_FLAG_INIT }

static inline void hak_lock(hak_lock_t *l)
{
	while (atomic_flag_test_and_set_explicit(&l->f, memory_order_acquire))
		sched_yield();
}

static inline void hak_unlock(hak_lock_t *l)
{
	atomic_flag_clear_explicit(&l->f, memory_order_release);
}

static inline void hak_lock_reset(hak_lock_t *l)
{
	atomic_flag_clear_explicit(&l->f, memory_order_relaxed);
}

/* ---- alloc.c / free.c */
void *hak_malloc(size_t n);
void *hak_new(size_t n);		/* operator new: malloc, or C++'s failure behaviour (cxx.c) */
void *hak_new_failed(size_t n);
void *hak_aligned(size_t align, size_t n);
void *hak_realloc(void *p, size_t n);
void *hak_calloc(size_t count, size_t size);
void hak_free(void *p);
size_t hak_usable_size(const void *p);

/* ---- slab.c: refills and returning blocks to slabs (owner only) */
unsigned hak_refill(struct hak_tcache *tc, unsigned cls);
void hak_slab_put_local(struct hak_heap *h, struct hak_superslab *ss, struct hak_slab *s, struct hak_block *b);
void hak_slab_adopt_superslab(struct hak_heap *h, struct hak_superslab *ss);
void hak_slab_release(struct hak_heap *h, struct hak_superslab *ss, struct hak_slab *s);
struct hak_slab *hak_slab_new(struct hak_heap *h, unsigned cls, unsigned *stage);

/* ---- superslab.c: where SuperSlabs come from and go to */
struct hak_superslab *hak_ss_obtain(struct hak_heap *h, unsigned *stage);
void hak_ss_retire(struct hak_superslab *ss);
void hak_ss_touch(struct hak_superslab *ss, const char *from, const char *to);
size_t hak_ss_trim(void);
void hak_ss_abandon(struct hak_superslab *ss);
struct hak_superslab *hak_ss_take_abandoned(void);
void hak_ss_fork_prepare(void);
void hak_ss_fork_parent(void);
void hak_ss_fork_child(void);

/* ---- large.c: blocks above the largest class, each its own mapping */
void *hak_large_alloc(size_t n, size_t align, bool *fresh);
enum hak_large_state { HAK_LARGE_LIVE, HAK_LARGE_FREED, HAK_LARGE_NOT_OURS };
enum hak_large_state hak_large_state(const void *p);
size_t hak_large_trim(void);
void hak_large_free(void *p);
size_t hak_large_usable(const void *p);
void hak_large_set_sampled(void *p, size_t n);
size_t hak_large_sampled(const void *p);
void hak_large_fork_prepare(void);
void hak_large_fork_parent(void);
void hak_large_fork_child(void);

/* ---- thread.c: heaps, thread exit, fork */
struct hak_heap *hak_heap_init(struct hak_tcache *tc);
void hak_heap_teardown(struct hak_tcache *tc);
void hak_cache_shrink(struct hak_tcache *tc, unsigned cls, unsigned keep);
void hak_threads_init(void);
void hak_threads_flush_all(void);	/* at process exit: every live thread's counters */

/* ---- os.c: the only place that calls mmap/munmap/madvise (counted, per thread) */
void *hak_os_map(size_t bytes);
void *hak_os_map_aligned(size_t bytes, size_t align);
void hak_os_unmap(void *p, size_t bytes);
void hak_os_purge(void *p, size_t bytes);
void hak_os_want_huge_pages(void *p, size_t bytes);
uint64_t hak_now_ns(void);

/* ---- options.c */
struct hak_options {
	unsigned ss_lru_size;		/* HAKMEM_SS_LRU_SIZE: empty SuperSlabs kept mapped */
	uint64_t ss_purge_delay_ns;	/* how long an LRU entry or a free large run idles before it goes back (HAKMEM_PURGE_DELAY_MS) */
	char stats_path[4096];		/* HAKMEM_STATS, empty when unset */
	unsigned thp;			/* HAKMEM_THP=1: ask for transparent huge pages for SuperSlabs */
	unsigned heap_errors_report;	/* HAKMEM_HEAP_ERRORS=report: report misuse and go on (default abort) */
	unsigned sample_interval;	/* HAKMEM_SAMPLE_INTERVAL: mean bytes between allocation samples, 0 for none */
	unsigned sample_max_rate;	/* HAKMEM_SAMPLE_MAX_RATE: samples a second a process takes at most, 0 for no bound */
};
extern HAK_HIDDEN struct hak_options hak_opt;
void hak_options_init(void);

/* ---- sample.c: allocation samples (DESIGN.md, "Allocation samples") */
void hak_sample_settle(struct hak_tcache *tc);
uint64_t hak_sample_due(struct hak_tcache *tc, size_t n);
void *hak_sample_small(struct hak_block *b, size_t offset, size_t n, uint64_t mean);
void hak_sample_large(void *p, size_t n, uint64_t mean);
enum hak_sampled { HAK_NOT_SAMPLED, HAK_SAMPLE_FREED, HAK_SAMPLE_FREED_BEFORE };
/* HAK_SAMPLE_FREED: `*block` is the block the sample lies in, for the caller to free. */
enum hak_sampled hak_sample_free(void *p, struct hak_block **block);
void hak_sample_fork_child(void);
void hak_sample_free_large(void *p);
size_t hak_sample_usable(const void *p);

/* ---- fastmath.c: what sampling needs of libm */
double hak_ln(double x);
double hak_one_minus_exp_neg(double y);

/* ---- stats.c: counters, the flush probe */
void hak_stats_flush_thread(struct hak_tcache *tc);
/* A change a reader of the process's memory must not see half of (state_map.c): under the stats lock,
 * with hakmem_totals.seq odd. */
void hak_stats_change_begin(void);
void hak_stats_change_end(void);
extern struct hakmem_totals hakmem_totals;			/* stats.c: everything flushed */
extern HAK_HIDDEN struct hakmem_counters hak_exited;	/* stats.c: exited threads' counts not flushed yet */
extern HAK_HIDDEN struct hak_heap *hak_registry;	/* thread.c: every live heap */
extern HAK_HIDDEN uint64_t hak_registry_changes;	/* thread.c: bumped as a heap joins or leaves it */
void hak_stats_flush_exiting(struct hak_tcache *tc);
void hak_stats_flush_soon(void);
void hak_stats_maybe_flush(struct hak_tcache *tc);
/* Bytes moved on slow paths (refills, frees that miss the thread cache, large blocks): bounds what a
 * thread's unflushed counts leave out of the gauges (with its cache's contents), so a process watched
 * late, then idle, shows its memory to within this per thread. */
#define HAK_FLUSH_EVERY_SLOW_BYTES (4u << 20)

/* After a slow free: frees move only the slow bytes (refills check their own counts as they happen),
 * so the check is inline, and a remote free makes no call. */
static inline void hak_stats_maybe_flush_after_free(struct hak_tcache *tc)
{
	if (unlikely(tc->slow_bytes_since_flush >= HAK_FLUSH_EVERY_SLOW_BYTES))
		hak_stats_maybe_flush(tc);
}
void hak_stats_ss_event(enum hakmem_ss_event ev, void *addr, size_t bytes);
void hak_stats_large_event(enum hakmem_large_event ev, void *addr, size_t bytes);
void hak_stats_snapshot(struct hakmem_counters *out);	/* the totals, whole (for HAKMEM_STATS) */
extern const char hakmem_version[];
void hak_stats_fork_prepare(void);
void hak_stats_fork_parent(void);
void hak_stats_fork_child(void);

/* ---- stats_file.c: HAKMEM_STATS, written at exit */
void hak_stats_write_file(void);

/* ---- layers.c: the gauges, from the totals (DESIGN.md, "The memory layers") */
int64_t hak_live_bytes(const struct hakmem_counters *t, unsigned slot);
void hak_superslabs(const struct hakmem_counters *t, int64_t *live, int64_t *cached, int64_t *purged);
void hak_layers(const struct hakmem_counters *t, int64_t out[HAKMEM_NUM_LAYERS]);
int64_t hak_mapped_bytes(const struct hakmem_counters *t);
int64_t hak_resident_estimate(const struct hakmem_counters *t);

/* ---- init.c */
void hak_ensure_init(void);

#endif
