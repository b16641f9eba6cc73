/*
 * Cross-thread hand-off: PRODUCERS threads allocate blocks of 16 B to 8 KiB and pass them through a
 * queue to CONSUMERS threads, which free them (each free a remote one, to a slab another thread owns),
 * in bursts of 20,000 blocks with a 50 ms pause after each, for SECONDS seconds. The counts move between
 * threads all the time: what is pushed by one thread is drained by another, allocated by one and freed
 * by another. Prints "ready" when it starts; exits when the time is up.
 *   handoff PRODUCERS CONSUMERS SECONDS
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define QUEUE 4096
#define BURST 20000

static void *queue[QUEUE];
static unsigned head, tail;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static volatile int stop;

static void put(void *p)
{
	pthread_mutex_lock(&lock);
	while (head - tail == QUEUE)
		pthread_cond_wait(&not_full, &lock);
	queue[head++ % QUEUE] = p;
	pthread_cond_signal(&not_empty);
	pthread_mutex_unlock(&lock);
}

static void *take(void)
{
	pthread_mutex_lock(&lock);
	while (head == tail && !stop)
		pthread_cond_wait(&not_empty, &lock);
	void *p = head == tail ? NULL : queue[tail++ % QUEUE];
	pthread_cond_signal(&not_full);
	pthread_mutex_unlock(&lock);
	return p;
}

static void *producer(void *arg)
{
	unsigned seed = (unsigned)(long)arg;
	while (!stop) {
		for (int i = 0; i < BURST && !stop; i++) {
			size_t n = 16 + rand_r(&seed) % 8192;
			char *p = malloc(n);
			p[0] = p[n - 1] = 1;
			put(p);
		}
		usleep(50 * 1000);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	void *p;
	while ((p = take()))
		free(p);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	int producers = atoi(argv[1]), consumers = atoi(argv[2]);
	double seconds = atof(argv[3]);
	if (producers < 1 || consumers < 1 || producers + consumers > 256)
		return 2;
	pthread_t t[256];
	for (long i = 0; i < producers; i++)
		pthread_create(&t[i], NULL, producer, (void *)(i + 1));
	for (int i = 0; i < consumers; i++)
		pthread_create(&t[producers + i], NULL, consumer, NULL);
	printf("ready\n");
	fflush(stdout);
	usleep((useconds_t)(seconds * 1e6));
	stop = 1;
	for (int i = 0; i < producers; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&not_empty);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < consumers; i++)
		pthread_join(t[producers + i], NULL);
	return 0;
}
