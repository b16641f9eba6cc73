/*
 * realloc keeps the content: several blocks grow through every class boundary (class - 1, class,
 * class + 1) into large blocks of up to 16 MiB and shrink back the same way, interleaved so that
 * growing in place is not always possible; then a random walk of sizes; then blocks from the aligned
 * functions reallocated. Every step checks the bytes that must survive and rewrites the whole block
 * with a pattern of the step, so stale copies cannot pass. Exits 1 with one FAIL line on a failure.
 *
 *   alloc_realloc [class sizes...]
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

struct blk { unsigned char *p; size_t n; uint64_t seed; };
static uint64_t seeds = 1000;

static void step(struct blk *b, size_t n, const char *phase)
{
	unsigned char *old = b->p;
	size_t oldn = b->n;
	unsigned char *q = realloc(b->p, opaque(n));
	CHECK(q, "%s: realloc(%p of %zu bytes, %zu) returned NULL", phase, old, oldn, n);
	size_t keep = oldn < n ? oldn : n;
	size_t bad = first_bad(q, keep, b->seed);
	if (bad != SIZE_MAX)
		FAIL("%s: realloc from %zu to %zu bytes (%p -> %p) lost the content at byte %zu of %zu kept",
		     phase, oldn, n, (void *)old, (void *)q, bad, keep);
	CHECK(malloc_usable_size(q) >= n, "%s: realloc to %zu: usable size %zu", phase, n,
	      malloc_usable_size(q));
	b->p = q;
	b->n = n;
	b->seed = ++seeds;
	fill(q, n, b->seed);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

int main(int argc, char **argv)
{
	size_t classes[128];
	int nc = 0;
	for (int i = 1; i < argc && nc < 128; i++)
		classes[nc++] = strtoull(argv[i], NULL, 10);
	if (!nc) {
		size_t dflt[] = {16, 32, 48, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
				 131072, 262144};
		for (size_t i = 0; i < sizeof dflt / sizeof dflt[0]; i++)
			classes[nc++] = dflt[i];
	}
	/* the ladder: 1, then class - 1, class, class + 1 for every class, then large sizes */
	size_t ladder[512];
	int nl = 0;
	ladder[nl++] = 1;
	for (int c = 0; c < nc; c++)
		for (int d = -1; d <= 1; d++)
			if (classes[c] + d > ladder[nl - 1])
				ladder[nl++] = classes[c] + d;
	size_t large[] = {300000, 1u << 20, (2u << 20) - 1, (2u << 20) + 1, 5u << 20, 16u << 20};
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++)
		ladder[nl++] = large[i];

	enum { NB = 6 };
	struct blk b[NB];
	for (int i = 0; i < NB; i++) {
		b[i].p = malloc(1);
		CHECK(b[i].p, "malloc(1) = NULL");
		b[i].n = 1;
		b[i].seed = ++seeds;
		fill(b[i].p, 1, b[i].seed);
	}
	for (int round = 0; round < 2; round++) {
		void *spacer[NB];
		for (int k = 0; k < nl; k++) {
			for (int i = 0; i < NB; i++) {
				step(&b[i], ladder[k], "growing");
				spacer[i] = malloc(opaque(ladder[k] % 200 + 1)); /* blocks growing in place */
				CHECK(spacer[i], "malloc spacer");
			}
			for (int i = 0; i < NB; i++)
				free(spacer[i]);
		}
		for (int k = nl - 1; k >= 0; k--)
			for (int i = 0; i < NB; i++)
				step(&b[i], ladder[k], "shrinking");
		/* straight from small to large and back */
		for (int i = 0; i < NB; i++) {
			step(&b[i], 3u << 20, "small to large");
			step(&b[i], 20, "large to small");
		}
	}
	/* random walk: sizes spread over a log scale up to 1 MiB (12000 steps) */
	for (int k = 0; k < 12000; k++) {
		struct blk *x = &b[xorshift() % NB];
		unsigned bits = xorshift() % 20;
		size_t n = ((size_t)1 << bits) + xorshift() % ((size_t)1 << bits);
		step(x, n, "random walk");
	}
	for (int i = 0; i < NB; i++)
		free(b[i].p);

	/* blocks of the aligned functions can be reallocated too */
	for (size_t align = 16; align <= (1u << 16); align <<= 2) {
		struct blk a;
		a.p = memalign(opaque(align), 1000);
		CHECK(a.p, "memalign(%zu, 1000) = NULL", align);
		a.n = 1000;
		a.seed = ++seeds;
		fill(a.p, 1000, a.seed);
		step(&a, 5000, "memalign block grown");
		step(&a, 400000, "memalign block grown");
		step(&a, 100, "memalign block shrunk");
		free(a.p);
		void *pm = NULL;
		CHECK(posix_memalign(&pm, align, 70000) == 0, "posix_memalign(%zu, 70000)", align);
		a.p = pm;
		a.n = 70000;
		a.seed = ++seeds;
		fill(a.p, 70000, a.seed);
		step(&a, 50, "posix_memalign block shrunk");
		step(&a, 1u << 20, "posix_memalign block grown");
		free(a.p);
	}
	printf("realloc ok\n");
	return 0;
}
