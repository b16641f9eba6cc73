/*
 * Thread churn: thousands of short-lived threads. Each allocates blocks filled with a pattern derived
 * from (thread, index), frees a quarter itself, puts the rest into a shared pool, takes blocks out of
 * the pool (mostly allocated by threads that have exited by now), checks and frees them, and exits.
 * At the end the main thread checks and frees everything left. Prints one FAIL line and exits 1 at
 * the first corrupted block.
 *
 *   alloc_churn THREADS CONCURRENT BLOCKS_PER_THREAD
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

struct item { unsigned char *p; size_t n; uint32_t thread, index; };

static struct item *pool;
static size_t npool, cappool;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int blocks;
static long freed_by_others;

static uint64_t pat(uint32_t t, uint32_t i)
{
	uint64_t x = ((uint64_t)t << 32) ^ i ^ 0x2545F4914F6CDD1Dull;
	x ^= x >> 31;
	x *= 0x9E3779B97F4A7C15ull;
	x ^= x >> 29;
	return x | 1;
}

static void check_free(struct item *it, const char *who)
{
	size_t bad = first_bad(it->p, it->n, pat(it->thread, it->index));
	if (bad != SIZE_MAX)
		FAIL("%s: block %u of thread %u (%zu bytes at %p) corrupted at byte %zu", who, it->index, it->thread,
		     it->n, (void *)it->p, bad);
	memset(it->p, 0xDD, it->n);
	free(it->p);
}

static size_t size_for(uint32_t t, uint32_t i)
{
	uint64_t h = pat(t, i) >> 7;
	if (h % 211 == 0)
		return 262145 + h % 200000;	/* large */
	if (h % 9 == 0)
		return 600 + h % 20000;
	return 1 + h % 512;
}

static void *worker(void *arg)
{
	uint32_t t = (uint32_t)(uintptr_t)arg;
	struct item *mine = malloc(blocks * sizeof *mine);
	CHECK(mine, "malloc of the item array failed");
	for (int i = 0; i < blocks; i++) {
		mine[i] = (struct item){NULL, size_for(t, i), t, (uint32_t)i};
		mine[i].p = malloc(mine[i].n);
		CHECK(mine[i].p, "thread %u: malloc(%zu) = NULL", t, mine[i].n);
		fill(mine[i].p, mine[i].n, pat(t, i));
	}
	/* a quarter freed by the thread itself */
	for (int i = 0; i < blocks; i += 4)
		check_free(&mine[i], "own block");
	/* take half as many blocks as it made from the pool, give the rest of its own */
	struct item took[256];
	int ntook = 0;
	pthread_mutex_lock(&mu);
	while (ntook < blocks / 2 && ntook < 256 && npool > 0)
		took[ntook++] = pool[--npool];
	for (int i = 0; i < blocks; i++) {
		if (i % 4 == 0)
			continue;
		if (npool == cappool) {
			cappool = cappool ? cappool * 2 : 4096;
			pool = realloc(pool, cappool * sizeof *pool);
			CHECK(pool, "realloc of the pool failed");
		}
		pool[npool++] = mine[i];
	}
	freed_by_others += ntook;
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < ntook; i++)
		check_free(&took[i], "block of another thread");
	free(mine);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s THREADS CONCURRENT BLOCKS_PER_THREAD\n", argv[0]);
		return 2;
	}
	int nthreads = atoi(argv[1]), conc = atoi(argv[2]);
	blocks = atoi(argv[3]);
	CHECK(nthreads > 0 && conc > 0 && conc <= 64 && blocks >= 4 && blocks <= 512, "bad arguments");
	pthread_t th[64];
	int started = 0;
	while (started < nthreads) {
		int k = 0;
		for (; k < conc && started < nthreads; k++, started++) {
			int r = pthread_create(&th[k], NULL, worker, (void *)(uintptr_t)started);
			CHECK(r == 0, "pthread_create #%d failed: %s", started, strerror(r));
		}
		for (int j = 0; j < k; j++)
			pthread_join(th[j], NULL);
	}
	size_t left = npool;
	for (size_t i = 0; i < npool; i++)
		check_free(&pool[i], "block left at the end, freed by main");
	free(pool);
	CHECK(freed_by_others > 0, "no block changed threads");
	printf("churn ok: %d threads, %ld blocks freed by other threads, %zu by main at the end\n", nthreads,
	       freed_by_others, left);
	return 0;
}
