/*
 * fork() from a process whose threads are busy allocating and freeing (and handing blocks to each
 * other): the child checks the blocks it inherited, frees them, allocates and frees a lot, runs a
 * thread that does the same, and exits 0 with exit() (so atexit work such as HAKMEM_STATS runs). A
 * child that hangs (say, on an allocator lock held by a thread that does not exist in the child) is
 * killed by alarm() and reported. The parent goes on and does it again. Exits 1 with one FAIL line.
 *
 *   alloc_fork WORKERS FORKS
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static atomic_int stop;
static atomic_long worker_ops;

static size_t size_for(uint64_t h)
{
	h = h * 0x9E3779B97F4A7C15ull;
	h ^= h >> 29;
	if (h % 301 == 0)
		return 270000 + h % 300000;
	if (h % 11 == 0)
		return 1000 + h % 30000;
	return 1 + h % 700;
}

/* A slot per worker where it leaves a block for the next worker to free (cross-thread frees). */
#define MAXW 16
static _Atomic(unsigned char *) mailbox[MAXW];
static int nworkers;

static void *worker(void *arg)
{
	int w = (int)(intptr_t)arg;
	enum { N = 64 };
	unsigned char *b[N] = {0};
	size_t n[N] = {0};
	uint64_t it = 0;
	while (!atomic_load(&stop)) {
		int k = (int)(it % N);
		if (b[k]) {
			CHECK(first_bad(b[k], n[k], w * 1000003ull + k) == SIZE_MAX, "parent worker %d: block corrupted", w);
			free(b[k]);
		}
		n[k] = size_for(w * 7919 + it);
		b[k] = malloc(n[k]);
		CHECK(b[k], "parent worker %d: malloc(%zu) = NULL", w, n[k]);
		fill(b[k], n[k], w * 1000003ull + k);
		/* take the block the previous worker left, leave one for the next */
		unsigned char *got = atomic_exchange(&mailbox[w], NULL);
		if (got)
			free(got);
		int next = (w + 1) % nworkers;
		if (!atomic_load(&mailbox[next])) {
			unsigned char *m = malloc(200 + it % 3000);
			CHECK(m, "malloc failed");
			memset(m, 0x42, 200 + it % 3000);
			unsigned char *expected = NULL;
			if (!atomic_compare_exchange_strong(&mailbox[next], &expected, m))
				free(m);
		}
		it++;
		atomic_fetch_add(&worker_ops, 1);
	}
	for (int k = 0; k < N; k++)
		free(b[k]);
	return NULL;
}

/* What a child does; also what its extra thread does. */
static void busy(uint64_t seed, int rounds)
{
	enum { N = 2000 };
	static __thread unsigned char *b[N];
	static __thread size_t n[N];
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < N; i++) {
			n[i] = size_for(seed + r * N + i);
			b[i] = (i % 3 == 0) ? calloc(1, n[i]) : malloc(n[i]);
			CHECK(b[i], "child: allocating %zu bytes failed", n[i]);
			if (i % 3 == 0)
				for (size_t j = 0; j < n[i]; j++)
					CHECK(b[i][j] == 0, "child: calloc(1, %zu) byte %zu not zero", n[i], j);
			fill(b[i], n[i], seed + i);
		}
		for (int i = 0; i < N; i += 2) {
			unsigned char *q = realloc(b[i], n[i] * 2 + 1);
			CHECK(q, "child: realloc failed");
			CHECK(first_bad(q, n[i], seed + i) == SIZE_MAX, "child: realloc lost content (%zu -> %zu bytes)", n[i],
			      n[i] * 2 + 1);
			b[i] = q;
		}
		for (int i = 0; i < N; i++) {
			CHECK(first_bad(b[i], n[i], seed + i) == SIZE_MAX, "child: block %d of %zu bytes corrupted", i, n[i]);
			free(b[i]);
		}
	}
}

static void *child_thread(void *arg)
{
	busy((uint64_t)(uintptr_t)arg, 3);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s WORKERS FORKS\n", argv[0]);
		return 2;
	}
	nworkers = atoi(argv[1]);
	int forks = atoi(argv[2]);
	CHECK(nworkers > 0 && nworkers <= MAXW && forks > 0, "bad arguments");
	pthread_t th[MAXW];
	for (int w = 0; w < nworkers; w++)
		CHECK(pthread_create(&th[w], NULL, worker, (void *)(intptr_t)w) == 0, "pthread_create");

	/* blocks of the main thread that live across the forks */
	enum { KEEP = 500 };
	unsigned char *keep[KEEP];
	size_t keepn[KEEP];
	for (int i = 0; i < KEEP; i++) {
		keepn[i] = size_for(424242 + i);
		keep[i] = malloc(keepn[i]);
		CHECK(keep[i], "malloc failed");
		fill(keep[i], keepn[i], 77 + i);
	}
	for (int f = 0; f < forks; f++) {
		/* let the workers get going, so fork lands while they are in the allocator */
		long before = atomic_load(&worker_ops);
		while (atomic_load(&worker_ops) < before + 2000)
			sched_yield();
		pid_t pid = fork();
		CHECK(pid >= 0, "fork failed");
		if (pid == 0) {
			alarm(20);
			for (int i = 0; i < KEEP; i++) {
				CHECK(first_bad(keep[i], keepn[i], 77 + i) == SIZE_MAX, "child %d: inherited block %d corrupted", f,
				      i);
				free(keep[i]);
			}
			busy(1000 + f, 3);
			pthread_t t;
			CHECK(pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(5000 + f)) == 0,
			      "child %d: pthread_create failed", f);
			busy(9000 + f, 2);
			pthread_join(t, NULL);
			exit(0);
		}
		int status;
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
		if (WIFSIGNALED(status))
			FAIL("child of fork #%d was killed by signal %d (%s)%s", f, WTERMSIG(status),
			     strsignal(WTERMSIG(status)),
			     WTERMSIG(status) == SIGALRM ? ": it hung for 20 s (deadlock after fork?)" : "");
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child of fork #%d exited with status %d", f,
		      WEXITSTATUS(status));
		/* the parent goes on: its blocks are intact, and it keeps allocating */
		for (int i = 0; i < KEEP; i++) {
			CHECK(first_bad(keep[i], keepn[i], 77 + i) == SIZE_MAX, "parent: block %d corrupted after fork #%d", i, f);
			if ((i + f) % 5 == 0) {
				free(keep[i]);
				keep[i] = malloc(keepn[i]);
				CHECK(keep[i], "malloc failed");
				fill(keep[i], keepn[i], 77 + i);
			}
		}
	}
	atomic_store(&stop, 1);
	for (int w = 0; w < nworkers; w++)
		pthread_join(th[w], NULL);
	for (int w = 0; w < nworkers; w++)
		free(atomic_load(&mailbox[w]));
	for (int i = 0; i < KEEP; i++)
		free(keep[i]);
	printf("fork ok: %d forks with %d busy threads\n", forks, nworkers);
	return 0;
}
