/*
 * An echo that allocates: prints its arguments one per line, then builds, sorts and frees a few
 * thousand strings and prints a checksum of the sorted order. "--exit=N" as the first argument makes
 * it exit with status N (after printing). Its stdout must be the same with and without libhakmem.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	int status = 0, first = 1;
	if (argc > 1 && !strncmp(argv[1], "--exit=", 7)) {
		status = atoi(argv[1] + 7);
		first = 2;
	}
	for (int i = first; i < argc; i++)
		printf("%s\n", argv[i]);
	enum { N = 5000 };
	char **s = malloc(N * sizeof *s);
	if (!s)
		return 99;
	for (int i = 0; i < N; i++) {
		char buf[64];
		snprintf(buf, sizeof buf, "item-%u-%d", (unsigned)(i * 2654435761u), i);
		s[i] = strdup(buf);
		if (!s[i])
			return 99;
	}
	qsort(s, N, sizeof *s, cmp);
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < N; i++) {
		for (const char *c = s[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ull;
		free(s[i]);
	}
	free(s);
	printf("checksum %016llx\n", (unsigned long long)h);
	return status;
}
