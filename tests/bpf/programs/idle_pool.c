/*
 * A thread pool that goes idle: THREADS threads each allocate BLOCKS blocks of SIZE bytes, each frees
 * the first third of its neighbour's (a free by another thread than the owner's), then all wait on a
 * condition variable, alive, as a pool waits for work. The live set is THREADS * (BLOCKS - BLOCKS / 3)
 * blocks of the class of SIZE, none of it flushed: the threads made no slow-path event since.
 * Prints "ready" once every thread waits; exits when its standard input ends.
 *   idle_pool THREADS BLOCKS SIZE
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_THREADS 1024

static int threads, blocks;
static size_t size;
static void **kept[MAX_THREADS];	/* static: the live set is the workers' blocks alone */
static pthread_barrier_t allocated, freed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static int waiting, done;

static void *worker(void *arg)
{
	long i = (long)arg;
	kept[i] = malloc(blocks * sizeof(void *));
	for (int b = 0; b < blocks; b++)
		kept[i][b] = malloc(size);
	pthread_barrier_wait(&allocated);
	void **theirs = kept[(i + 1) % threads];
	for (int b = 0; b < blocks / 3; b++)
		free(theirs[b]);
	pthread_barrier_wait(&freed);
	pthread_mutex_lock(&lock);
	waiting++;
	pthread_cond_broadcast(&work);
	while (!done)
		pthread_cond_wait(&work, &lock);
	pthread_mutex_unlock(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	threads = atoi(argv[1]);
	blocks = atoi(argv[2]);
	size = strtoul(argv[3], NULL, 10);
	static pthread_t t[MAX_THREADS];
	if (threads < 1 || threads > MAX_THREADS)
		return 2;
	pthread_barrier_init(&allocated, NULL, threads);
	pthread_barrier_init(&freed, NULL, threads);
	for (long i = 0; i < threads; i++)
		pthread_create(&t[i], NULL, worker, (void *)i);
	pthread_mutex_lock(&lock);
	while (waiting < threads)
		pthread_cond_wait(&work, &lock);
	pthread_mutex_unlock(&lock);
	printf("ready\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	pthread_mutex_lock(&lock);
	done = 1;
	pthread_cond_broadcast(&work);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	return 0;
}
