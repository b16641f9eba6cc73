/* Heap misuse, one kind per run: `misuse KIND [clean]`. With `clean`, the same steps without the
 * misuse, which must run without a word on stderr. Prints "returned ADDR" for every block a malloc
 * hands out after the misuse (flushed at once, so the lines survive a crash), "target ADDR" for the
 * address an overflow tries to steer malloc to, and "done" at the end (reached only when the
 * allocator goes on: HAKMEM_HEAP_ERRORS=report, or `clean`). Exit 3: the heap was not laid out as
 * the case needs (a test problem, not an allocator one). */
#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static int misuse; /* 0 with `clean` */

static void returned(void *p)
{
	printf("returned %p\n", p);
	fflush(stdout);
}

/* Two blocks of one class, `hi` right after `lo` (a fresh carve hands out the highest first). */
static void adjacent(size_t size, char **lo, char **hi)
{
	*hi = malloc(size);
	*lo = malloc(size);
	if (*hi - *lo != (ptrdiff_t)size) {
		printf("layout: %p %p\n", (void *)*lo, (void *)*hi);
		exit(3);
	}
}

/* Fill the class's thread cache to its largest, so that the next free of the class goes to its slab. */
static void fill_cache(size_t size)
{
	enum { N = 20000 };
	static void *set[N];
	for (int i = 0; i < N; i++)
		set[i] = malloc(size);
	for (int i = 0; i < N; i++)
		free(set[i]);
}

static void *free_twice(void *p)
{
	free(p);
	if (misuse)
		free(p);
	return NULL;
}

static void *free_once(void *p)
{
	free(p);
	return NULL;
}

static void in_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;
	pthread_create(&t, NULL, fn, arg);
	pthread_join(t, NULL);
}

/* After a double free, two mallocs of the class must not hand out one block twice. */
static void two_more(size_t size)
{
	void *a = malloc(size), *b = malloc(size);
	returned(a);
	returned(b);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *kind = argv[1];
	misuse = !(argc > 2 && !strcmp(argv[2], "clean"));
	if (!strcmp(kind, "double_free_cache")) {
		char *p = malloc(32);
		free_twice(p);
		two_more(32);
	} else if (!strcmp(kind, "double_free_slab")) {
		char *p = malloc(48);
		fill_cache(48);
		free_twice(p); /* the first free goes to the slab: the cache is full */
		two_more(48);
	} else if (!strcmp(kind, "double_free_remote")) {
		char *p = malloc(64);
		in_thread(free_twice, p); /* another thread's block: through the remote queue */
		two_more(64);
	} else if (!strcmp(kind, "double_free_remote_then_owner")) {
		char *p = malloc(64);
		in_thread(free_once, p);
		if (misuse)
			free(p); /* the owner frees it again while it waits in the remote queue */
		two_more(64);
	} else if (!strcmp(kind, "double_free_large")) {
		free_twice(malloc(1 << 20)); /* its pages stay among the free runs */
		two_more(1 << 20);
	} else if (!strcmp(kind, "double_free_large_unmapped")) {
		char *p = malloc(32 << 20);
		free(p);
		malloc_trim(0); /* its pages go back to the kernel: only the ring of recent frees knows it */
		if (misuse)
			free(p);
		two_more(32 << 20);
	} else if (!strcmp(kind, "interior")) {
		char *p = malloc(64);
		free(misuse ? p + 16 : p);
		two_more(64);
	} else if (!strcmp(kind, "misaligned")) {
		char *p = malloc(64);
		free(misuse ? p + 8 : p);
		two_more(64);
	} else if (!strcmp(kind, "large_interior")) {
		char *p = malloc(1 << 20);
		free(misuse ? p + 4096 : p);
	} else if (!strcmp(kind, "stack")) {
		char buf[256] __attribute__((aligned(64)));
		memset(buf, 0, sizeof buf);
		if (misuse)
			free(buf + 64);
		printf("%d\n", buf[0]);
	} else if (!strcmp(kind, "foreign")) {
		char *m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (misuse)
			free(m + 64); /* another allocator's block */
		munmap(m, 8192);
	} else if (!strcmp(kind, "header")) {
		char *p = malloc(32);
		/* the start of the 2 MiB SuperSlab the block is in: its header */
		free(misuse ? (void *)((uintptr_t)p & ~(uintptr_t)((2 << 20) - 1)) : p);
		two_more(32);
	} else if (!strcmp(kind, "realloc_invalid")) {
		char buf[64];
		free(realloc(misuse ? buf + 8 : NULL, 100));
	} else if (!strcmp(kind, "overflow_cache") || !strcmp(kind, "overflow_one_byte")) {
		/* A heap overflow from `lo` into the freed `hi` next to it, which sits in the thread cache:
		 * over its link, whole (with an address of the attacker's choice) or its low byte only. */
		static char target[128] __attribute__((aligned(64)));
		char *lo, *hi;
		adjacent(112, &lo, &hi);
		free(hi);
		printf("target %p\n", (void *)target);
		if (!strcmp(kind, "overflow_cache")) {
			char *t = target;
			memset(lo, 'A', 112);
			if (misuse)
				memcpy(lo + 112, &t, sizeof t);
		} else if (misuse) {
			lo[112] = 0; /* off by one */
		}
		for (int i = 0; i < 4; i++)
			returned(malloc(112));
	} else if (!strcmp(kind, "overflow_slab")) {
		/* The same into a freed block on its slab's free list: the refill that takes it says so. */
		char *lo, *hi;
		adjacent(80, &lo, &hi);
		fill_cache(80);
		free(hi); /* the cache is full: to the slab */
		if (misuse)
			memset(lo, 'A', 80 + 8);
		for (int i = 0; i < 30000; i++)
			if (malloc(80) == NULL)
				return 1;
	} else {
		return 2;
	}
	puts("done");
	return 0;
}
