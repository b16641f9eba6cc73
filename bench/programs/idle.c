/* A watched process: a few hundred blocks of several classes and a large one, a flush, then, as
 * `idle`, sleep until killed; as `idle MS`, every MS milliseconds allocate and free a few large blocks
 * and a thousand small ones (enough for a flush: its counters change between any two scrapes).
 * bench/fleet.py starts a thousand of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Where blocks go, so that the compiler cannot drop a malloc and its free as dead code. */
static void *volatile sink;

static void busy(long ms)
{
	struct timespec period = {ms / 1000, ms % 1000 * 1000000L};
	static void *small[1000];
	for (;;) {
		nanosleep(&period, NULL);
		for (int i = 0; i < 5; i++) {
			sink = malloc(1 << 20);
			memset(sink, 1, 4096);
			free(sink);
		}
		for (int i = 0; i < 1000; i++)
			small[i] = sink = malloc(16 + (i % 40) * 24);
		for (int i = 0; i < 1000; i++)
			free(small[i]);
	}
}

int main(int argc, char **argv)
{
	static void *keep[600];
	for (int i = 0; i < 600; i++)
		keep[i] = malloc(16 + (i % 40) * 24);
	keep[0] = realloc(keep[0], 300 * 1024);
	for (int i = 1; i < 600; i += 3)
		free(keep[i]);
	puts("ready");
	fflush(stdout);
	if (argc > 1)
		busy(atol(argv[1]));
	pause();
	return 0;
}
