/*
 * Workers that finish: THREADS threads run one after another, each allocates BLOCKS blocks of SIZE
 * bytes, leaves them to the main thread and exits; then the main thread idles. While hakwatch is
 * attached, an exiting thread's counts wait in a batch that goes out with the process's next flush,
 * which an idle process never makes. The live set is THREADS * BLOCKS blocks of the class of SIZE.
 * Prints "ready" once the last worker has exited; exits when its standard input ends.
 *   finished_workers THREADS BLOCKS SIZE
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 1024

static int blocks;
static size_t size;
static void *kept[MAX_THREADS];	/* each worker's array of its blocks, left to main */

static void *worker(void *arg)
{
	void **mine = malloc(blocks * sizeof(void *));
	for (int b = 0; b < blocks; b++)
		mine[b] = malloc(size);
	*(void ***)arg = mine;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int threads = atoi(argv[1]);
	blocks = atoi(argv[2]);
	size = strtoul(argv[3], NULL, 10);
	if (threads < 1 || threads > MAX_THREADS)
		return 2;
	for (int i = 0; i < threads; i++) {
		pthread_t t;
		pthread_create(&t, NULL, worker, &kept[i]);
		pthread_join(t, NULL);
	}
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}
