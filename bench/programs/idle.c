/* A watched process: a few hundred blocks of several classes and a large one, then, as `idle`, sleep
 * until killed; as `idle MS`, every MS milliseconds allocate and free a few large blocks and a thousand
 * small ones (enough for a flush: its counters change between any two scrapes). `idle MS THREADS` does
 * it in THREADS threads, each with its own blocks (MS 0: idle). bench/fleet.py starts a thousand. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Where blocks go, so that the compiler cannot drop a malloc and its free as dead code (written,
 * never read back: the threads share it). */
static void *volatile sink;
static long period_ms;
static pthread_barrier_t started;

static void keep_some(void)
{
	static __thread void *keep[600];
	for (int i = 0; i < 600; i++)
		keep[i] = malloc(16 + (i % 40) * 24);
	keep[0] = realloc(keep[0], 300 * 1024);
	for (int i = 1; i < 600; i += 3)
		free(keep[i]);
}

static void busy(void)
{
	struct timespec period = {period_ms / 1000, period_ms % 1000 * 1000000L};
	void *small[1000];
	for (;;) {
		nanosleep(&period, NULL);
		for (int i = 0; i < 5; i++) {
			char *large = malloc(1 << 20);
			memset(large, 1, 4096);
			sink = large;
			free(large);
		}
		for (int i = 0; i < 1000; i++)
			sink = small[i] = malloc(16 + (i % 40) * 24);
		for (int i = 0; i < 1000; i++)
			free(small[i]);
	}
}

static void *thread(void *arg)
{
	keep_some();
	pthread_barrier_wait(&started);
	if (period_ms)
		busy();
	for (;;)
		pause();
	return arg;
}

int main(int argc, char **argv)
{
	period_ms = argc > 1 ? atol(argv[1]) : 0;
	int threads = argc > 2 ? atoi(argv[2]) : 1;
	if (threads < 1)
		return 2;
	pthread_barrier_init(&started, NULL, threads);
	for (int i = 1; i < threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, thread, NULL);
	}
	keep_some();
	pthread_barrier_wait(&started);
	puts("ready");
	fflush(stdout);
	if (period_ms)
		busy();
	for (;;)
		pause();
}
