/*
 * malloc_usable_size(p) >= the size asked for, for every size up to 4096, every class boundary
 * (size class - 1, class, class + 1) up to the largest class, and large sizes; and the whole usable
 * size can be written: blocks are written to their last usable byte with a pattern of their own while
 * many are live, then checked, so a usable size that reaches into a neighbour shows as corruption.
 * Also for calloc, realloc and the aligned functions. Prints one FAIL line and exits 1 on a failure.
 *
 *   alloc_usable [class sizes...]   (the class sizes come from probes/hakmem_counters.h; without them
 *                                     a built-in list of boundaries is used)
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

struct blk { void *p; size_t asked, usable; const char *how; uint64_t seed; };

static struct blk *blks;
static size_t nb, cap;
static uint64_t seeds;

static void take(void *p, size_t asked, const char *how)
{
	CHECK(p, "%s(%zu) returned NULL", how, asked);
	size_t us = malloc_usable_size(p);
	CHECK(us >= asked, "%s(%zu): malloc_usable_size = %zu, less than asked", how, asked, us);
	CHECK(us < asked + (asked >> 1) + (1u << 20) + 4096,
	      "%s(%zu): malloc_usable_size = %zu, implausibly large", how, asked, us);
	if (nb == cap) {
		cap = cap ? 2 * cap : 1024;
		blks = realloc(blks, cap * sizeof *blks);
		CHECK(blks, "realloc of the block table failed");
	}
	blks[nb] = (struct blk){p, asked, us, how, ++seeds};
	fill(p, us, blks[nb].seed);
	nb++;
}

/* Check every live block, free them all. Keeps live memory bounded. */
static void flush(void)
{
	for (size_t i = 0; i < nb; i++) {
		size_t bad = first_bad(blks[i].p, blks[i].usable, blks[i].seed);
		if (bad != SIZE_MAX)
			FAIL("%s(%zu) at %p (usable %zu, written whole): byte %zu was overwritten by another block",
			     blks[i].how, blks[i].asked, blks[i].p, blks[i].usable, bad);
	}
	for (size_t i = 0; i < nb; i++)
		free(blks[i].p);
	nb = 0;
}

static size_t live_bytes(void)
{
	size_t t = 0;
	for (size_t i = 0; i < nb; i++)
		t += blks[i].usable;
	return t;
}

static void one_size(size_t n)
{
	take(malloc(opaque(n)), n, "malloc");
	take(calloc(1, opaque(n)), n, "calloc");
	if (n > 0) {	/* realloc(p, 0) frees p (glibc) */
		void *r = malloc(opaque(n / 2 + 1));
		CHECK(r, "malloc(%zu) = NULL", n / 2 + 1);
		memset(r, 0x3C, n / 2 + 1);
		r = realloc(r, opaque(n));
		take(r, n, "realloc");
	}
	take(aligned_alloc(64, opaque(n)), n, "aligned_alloc(64)");
	if (live_bytes() > (64u << 20))
		flush();
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
	for (size_t n = 0; n <= 4096; n++)
		one_size(n);
	flush();
	for (int c = 0; c < nc; c++) {
		for (size_t d = 0; d < 3; d++) {
			size_t n = classes[c] - 1 + d;
			for (int rep = 0; rep < 8; rep++)
				one_size(n);
		}
		flush();
	}
	/* large sizes, around page and 2 MiB boundaries */
	size_t large[] = {262145, 300000, 1u << 19, (1u << 20) - 1, 1u << 20, (1u << 20) + 1, (2u << 20) - 4096,
			  (2u << 20) - 1, 2u << 20, (2u << 20) + 1, (2u << 20) + 4097, 3000000, 8u << 20};
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
		for (int rep = 0; rep < 2; rep++)
			one_size(large[i]);
		flush();
	}
	printf("usable size ok\n");
	return 0;
}
