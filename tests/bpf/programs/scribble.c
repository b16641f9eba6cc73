/*
 * A program that scribbles over the allocator state hakwatch reads from its memory, as a buggy or
 * hostile one could: hakwatch must not hang, crash or show what it read as true. Two threads keep
 * blocks, then the main thread obeys lines on its standard input, answering "ok" to each:
 *   lower     a count of the totals goes down (no count ever does)
 *   negative  the totals say more blocks were handed out than ever came in (a negative layer)
 *   loop      the list of threads points back at itself (then a thread comes and goes, so that a
 *             reader walks the list again)
 *   restore   everything as it was, so that the allocator itself can exit
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../probes/hakmem_counters.h"

static pthread_barrier_t kept;
static void *volatile sink; /* a malloc whose block nobody uses may be left out by the compiler */

static void *passing(void *arg)
{
	sink = malloc(64);
	free(sink);
	return NULL;
}

static void *keeper(void *arg)
{
	for (int i = 0; i < 1000; i++)
		sink = malloc(64);
	pthread_barrier_wait(&kept);
	pthread_barrier_wait(&kept); /* until the program ends: its cache stays on the list */
	return NULL;
}

int main(void)
{
	const struct hakmem_state_map *m = dlsym(RTLD_DEFAULT, HAKMEM_STATE_MAP_SYMBOL);
	if (!m)
		return 2;
	struct hakmem_totals *totals = (struct hakmem_totals *)(uintptr_t)m->totals;
	pthread_t t[2];
	pthread_barrier_init(&kept, NULL, 3);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, keeper, NULL);
	pthread_barrier_wait(&kept);
	char *first_heap = *(char **)(uintptr_t)m->threads, *next_saved = NULL;
	struct hakmem_counters saved = totals->counters;
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (!strcmp(line, "lower\n")) {
			__u64 *word = (__u64 *)&totals->counters;
			while (!*word)
				word++;
			*word = 0;
		} else if (!strcmp(line, "negative\n")) {
			totals->counters.allocs[3] += 1000000;
		} else if (!strcmp(line, "loop\n")) {
			next_saved = *(char **)(first_heap + m->heap_next);
			*(char **)(first_heap + m->heap_next) = first_heap;
			pthread_t p;
			pthread_create(&p, NULL, passing, NULL);
			pthread_join(p, NULL);
		} else if (!strcmp(line, "restore\n")) {
			totals->counters = saved;
			if (next_saved)
				*(char **)(first_heap + m->heap_next) = next_saved;
		}
		printf("ok\n");
		fflush(stdout);
	}
	pthread_barrier_wait(&kept);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	return 0;
}
