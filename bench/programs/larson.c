/*
 * Larson-style server churn (after Larson & Krishnan; the timed form of `larson 5 8 1000 5000 100 4141 N`):
 * each of N threads owns a window of CHUNKS blocks of MIN..MAX bytes and, for ROUNDS replacements per
 * turn, frees a random block and allocates a new one in its place; then it hands the whole window to a
 * fresh thread (so blocks are freed by threads that did not allocate them) and exits. Runs SECONDS, or
 * until TURNS hand-offs in all when TURNS is given: a fixed amount of work, for counting syscalls (each
 * thread's exit costs a madvise of its stack in glibc, so a timed run's count grows with its speed).
 *   larson SECONDS MIN MAX CHUNKS ROUNDS SEED THREADS [TURNS]      prints: ops_per_sec X
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int min_size, max_size, chunks, rounds;
static atomic_int stop;
static atomic_long total_ops;
static atomic_long turns_left = -1; /* -1: no limit */

struct window {
	void **blocks;
	unsigned seed;
};

static unsigned next(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void *worker(void *arg)
{
	struct window *w = arg;
	long ops = 0;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		for (int r = 0; r < rounds * chunks / 100; r++) {
			int i = next(&w->seed) % chunks;
			free(w->blocks[i]);
			w->blocks[i] = malloc(min_size + next(&w->seed) % (max_size - min_size + 1));
			((char *)w->blocks[i])[0] = 1;
			ops++;
		}
		atomic_fetch_add(&total_ops, ops);
		ops = 0;
		if (atomic_fetch_sub(&turns_left, 1) == 1)
			atomic_store(&stop, 1);
		pthread_t t; /* hand the window to a fresh thread and end */
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (!atomic_load(&stop) && pthread_create(&t, &a, worker, w) == 0)
			return NULL;
		break;
	}
	for (int i = 0; i < chunks; i++)
		free(w->blocks[i]);
	free(w->blocks);
	free(w);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 8 && argc != 9) {
		fprintf(stderr, "usage: larson SECONDS MIN MAX CHUNKS ROUNDS SEED THREADS [TURNS]\n");
		return 2;
	}
	if (argc == 9)
		turns_left = atol(argv[8]);
	double seconds = atof(argv[1]);
	min_size = atoi(argv[2]), max_size = atoi(argv[3]), chunks = atoi(argv[4]), rounds = atoi(argv[5]);
	unsigned seed = atoi(argv[6]);
	int threads = atoi(argv[7]);
	for (int t = 0; t < threads; t++) {
		struct window *w = malloc(sizeof *w);
		w->seed = seed + t;
		w->blocks = malloc(chunks * sizeof *w->blocks);
		for (int i = 0; i < chunks; i++)
			w->blocks[i] = malloc(min_size + next(&w->seed) % (max_size - min_size + 1));
		pthread_t th;
		pthread_create(&th, NULL, worker, w);
		pthread_detach(th);
	}
	/* A timed run sleeps once (no wake-ups competing with the workers); a fixed-work one looks every ms. */
	struct timespec start, now, all = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	struct timespec tick = turns_left < 0 ? all : (struct timespec){0, 1000000};
	clock_gettime(CLOCK_MONOTONIC, &start);
	double elapsed;
	do {
		nanosleep(&tick, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
	} while (elapsed < seconds && !atomic_load(&stop));
	atomic_store(&stop, 1);
	printf("ops_per_sec %.0f\n", atomic_load(&total_ops) / elapsed);
	fflush(stdout);
	_exit(0); /* detached threads may still be finishing their last turn */
}
