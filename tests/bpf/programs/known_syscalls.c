/*
 * A process that makes a known number of memory syscalls when told to, so hakwatch's counts can be
 * checked exactly. It prints "ready" and waits for a line on stdin; on "go" it makes 100 mmap of
 * 64 KiB, 50 madvise(MADV_DONTNEED) and 100 munmap of those mappings, and 20 malloc/free of 1 MiB
 * (served from libhakmem's large-block cache, warmed up before "ready"), prints "done" and waits for
 * a line again; then it exits. Between "ready" and "done" it makes no other memory syscall.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
	char line[64];
	void *maps[100];
	setvbuf(stdout, NULL, _IONBF, 0);
	setvbuf(stdin, NULL, _IONBF, 0); /* no stdio buffer to allocate later */
	/* Warm up the allocator (thread heap, the large-block cache) before counting starts. */
	free(malloc(16));
	free(malloc(1 << 20));
	printf("ready\n");
	if (!fgets(line, sizeof line, stdin))
		return 1;
	for (int i = 0; i < 100; i++) {
		maps[i] = mmap(NULL, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (maps[i] == MAP_FAILED)
			return 2;
		memset(maps[i], 1, 4096);
	}
	for (int i = 0; i < 50; i++)
		madvise(maps[i], 65536, MADV_DONTNEED);
	for (int i = 0; i < 100; i++)
		munmap(maps[i], 65536);
	for (int i = 0; i < 20; i++) {
		char *p = malloc(1 << 20);
		p[0] = 1;
		free(p);
	}
	printf("done\n");
	if (!fgets(line, sizeof line, stdin))
		return 1;
	return 0;
}
