/*
 * Big buffers of changing sizes, the shape of mimalloc-bench's malloc-large: SLOTS live blocks of
 * MIN-MAX MiB; ITER times a random slot's block is replaced by a new one of a random size, zeroed
 * whole (as C++'s make_unique<char[]> does), the new one allocated before the old is freed. With
 * THREADS > 1 the slots are shared out and every thread replaces ITER blocks of its own.
 *   large_blocks ITER SLOTS MIN_MIB MAX_MIB [THREADS]      prints: ops_per_sec X
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timed_threads.h"

/* Called through a volatile pointer: GCC would otherwise turn malloc + memset(0) into calloc, which
 * some allocators answer with untouched fresh pages, and the pages would never be written. */
static void *(*volatile zero)(void *, int, size_t) = memset;

static long iters;
static int slots_per_thread;
static size_t min_bytes, max_bytes;

static void *run(void *arg)
{
	unsigned long seed = 42 + (unsigned long)arg;
	char **slot = calloc(slots_per_thread, sizeof *slot);
	for (long i = 0; i < iters; i++) {
		seed = seed * 6364136223846793005ul + 1442695040888963407ul;
		int k = (int)((seed >> 33) % slots_per_thread);
		seed = seed * 6364136223846793005ul + 1442695040888963407ul;
		size_t bytes = min_bytes + (seed >> 33) % (max_bytes - min_bytes + 1);
		char *p = malloc(bytes);
		if (!p) {
			fprintf(stderr, "large_blocks: malloc(%zu) failed\n", bytes);
			exit(1);
		}
		zero(p, 0, bytes);
		free(slot[k]);
		slot[k] = p;
	}
	for (int k = 0; k < slots_per_thread; k++)
		free(slot[k]);
	free(slot);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: large_blocks ITER SLOTS MIN_MIB MAX_MIB [THREADS]\n");
		return 2;
	}
	iters = atol(argv[1]);
	int slots = atoi(argv[2]);
	min_bytes = (size_t)atol(argv[3]) << 20, max_bytes = (size_t)atol(argv[4]) << 20;
	int threads = argc > 5 ? atoi(argv[5]) : 1;
	if (iters < 1 || threads < 1 || threads > 64 || slots < threads || max_bytes < min_bytes) {
		fprintf(stderr, "large_blocks: bad arguments\n");
		return 2;
	}
	slots_per_thread = slots / threads;
	printf("ops_per_sec %.0f\n", iters * threads / timed_threads(threads, run));
	return 0;
}
