/*
 * Workloads with a known memory shape, one for each memory alert and one for none. Each prints
 * "ready" once its shape is set (the leak: once it started), then runs for SECONDS.
 *   leak    allocates 1000-byte blocks at 16 MiB a second and never frees them (up to 1.5 GiB)
 *   swiss   allocates 400 MiB of 240-byte blocks, frees 19 in 20 and keeps the rest: the freed
 *           memory stays inside SuperSlabs the survivors pin (fragmentation)
 *   retain  allocates 8 blocks of 8 MiB and 100 MiB of 1000-byte blocks, frees all of it, then
 *           idles: the large blocks stay in the large-block cache, empty SuperSlabs in the LRU
 *   steady  holds 4,000 blocks of 16-4096 bytes and replaces them at random, a few thousand a second
 *
 *   memory_patterns leak|swiss|retain|steady SECONDS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *touched(size_t n)
{
	void *p = malloc(n);
	if (!p) {
		fprintf(stderr, "FAIL: malloc(%zu)\n", n);
		exit(1);
	}
	memset(p, 0x5a, n);
	return p;
}

static void ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

static void leak(time_t end)
{
	size_t leaked = 0;
	ready();
	while (time(NULL) < end) {
		if (leaked < ((size_t)3 << 29))
			for (int i = 0; i < 160; i++, leaked += 1000)
				(void)!touched(1000);
		usleep(10000);
	}
}

static void swiss(time_t end)
{
	size_t n = (400u << 20) / 240;
	void **p = malloc(n * sizeof *p);
	for (size_t i = 0; i < n; i++)
		p[i] = touched(240);
	for (size_t i = 0; i < n; i++)
		if (i % 20)
			free(p[i]);
	ready();
	while (time(NULL) < end)
		sleep(1);
}

static void retain(time_t end)
{
	void *big[8];
	size_t n = (100u << 20) / 1000;
	void **p = malloc(n * sizeof *p);
	for (int i = 0; i < 8; i++)
		big[i] = touched(8u << 20);
	for (size_t i = 0; i < n; i++)
		p[i] = touched(1000);
	for (int i = 0; i < 8; i++)
		free(big[i]);
	for (size_t i = 0; i < n; i++)
		free(p[i]);
	free(p);
	ready();
	while (time(NULL) < end)
		sleep(1);
}

static void steady(time_t end)
{
	enum { N = 4000 };
	static void *p[N];
	unsigned seed = 12345;
	for (int i = 0; i < N; i++)
		p[i] = touched(16 + rand_r(&seed) % 4081);
	ready();
	while (time(NULL) < end) {
		for (int k = 0; k < 100; k++) {
			int i = rand_r(&seed) % N;
			free(p[i]);
			p[i] = touched(16 + rand_r(&seed) % 4081);
		}
		usleep(20000);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: memory_patterns leak|swiss|retain|steady SECONDS\n");
		return 2;
	}
	time_t end = time(NULL) + atoi(argv[2]);
	if (!strcmp(argv[1], "leak"))
		leak(end);
	else if (!strcmp(argv[1], "swiss"))
		swiss(end);
	else if (!strcmp(argv[1], "retain"))
		retain(end);
	else if (!strcmp(argv[1], "steady"))
		steady(end);
	else
		return 2;
	return 0;
}
