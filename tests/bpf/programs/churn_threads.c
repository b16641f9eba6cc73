/*
 * A multi-threaded workload for exact totals: ROUNDS rounds of THREADS threads; each allocates blocks
 * of many classes (and some large ones), hands half of them to the next thread through a shared slot
 * array (freed there: cross-thread frees), frees the rest and exits.
 *   churn_threads ROUNDS THREADS BLOCKS
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int blocks;
static void **handoff[64];

static void *worker(void *arg)
{
	intptr_t id = (intptr_t)arg;
	void **mine = malloc(blocks * sizeof *mine);
	unsigned seed = (unsigned)id * 2654435761u;
	for (int i = 0; i < blocks; i++) {
		seed = seed * 1103515245u + 12345u;
		size_t n = (seed >> 8) % 100 == 0 ? 300000 + seed % 1000 : 8 + (seed >> 4) % 4000;
		mine[i] = malloc(n);
		memset(mine[i], (int)id, 8);
	}
	void **theirs = __atomic_exchange_n(&handoff[id % 64], mine, __ATOMIC_ACQ_REL);
	if (theirs) {
		for (int i = 0; i < blocks / 2; i++)
			free(theirs[i]);
		for (int i = blocks / 2; i < blocks; i++)
			free(theirs[i]);
		free(theirs);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int rounds = atoi(argv[1]), threads = atoi(argv[2]);
	blocks = atoi(argv[3]);
	for (int r = 0; r < rounds; r++) {
		pthread_t th[64];
		for (int t = 0; t < threads; t++)
			pthread_create(&th[t], NULL, worker, (void *)(intptr_t)((r + t) % threads));
		for (int t = 0; t < threads; t++)
			pthread_join(th[t], NULL);
	}
	for (int i = 0; i < 64; i++)
		if (handoff[i]) {
			for (int j = 0; j < blocks; j++)
				free(handoff[i][j]);
			free(handoff[i]);
		}
	printf("churn done\n");
	return 0;
}
