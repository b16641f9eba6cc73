/*
 * The notes' random_mixed (`bench_random_mixed 200000 4096 1234567`): CYCLES times, pick a random one
 * of SLOTS slots; free its block if it holds one, else allocate 16..1024 bytes into it. With THREADS > 1
 * every thread runs the same loop on slots of its own.
 *   random_mixed CYCLES SLOTS SEED [THREADS] [REPEAT]      prints: ops_per_sec X
 * REPEAT runs the whole loop again (the notes' 200,000 cycles take a few milliseconds).
 */
#include <stdio.h>
#include <stdlib.h>

#include "timed_threads.h"

static long cycles, repeat;
static int slots;
static unsigned seed0;

static void *run(void *arg)
{
	unsigned seed = seed0 + (unsigned)(long)arg;
	void **slot = calloc(slots, sizeof *slot);
	for (long r = 0; r < repeat; r++)
		for (long i = 0; i < cycles; i++) {
			seed = seed * 1103515245u + 12345u;
			int k = (seed >> 8) % slots;
			if (slot[k]) {
				free(slot[k]);
				slot[k] = NULL;
			} else {
				seed = seed * 1103515245u + 12345u;
				slot[k] = malloc(16 + (seed >> 8) % 1009);
				((char *)slot[k])[0] = 1;
			}
		}
	for (int k = 0; k < slots; k++)
		free(slot[k]);
	free(slot);
	return NULL;
}

int main(int argc, char **argv)
{
	cycles = atol(argv[1]), slots = atoi(argv[2]), seed0 = atoi(argv[3]);
	int threads = argc > 4 ? atoi(argv[4]) : 1;
	repeat = argc > 5 ? atol(argv[5]) : 1;
	printf("ops_per_sec %.0f\n", cycles * repeat * threads / timed_threads(threads, run));
	return 0;
}
