/*
 * A known live set, for the byte accounting: K units of blocks of several sizes, from one thread and
 * from a second thread whose blocks the first half frees (remote frees), large blocks, and blocks
 * grown by realloc. Every block is written whole. With `wait`, prints "ready" and waits for a line on
 * stdin before it goes on (a test attaches or reads /proc meanwhile). With `thread`, a thread builds
 * the set and exits, so every count is flushed before "ready" (the main thread allocates nothing).
 * `hold` keeps the set to exit, `free` frees it all first (and with `trim`, then calls malloc_trim(0),
 * which must report memory released). One unit (tests/allocator/live_set.py
 * holds the expected bytes):
 *   1000 x malloc(100), 300 x malloc(1000), 50 x malloc(5000), 4 x malloc(300000),
 *   2000 x malloc(40) by a thread, 1000 of them freed by the main thread,
 *   200 x malloc(20) then realloc(p, 3000).
 *
 *   alloc_live hold|free K [wait] [thread] [trim]
 */
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Through write(2), not check.h's fprintf: like the rest of this program ("ready" included), which uses
 * no stdio, so that the heap the tests measure holds the set and nothing of the C library's (stdio
 * takes its buffers from malloc). */
#define FAIL(msg) do { (void)!write(2, "FAIL: " msg "\n", sizeof("FAIL: " msg "\n") - 1); exit(1); } while (0)

struct set {
	void **p;
	size_t n, size;
};

static void *xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		FAIL("malloc returned NULL");
	memset(p, 0x5a, n);
	return p;
}

static void fill(struct set *s, size_t n, size_t size)
{
	s->n = n;
	s->size = size;
	/* the pointer arrays come from mmap: the heap holds exactly the set */
	s->p = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->p == MAP_FAILED)
		FAIL("mmap");
	for (size_t i = 0; i < n; i++)
		s->p[i] = xmalloc(size);
}

static void drop(struct set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->p[i]);
}

static void *thread_fill(void *arg)
{
	struct set *s = arg;
	fill(s, s->n, s->size);
	return NULL;
}

static size_t k;
static struct set small, medium, big, large, remote, grown;

static void *build(void *unused)
{
	remote = (struct set){.n = 2000 * k, .size = 40};
	fill(&small, 1000 * k, 100);
	fill(&medium, 300 * k, 1000);
	fill(&big, 50 * k, 5000);
	fill(&large, 4 * k, 300000);
	pthread_t t;
	if (pthread_create(&t, NULL, thread_fill, &remote) || pthread_join(t, NULL))
		FAIL("pthread");
	for (size_t i = 0; i < remote.n; i += 2) { /* half of the thread's blocks, freed from here */
		free(remote.p[i]);
		remote.p[i] = NULL;
	}
	fill(&grown, 200 * k, 20);
	for (size_t i = 0; i < grown.n; i++) {
		grown.p[i] = realloc(grown.p[i], 3000);
		if (!grown.p[i])
			FAIL("realloc returned NULL");
		memset(grown.p[i], 0x3c, 3000);
	}
	return NULL;
}

static int flag(int argc, char **argv, const char *name)
{
	for (int i = 3; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3 || (strcmp(argv[1], "hold") && strcmp(argv[1], "free")))
		FAIL("usage: alloc_live hold|free K [wait] [thread] [trim]");
	k = strtoul(argv[2], NULL, 10);
	if (flag(argc, argv, "thread")) {
		pthread_t builder;
		if (pthread_create(&builder, NULL, build, NULL) || pthread_join(builder, NULL))
			FAIL("pthread");
	} else {
		build(NULL);
	}
	if (flag(argc, argv, "wait")) {
		char line[16];
		(void)!write(1, "ready\n", 6);
		if (read(0, line, sizeof line) < 0)
			FAIL("read");
	}
	if (!strcmp(argv[1], "free")) {
		drop(&small);
		drop(&medium);
		drop(&big);
		drop(&large);
		drop(&remote);
		drop(&grown);
		if (flag(argc, argv, "trim") && malloc_trim(0) != 1)
			FAIL("malloc_trim(0) released nothing after the set was freed");
	}
	return 0;
}
