/*
 * Allocation samples (DESIGN.md, "Allocation samples"), as tcmalloc takes them. Each thread counts
 * down the bytes to its next sample, a draw from an exponential distribution of mean
 * HAKMEM_SAMPLE_INTERVAL: every byte allocated is equally likely to be the one that crosses zero, so
 * an allocation of n bytes is sampled with probability 1 - exp(-n / mean) whatever came before it,
 * and a sample stands for n / that probability bytes (its weight). Summed by call site, the weights
 * estimate each site's bytes without bias, small and large allocations alike.
 *
 * The countdown is also the requested-bytes counter: malloc's fast path subtracts instead of adding
 * (the jump on the borrow is its one more instruction), and what was counted down goes into the
 * counters at each flush and each crossing.
 *
 * Only while something is attached to `sample_alloc` does a crossing change the block: a sampled
 * small block is handed out 16 bytes (or its alignment) into a block of a class that has room for
 * that, after a header that says so. Its address then starts no block of its class, so free() sends
 * it out of line with nothing added to its fast path, and here it fires `sample_free`. Large blocks
 * say it in their own header.
 */

#include "internal.h"

/* Right before a sampled small block: a mark (the free key, the address and a constant, so neither a
 * free block's mark nor bytes copied from elsewhere look like it), the offset of the address in its
 * block and the size asked for. */
struct sample_header {
	uint64_t mark;
	uint32_t offset;
	uint32_t size;
};
#define SAMPLE_SALT 0x73616d706c6564ULL /* "sampled" */
#define FREED_SALT 0x66726565ULL /* "free": the header of a sampled block freed (offsets above 16) */

static uint64_t sample_mark(const void *p)
{
	return hak_free_key ^ (uintptr_t)p ^ SAMPLE_SALT;
}

/* splitmix64: a thread's own stream, seeded from its cache's address and the clock. */
static uint64_t next_random(struct hak_tcache *tc)
{
	if (unlikely(!tc->sample_rng))
		tc->sample_rng = (uintptr_t)tc ^ hak_now_ns();
	uint64_t z = (tc->sample_rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The pace of samples while profiling: at most about HAKMEM_SAMPLE_MAX_RATE a second in a process
 * (a sample costs a few microseconds: a trap and a stack walk). A sample that comes sooner than 1/rate
 * after the process's previous one doubles the mean of the intervals drawn from then on, in every
 * thread; one that comes more than 8/rate later halves it back toward HAKMEM_SAMPLE_INTERVAL. A
 * program allocating GB/s gets fewer samples per byte, not a slower profile; each sample's weight uses
 * the mean its interval was drawn with, so estimates stay unbiased. */
static _Atomic uint64_t last_sample_ns;
static _Atomic unsigned mean_shift;

static void pace(void)
{
	if (!hak_opt.sample_max_rate)
		return;
	uint64_t gap = 1000000000ull / hak_opt.sample_max_rate, now = hak_now_ns();
	int64_t since = (int64_t)(now - atomic_exchange_explicit(&last_sample_ns, now, memory_order_relaxed));
	unsigned shift = atomic_load_explicit(&mean_shift, memory_order_relaxed);
	if (since < (int64_t)gap && shift < 20) /* another thread's later clock reading counts as no gap */
		atomic_store_explicit(&mean_shift, shift + 1, memory_order_relaxed);
	else if (since > (int64_t)(8 * gap) && shift)
		atomic_store_explicit(&mean_shift, shift - 1, memory_order_relaxed);
}

void hak_sample_fork_child(void)
{
	hak_tc.sample_rng = 0; /* its own stream, not its parent's intervals again */
}

/* A countdown settled (base == left) set to v. A reader of the process's memory works the requested
 * bytes out as requested + (base - left), so the store that would make that difference positive goes
 * last: caught in between, it reads fewer bytes than were asked for, never more. */
static void set_countdown(struct hak_tcache *tc, uint64_t v)
{
	bool up = v > tc->sample_left;
	if (up)
		tc->sample_left = v;
	else
		tc->sample_base = v;
	__asm__ volatile("" ::: "memory"); /* in this order (x86 keeps stores in order) */
	if (up)
		tc->sample_base = v;
	else
		tc->sample_left = v;
}

/* Bytes to the next sample: an exponential draw of the current mean; with sampling off, a countdown
 * that never runs out. */
static void next_interval(struct hak_tcache *tc)
{
	if (!hak_opt.sample_interval) {
		set_countdown(tc, UINT64_MAX >> 1);
		tc->sample_mean = 0;
		return;
	}
	tc->sample_mean = (uint64_t)hak_opt.sample_interval << atomic_load_explicit(&mean_shift, memory_order_relaxed);
	double u = ((next_random(tc) >> 11) + 1) * 0x1p-53; /* (0, 1] */
	double bytes = -hak_ln(u) * (double)tc->sample_mean;
	set_countdown(tc, bytes < 1 ? 1 : (uint64_t)bytes);
}

/* The bytes counted down go into the counters block. The countdown's base moves first: a reader caught
 * in between misses them for a moment rather than counting them twice (set_countdown). */
void hak_sample_settle(struct hak_tcache *tc)
{
	uint64_t counted = tc->sample_base - tc->sample_left;
	tc->sample_base = tc->sample_left;
	__asm__ volatile("" ::: "memory");
	tc->counters.bytes[HAKMEM_B_REQUESTED] += counted;
}

uint64_t hak_sample_due(struct hak_tcache *tc, size_t n)
{
	hak_sample_settle(tc); /* the allocation that crossed zero included */
	uint64_t mean = tc->sample_mean;
	if (!mean) { /* a thread's first allocation: its first interval starts with it */
		next_interval(tc);
		if (n < tc->sample_left) {
			set_countdown(tc, tc->sample_left - n); /* n is settled already */
			return 0;
		}
		mean = tc->sample_mean; /* it crosses that one too (0 with sampling off) */
	}
	bool sample = mean && HAK_PROBE_ENABLED(SAMPLE_ALLOC);
	if (sample)
		pace();
	next_interval(tc);
	return sample ? mean : 0;
}

/* A sample's weight: n bytes over the chance that an allocation of n bytes is sampled, with intervals
 * of that mean. */
static inline uint64_t weight_of(size_t n, uint64_t mean)
{
	return (uint64_t)((double)n / hak_one_minus_exp_neg((double)n / (double)mean) + 0.5);
}

/* Each probe has one site (hakwatch attaches one place per probe). */
static HAK_NOINLINE void fire_sample_alloc(void *p, size_t n, uint64_t mean)
{
	HAK_PROBE(SAMPLE_ALLOC, p, n, weight_of(n, mean));
}

static HAK_NOINLINE void fire_sample_free(void *p, size_t n)
{
	if (HAK_PROBE_ENABLED(SAMPLE_FREE))
		HAK_PROBE(SAMPLE_FREE, p, n);
}

void *hak_sample_small(struct hak_block *b, size_t offset, size_t n, uint64_t mean)
{
	char *p = (char *)b + offset;
	struct sample_header *h = (struct sample_header *)(p - sizeof *h);
	h->mark = sample_mark(p);
	h->offset = offset;
	h->size = n;
	fire_sample_alloc(p, n, mean);
	return p;
}

void hak_sample_large(void *p, size_t n, uint64_t mean)
{
	hak_large_set_sampled(p, n);
	fire_sample_alloc(p, n, mean);
}

/* Where the header of a sampled block at p would be; NULL where none can be (page 0 of a SuperSlab is
 * its header alone: a sampled address is at least a page in). */
static struct sample_header *header_before(const void *p)
{
	if (((uintptr_t)p & (HAK_SS_SIZE - 1)) < HAKMEM_SUPERSLAB_HEADER_BYTES + sizeof(struct sample_header))
		return NULL;
	return (struct sample_header *)((const char *)p - sizeof(struct sample_header));
}

/* `p` is the address of a sampled small block: the start of its block, else NULL. */
static struct hak_block *sampled_block(const void *p, struct sample_header **out)
{
	struct sample_header *h = header_before(p);
	if (!h || h->mark != sample_mark(p))
		return NULL;
	struct hak_block *b = (struct hak_block *)((const char *)p - h->offset);
	if (hak_ss_of(b) != hak_ss_of(p) || !hak_block_slab(hak_ss_of(b), b))
		return NULL;
	*out = h;
	return b;
}

/* Whether p was a sampled block, already freed: its header says so (offsets above 16), or (offset 16)
 * the block 16 bytes before it is a free one, whose link and mark now lie where the header was. */
static bool freed_sample(const void *p)
{
	const struct sample_header *h = header_before(p);
	if (!h)
		return false;
	if (h->mark == (sample_mark(p) ^ FREED_SALT))
		return true;
	struct hak_superslab *ss = hak_ss_of(p);
	struct hak_block *q = (struct hak_block *)h;
	return hak_block_slab(ss, q) && hak_block_freed(ss, hak_page_cls(ss, q), q);
}

/* A sampled block freed: the probe fires and its header says so (a second free is a double free); the
 * block the sample lies in goes back to the caller, free(), which frees it as it frees any block. */
enum hak_sampled hak_sample_free(void *p, struct hak_block **block)
{
	struct sample_header *h;
	struct hak_block *b = sampled_block(p, &h);
	if (!b)
		return freed_sample(p) ? HAK_SAMPLE_FREED_BEFORE : HAK_NOT_SAMPLED;
	fire_sample_free(p, h->size);
	h->mark = sample_mark(p) ^ FREED_SALT;
	*block = b;
	return HAK_SAMPLE_FREED;
}

size_t hak_sample_usable(const void *p)
{
	struct sample_header *h;
	struct hak_block *b = sampled_block(p, &h);
	if (!b)
		return 0;
	return hak_slab_of(hak_ss_of(b), b)->bsize - h->offset;
}

void hak_sample_free_large(void *p)
{
	size_t n = hak_large_sampled(p);
	if (n)
		fire_sample_free(p, n);
}
