/* The benchmarks' threads: fn(0), ..., fn(threads - 1) run at once; returns the seconds from the
 * first start to the last join. */
#include <pthread.h>
#include <time.h>

static double timed_threads(int threads, void *(*fn)(void *))
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_t th[64];
	for (int t = 0; t < threads; t++)
		pthread_create(&th[t], NULL, fn, (void *)(long)t);
	for (int t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
}
