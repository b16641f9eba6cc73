/*
 * Cross-thread free: producer threads allocate blocks (small classes, mid classes, now and then a
 * large block), fill them with a pattern derived from (producer, index), and pass them through a
 * bounded queue to consumer threads, which check the pattern and free them. Several rounds with new
 * threads. Prints one FAIL line and exits 1 at the first corrupted block.
 *
 *   alloc_xthread PRODUCERS CONSUMERS ROUNDS BLOCKS_PER_PRODUCER
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

#define QCAP 1024
static struct item q[QCAP];
static size_t qhead, qtail, qcount;
static int producers_left;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static long nblocks;
static int round_no;

static uint64_t pat(uint32_t t, uint32_t i, int round)
{
	uint64_t x = ((uint64_t)t << 40) ^ ((uint64_t)i << 8) ^ (uint64_t)round ^ 0x5bd1e9955bd1e995ull;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x | 1;
}

static void check(const struct item *it)
{
	uint64_t seed = pat(it->thread, it->index, round_no);
	size_t bad = first_bad(it->p, it->n, seed);
	if (bad != SIZE_MAX)
		FAIL("round %d: block %u of producer %u (%zu bytes at %p) corrupted at byte %zu: 0x%02x, expected 0x%02x",
		     round_no, it->index, it->thread, it->n, (void *)it->p, bad, it->p[bad], pattern_byte(seed, bad));
}

static size_t size_for(uint32_t t, uint32_t i)
{
	uint64_t h = pat(t, i, 12345);
	if (h % 997 == 0)
		return 300000 + h % 700000;		/* large */
	if (h % 13 == 0)
		return 1024 + h % 64000;		/* mid classes */
	return 1 + h % 600;				/* small classes */
}

static void *producer(void *arg)
{
	uint32_t t = (uint32_t)(uintptr_t)arg;
	for (uint32_t i = 0; i < (uint32_t)nblocks; i++) {
		struct item it = {NULL, size_for(t, i), t, i};
		it.p = (i % 5 == 0) ? calloc(1, it.n) : malloc(it.n);
		CHECK(it.p, "producer %u: allocating %zu bytes failed", t, it.n);
		fill(it.p, it.n, pat(t, i, round_no));
		pthread_mutex_lock(&mu);
		while (qcount == QCAP)
			pthread_cond_wait(&not_full, &mu);
		q[qtail] = it;
		qtail = (qtail + 1) % QCAP;
		qcount++;
		pthread_cond_signal(&not_empty);
		pthread_mutex_unlock(&mu);
		/* some local churn of the producer's own, freed by itself */
		if (i % 7 == 0) {
			void *tmp = malloc(48 + i % 200);
			CHECK(tmp, "malloc failed");
			memset(tmp, 0xEE, 48 + i % 200);
			free(tmp);
		}
	}
	pthread_mutex_lock(&mu);
	producers_left--;
	pthread_cond_broadcast(&not_empty);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *consumer(void *arg)
{
	long *count = arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		while (qcount == 0 && producers_left > 0)
			pthread_cond_wait(&not_empty, &mu);
		if (qcount == 0) {
			pthread_mutex_unlock(&mu);
			return NULL;
		}
		struct item it = q[qhead];
		qhead = (qhead + 1) % QCAP;
		qcount--;
		pthread_cond_signal(&not_full);
		pthread_mutex_unlock(&mu);
		CHECK(malloc_usable_size(it.p) >= it.n, "usable size %zu < %zu of a block from another thread",
		      malloc_usable_size(it.p), it.n);
		check(&it);
		/* scribble before freeing so a block handed out twice would show */
		memset(it.p, 0xDD, it.n);
		free(it.p);
		(*count)++;
	}
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s PRODUCERS CONSUMERS ROUNDS BLOCKS_PER_PRODUCER\n", argv[0]);
		return 2;
	}
	int np = atoi(argv[1]), nc = atoi(argv[2]), rounds = atoi(argv[3]);
	nblocks = atol(argv[4]);
	CHECK(np > 0 && nc > 0 && np <= 64 && nc <= 64 && rounds > 0 && nblocks > 0, "bad arguments");
	long total = 0;
	for (round_no = 0; round_no < rounds; round_no++) {
		pthread_t pt[64], ct[64];
		long counts[64] = {0};
		producers_left = np;
		for (int i = 0; i < nc; i++)
			CHECK(pthread_create(&ct[i], NULL, consumer, &counts[i]) == 0, "pthread_create");
		for (int i = 0; i < np; i++)
			CHECK(pthread_create(&pt[i], NULL, producer, (void *)(uintptr_t)i) == 0, "pthread_create");
		for (int i = 0; i < np; i++)
			pthread_join(pt[i], NULL);
		for (int i = 0; i < nc; i++) {
			pthread_join(ct[i], NULL);
			total += counts[i];
		}
		CHECK(qcount == 0, "queue not empty after a round");
	}
	CHECK(total == (long)np * nblocks * rounds, "consumers freed %ld blocks, producers made %ld", total,
	      (long)np * nblocks * rounds);
	printf("cross-thread ok: %ld blocks\n", total);
	return 0;
}
