/* Allocation sites for the profile tests: three known functions allocate in a known byte ratio
 * (site_a 60%, site_b 30%, site_c 10%), each in sizes of its own (small classes and large blocks);
 * `release` frees what a site kept. Built with frame pointers (the BPF suite's programs are).
 *
 * Prints "ready", then reads commands from stdin, printing "ok" after each:
 *   alloc MIB    the three sites allocate MIB MiB in all, freeing each block at once
 *   keep MIB     the same, keeping every block
 *   free SITE    frees the blocks site a, b or c kept
 *   churn N      N times: keep 8 MiB of 64-byte blocks (new SuperSlabs), then release them (their unmaps)
 *   exit         exits
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kept {
	void **blocks;
	size_t n, cap;
};

static struct kept kept[3];

/* Out of line: the list's reallocs are its own, not the site's. */
static __attribute__((noinline)) void keep(int site, void *p)
{
	struct kept *k = &kept[site];
	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 1024;
		k->blocks = realloc(k->blocks, k->cap * sizeof *k->blocks);
	}
	k->blocks[k->n++] = p;
}

/* Allocates `bytes` in blocks of the sizes given, in turn; keeps them or frees each. Inlined: the
 * mallocs are the site's own (a call here would be a tail call, and the site no frame of a stack). */
static inline __attribute__((always_inline)) void allocate(int site, size_t bytes, const size_t *sizes, int nsizes, int keeping)
{
	for (size_t done = 0, i = 0; done < bytes; i++) {
		size_t n = sizes[i % nsizes];
		char *p = malloc(n);
		p[0] = 1;
		if (keeping)
			keep(site, p);
		else
			free(p);
		done += n;
	}
}

static __attribute__((noinline)) void site_a(size_t bytes, int keeping)
{
	static const size_t sizes[] = {24, 200, 1500, 9000};
	allocate(0, bytes, sizes, 4, keeping);
}

static __attribute__((noinline)) void site_b(size_t bytes, int keeping)
{
	static const size_t sizes[] = {64, 700, 5000, 70000};
	allocate(1, bytes, sizes, 4, keeping);
}

static __attribute__((noinline)) void site_c(size_t bytes, int keeping)
{
	static const size_t sizes[] = {40, 3000, 300000};
	allocate(2, bytes, sizes, 3, keeping);
}

static __attribute__((noinline)) void release(int site)
{
	for (size_t i = 0; i < kept[site].n; i++)
		free(kept[site].blocks[i]);
	kept[site].n = 0;
}

static __attribute__((noinline)) void churn(long times)
{
	static const size_t small[] = {64};
	for (long i = 0; i < times; i++) {
		allocate(0, 8 << 20, small, 1, 1);
		release(0);
	}
}

int main(void)
{
	char cmd[64];
	long arg;
	setvbuf(stdout, NULL, _IOLBF, 0);
	puts("ready");
	while (scanf("%63s", cmd) == 1) {
		if (!strcmp(cmd, "exit"))
			return 0;
		if (!strcmp(cmd, "free")) {
			if (scanf("%63s", cmd) != 1)
				return 2;
			release(cmd[0] - 'a');
		} else if (scanf("%ld", &arg) == 1 && (!strcmp(cmd, "alloc") || !strcmp(cmd, "keep"))) {
			size_t mib = (size_t)arg << 20;
			int keeping = cmd[0] == 'k';
			site_a(mib / 10 * 6, keeping);
			site_b(mib / 10 * 3, keeping);
			site_c(mib / 10, keeping);
		} else if (!strcmp(cmd, "churn")) {
			churn(arg);
		} else {
			return 2;
		}
		puts("ok");
	}
	return 0;
}
