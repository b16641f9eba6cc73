/*
 * Remote-free heavy (xmalloc-test style): PRODUCERS threads allocate 16..512-byte blocks and push them
 * through a lock-free batch queue to CONSUMERS threads, which free them. Fixed work: TOTAL blocks.
 *   xmalloc THREADS TOTAL        (THREADS/2 producers, the rest consumers; 1 thread: both roles in turn)
 * prints: ops_per_sec X   (an op is one malloc plus its remote free)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BATCH 64
struct batch {
	struct batch *next;
	void *p[BATCH];
};
static _Atomic(struct batch *) queue;
static long per_producer;
static atomic_int producers_done;
static int producers;

static void push(struct batch *b)
{
	b->next = atomic_load(&queue);
	while (!atomic_compare_exchange_weak(&queue, &b->next, b))
		;
}

static struct batch *pop(void)
{
	/* take the whole list: no ABA, consumers then walk it */
	return atomic_exchange(&queue, NULL);
}

static void produce(unsigned seed, long n)
{
	for (long i = 0; i < n; i += BATCH) {
		struct batch *b = malloc(sizeof *b);
		for (int k = 0; k < BATCH; k++) {
			seed = seed * 1103515245u + 12345u;
			b->p[k] = malloc(16 + (seed >> 8) % 497);
			((char *)b->p[k])[0] = (char)k;
		}
		push(b);
	}
}

static long consume_all(void)
{
	long n = 0;
	for (struct batch *b = pop(), *next; b; b = next) {
		next = b->next;
		for (int k = 0; k < BATCH; k++)
			free(b->p[k]);
		free(b);
		n += BATCH;
	}
	return n;
}

static void *producer(void *arg)
{
	produce((unsigned)(long)arg, per_producer);
	atomic_fetch_add(&producers_done, 1);
	return NULL;
}

static void *consumer(void *arg)
{
	for (;;) {
		int done = atomic_load(&producers_done) == producers;
		if (!consume_all() && done)
			return NULL;
	}
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	long total = argc > 2 ? atol(argv[2]) : 4000000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (threads == 1) {
		for (long done = 0; done < total; done += 64 * BATCH) {
			produce((unsigned)done, 64 * BATCH);
			consume_all();
		}
	} else {
		producers = threads / 2;
		per_producer = total / producers;
		pthread_t th[64];
		for (int t = 0; t < threads; t++)
			pthread_create(&th[t], NULL, t < producers ? producer : consumer, (void *)(long)t);
		for (int t = 0; t < threads; t++)
			pthread_join(th[t], NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	printf("ops_per_sec %.0f\n", total / s);
	return 0;
}
