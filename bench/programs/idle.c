/* A watched process that does nothing: a few hundred blocks of several classes and a large one, a
 * flush, then sleep until killed. bench/fleet.py starts a thousand of them. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
	static void *keep[600];
	for (int i = 0; i < 600; i++)
		keep[i] = malloc(16 + (i % 40) * 24);
	keep[0] = realloc(keep[0], 300 * 1024);
	for (int i = 1; i < 600; i += 3)
		free(keep[i]);
	puts("ready");
	fflush(stdout);
	pause();
	return 0;
}
