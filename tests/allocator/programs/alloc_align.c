/*
 * Alignment: posix_memalign, aligned_alloc and memalign for every power of two from 1 (from
 * sizeof(void *) for posix_memalign) to 1 MiB, with sizes below, at and above the alignment; valloc
 * and pvalloc page alignment. Every block is written whole with a pattern of its own while the blocks
 * of the same alignment are live together, then checked, so that overlapping blocks show. Two rounds,
 * so the second one gets recycled blocks. Prints one FAIL line and exits 1 at the first failure.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

static void verify(const void *p, size_t n, uint64_t seed, const char *what, size_t align, size_t size)
{
	size_t bad = first_bad(p, n, seed);
	if (bad != SIZE_MAX)
		FAIL("%s(alignment %zu, size %zu) at %p: byte %zu overwritten (another block overlaps it?)", what, align,
		     size, p, bad);
}

struct blk { void *p; size_t n, align, fill; const char *fn; uint64_t seed; };

#define MAXB 64
static struct blk blks[MAXB];
static int nb;

static void keep(void *p, size_t n, size_t align, size_t fill_n, const char *fn)
{
	CHECK(p, "%s(alignment %zu, size %zu) returned NULL", fn, align, n);
	CHECK(((uintptr_t)p & (align - 1)) == 0, "%s(alignment %zu, size %zu) returned %p, not aligned", fn,
	      align, n, p);
	size_t us = malloc_usable_size(p);
	CHECK(us >= fill_n, "%s(alignment %zu, size %zu): malloc_usable_size %zu < %zu", fn, align, n, us, fill_n);
	CHECK(nb < MAXB, "too many blocks");
	static uint64_t seed;
	blks[nb] = (struct blk){p, n, align, fill_n, fn, ++seed};
	fill(p, fill_n, blks[nb].seed);
	nb++;
}

static void check_and_free_all(void)
{
	for (int i = 0; i < nb; i++)
		verify(blks[i].p, blks[i].fill, blks[i].seed, blks[i].fn, blks[i].align, blks[i].n);
	for (int i = 0; i < nb; i++)
		free(blks[i].p);
	nb = 0;
}

int main(void)
{
	void *noise[16];
	for (int round = 0; round < 2; round++) {
		for (size_t align = 1; align <= (1u << 20); align <<= 1) {
			size_t sizes[] = {1, 8, align / 2, align - 1, align, align + 1, 3 * align, 1000, 70000,
					  300000};
			for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
				size_t n = sizes[s];
				if (n == 0)
					continue;
				/* a few small blocks in between, so aligned blocks are not all neighbours */
				noise[s] = malloc(opaque(24 + 40 * s));
				CHECK(noise[s], "malloc(%zu) = NULL", 24 + 40 * s);
				memset(noise[s], 0x77, 24 + 40 * s);
				if (align >= sizeof(void *)) {
					void *p = NULL;
					int r = posix_memalign(&p, opaque(align), opaque(n));
					CHECK(r == 0, "posix_memalign(&p, %zu, %zu) returned %d", align, n, r);
					keep(p, n, align, n, "posix_memalign");
				}
				keep(aligned_alloc(opaque(align), opaque(n)), n, align, n, "aligned_alloc");
				keep(memalign(opaque(align), opaque(n)), n, align, n, "memalign");
			}
			check_and_free_all();
			for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
				if (sizes[s] == 0)
					continue;
				for (size_t j = 0; j < 24 + 40 * s; j++)
					CHECK(((unsigned char *)noise[s])[j] == 0x77,
					      "a small block between aligned blocks (alignment %zu) was overwritten", align);
				free(noise[s]);
			}
		}
		/* valloc and pvalloc: page aligned; pvalloc's block covers whole pages */
		size_t page = (size_t)sysconf(_SC_PAGESIZE);
		size_t vs[] = {1, 100, page - 1, page, page + 1, 10000, 300000, (2u << 20) + 1};
		for (size_t s = 0; s < sizeof vs / sizeof vs[0]; s++) {
			size_t n = vs[s];
			keep(valloc(opaque(n)), n, page, n, "valloc");
			keep(pvalloc(opaque(n)), n, page, (n + page - 1) / page * page, "pvalloc");
		}
		check_and_free_all();
	}
	printf("alignment ok\n");
	return 0;
}
