/*
 * Makes libhakmem fire every probe at least once (run it with HAKMEM_SS_LRU_SIZE=2): 4 SuperSlabs of
 * 1000-byte blocks allocated and freed (map, refill, lru_put, lru_evict, unmap), a pause longer than
 * the LRU's purge delay, one SuperSlab's worth again (lru_hit; freeing it purges the entry left idle:
 * madvise), a large block (large map, unmap), a thread whose exit flushes its counters, and a double
 * free (heap_error; run it with HAKMEM_HEAP_ERRORS=report too).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fill_and_free(int n)
{
	void **v = malloc(n * sizeof *v);
	for (int i = 0; i < n; i++) {
		v[i] = malloc(1000);
		memset(v[i], 1, 16);
	}
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void *thread(void *arg)
{
	fill_and_free(100);
	return arg;
}

int main(void)
{
	fill_and_free(4 * 2048);
	usleep(1300 * 1000);
	fill_and_free(1500);
	char *volatile big = malloc(64 << 20); /* more than the free large runs keep with nothing else live (64 MiB): partly unmapped at free */
	big[0] = 1;
	free(big);
	pthread_t t;
	pthread_create(&t, NULL, thread, NULL);
	pthread_join(t, NULL);
	char *volatile twice = malloc(32); /* heap_error: run with HAKMEM_HEAP_ERRORS=report, it goes on */
	free(twice);
	free(twice);
	return 0;
}
