/*
 * Large blocks reused (libhakmem's free runs, large.c). No stdio: the pid goes to stdout through
 * write(2) as "pid N", and every block is freed by exit.
 *
 *   alloc_large replace N   20 slots; N times a random slot's block is replaced by one of a random
 *                           1-8 MiB size (the new one allocated before the old is freed, as
 *                           mimalloc-bench's malloc-large does). Every page of every block carries
 *                           its (slot, generation) stamp, checked before the block is freed: two live
 *                           blocks sharing a page would overwrite each other's.
 *   alloc_large bound       40 blocks of 8 MiB written, then all freed
 *   alloc_large idle        10 blocks of 8 MiB written and freed; 1.1 s later, one of 1 MiB
 *                           allocated and freed
 *   alloc_large rlimit      under an address-space limit of what the process has + 150 MiB: 100 MiB
 *                           written and freed (64 MiB of it stays in the free runs), then 120 MiB
 *                           asked for, which fits only if the free runs go back first
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)
#define PAGE 4096
#define SLOTS 20

static void die(const char *msg)
{
	(void)!write(2, "FAIL: ", 6);
	(void)!write(2, msg, strlen(msg));
	(void)!write(2, "\n", 1);
	_exit(1);
}

static void say_pid(void)
{
	char buf[32];
	int n = 0;
	char digits[24];
	int k = 0;
	for (long pid = getpid(); pid; pid /= 10)
		digits[k++] = (char)('0' + pid % 10);
	memcpy(buf, "pid ", 4);
	n = 4;
	while (k)
		buf[n++] = digits[--k];
	buf[n++] = '\n';
	(void)!write(1, buf, n);
}

struct block {
	uint64_t *p;
	size_t bytes;
	uint64_t stamp;
};

/* The stamp at the start of every page of the block and in its last word. */
static void stamp(struct block *b)
{
	for (size_t off = 0; off < b->bytes; off += PAGE)
		b->p[off / 8] = b->stamp;
	b->p[b->bytes / 8 - 1] = b->stamp;
}

static void check_and_free(struct block *b)
{
	if (!b->p)
		return;
	for (size_t off = 0; off < b->bytes; off += PAGE)
		if (b->p[off / 8] != b->stamp)
			die("a live large block's page was overwritten: two blocks share memory");
	if (b->p[b->bytes / 8 - 1] != b->stamp)
		die("a live large block's last word was overwritten: two blocks share memory");
	free(b->p);
	b->p = NULL;
}

static uint64_t rng = 42;

static uint64_t next(void)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return rng >> 33;
}

static void alloc_block(struct block *b, size_t bytes, uint64_t stamp_value)
{
	b->p = malloc(bytes);
	if (!b->p)
		die("malloc of a large block failed");
	b->bytes = bytes;
	b->stamp = stamp_value;
	stamp(b);
}

static void replace(long n)
{
	struct block slots[SLOTS] = {0};
	for (long i = 0; i < n; i++) {
		unsigned s = (unsigned)(next() % SLOTS);
		size_t bytes = MiB + (next() % (7 * MiB)) / 8 * 8;
		struct block fresh;
		alloc_block(&fresh, bytes, ((uint64_t)s << 32) | (uint64_t)i);
		check_and_free(&slots[s]);
		slots[s] = fresh;
	}
	for (unsigned s = 0; s < SLOTS; s++)
		check_and_free(&slots[s]);
}

static void write_and_free(unsigned count, size_t bytes)
{
	struct block b[40];
	for (unsigned i = 0; i < count; i++)
		alloc_block(&b[i], bytes, i + 1);
	for (unsigned i = 0; i < count; i++)
		check_and_free(&b[i]);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: alloc_large replace N | bound | idle | rlimit");
	say_pid();
	if (!strcmp(argv[1], "replace") && argc == 3) {
		replace(atol(argv[2]));
	} else if (!strcmp(argv[1], "bound")) {
		write_and_free(40, 8 * MiB);
	} else if (!strcmp(argv[1], "rlimit")) {
		FILE *f = fopen("/proc/self/statm", "r");
		unsigned long pages = 0;
		if (!f || fscanf(f, "%lu", &pages) != 1)
			die("cannot read /proc/self/statm");
		fclose(f);
		struct rlimit lim = {pages * PAGE + 150 * MiB, RLIM_INFINITY};
		if (setrlimit(RLIMIT_AS, &lim))
			die("setrlimit(RLIMIT_AS) failed");
		write_and_free(1, 100 * MiB);
		write_and_free(1, 120 * MiB);
	} else if (!strcmp(argv[1], "idle")) {
		write_and_free(10, 8 * MiB);
		struct timespec pause = {1, 100 * 1000 * 1000};
		nanosleep(&pause, NULL);
		write_and_free(1, MiB);
	} else {
		die("usage: alloc_large replace N | bound | idle | rlimit");
	}
	return 0;
}
