/*
 * The malloc API's semantics and error cases, checked against the standard API (runs against glibc
 * too, so it can be checked without libhakmem). Prints one FAIL line and exits 1 at the first failure.
 *
 *   alloc_api resolve        print "<function> <library file>" for every malloc-API function
 *   alloc_api errors [strict] overflow, absurd sizes, bad alignments; "strict" adds aligned_alloc /
 *                            memalign returning NULL + EINVAL for an alignment that is not a power
 *                            of two (glibc 2.36 rounds such an alignment up instead)
 *   alloc_api semantics      malloc(0), realloc(p, 0), realloc(NULL, n), free(NULL), calloc zeroing
 *                            recycled blocks, reallocarray
 *   alloc_api reuse          freed memory is reused: 30 rounds of 48 MiB in mixed sizes allocated,
 *                            written and freed, then 1500 large blocks of 4 MiB; the peak RSS stays
 *                            far below what keeping the freed memory would take
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "check.h"

static void verify(const void *p, size_t n, uint64_t seed, const char *what)
{
	size_t i = first_bad(p, n, seed);
	if (i != SIZE_MAX)
		FAIL("%s: byte %zu of %zu changed (0x%02x, expected 0x%02x)", what, i, n, ((const unsigned char *)p)[i],
		     pattern_byte(seed, i));
}

/* ---------------------------------------------------------------- resolve */

static int resolve(void)
{
	struct { const char *name; void *addr; } fns[] = {
		{"malloc", (void *)malloc}, {"free", (void *)free}, {"calloc", (void *)calloc},
		{"realloc", (void *)realloc}, {"reallocarray", (void *)reallocarray},
		{"posix_memalign", (void *)posix_memalign}, {"aligned_alloc", (void *)aligned_alloc},
		{"memalign", (void *)memalign}, {"valloc", (void *)valloc}, {"pvalloc", (void *)pvalloc},
		{"malloc_usable_size", (void *)malloc_usable_size}, {"malloc_trim", (void *)malloc_trim},
	};
	for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
		/* Both the address this program was linked to and what a dlsym lookup finds. */
		void *dl = dlsym(RTLD_DEFAULT, fns[i].name);
		Dl_info a, b;
		CHECK(dl, "dlsym(%s) found nothing", fns[i].name);
		CHECK(dladdr(fns[i].addr, &a) && a.dli_fname, "dladdr(&%s) failed", fns[i].name);
		CHECK(dladdr(dl, &b) && b.dli_fname, "dladdr(dlsym(%s)) failed", fns[i].name);
		CHECK(fns[i].addr == dl, "%s: linked address %p (%s) != dlsym address %p (%s)", fns[i].name,
		      fns[i].addr, a.dli_fname, dl, b.dli_fname);
		printf("%s %s\n", fns[i].name, a.dli_fname);
	}
	/* Blocks of a few sizes, to compare malloc_usable_size with the size classes. */
	static const size_t sizes[] = {1, 16, 17, 100, 112, 113, 1000, 5000, 100000, 262144};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		void *p = malloc(opaque(sizes[i]));
		CHECK(p, "malloc(%zu) = NULL", sizes[i]);
		printf("usable %zu %zu\n", sizes[i], malloc_usable_size(p));
		free(p);
	}
	return 0;
}

/* ---------------------------------------------------------------- errors */

static const size_t absurd[] = {
	SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 4095, SIZE_MAX - (2u << 20),
	SIZE_MAX - (1u << 30), (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX, (size_t)1 << 50,
};
#define NABSURD (sizeof absurd / sizeof absurd[0])

#define EXPECT_NULL_ERRNO(call, err, fmt, ...) do {                                                   \
	errno = 0;                                                                               \
	void *r_ = (call);                                                                       \
	int e_ = errno;                                                                          \
	if (r_ != NULL) FAIL(fmt ": returned %p, expected NULL", ##__VA_ARGS__, r_);                   \
	if (e_ != (err)) FAIL(fmt ": errno %d (%s), expected %d (%s)", ##__VA_ARGS__, e_, strerror(e_), \
			      (err), strerror(err));                                             \
} while (0)

static void realloc_absurd_keeps(size_t n, unsigned seed)
{
	char *p = malloc(opaque(n));
	CHECK(p, "malloc(%zu) = NULL", n);
	fill(p, n, seed);
	for (size_t i = 0; i < NABSURD; i++) {
		EXPECT_NULL_ERRNO(realloc(p, opaque(absurd[i])), ENOMEM, "realloc(%zu-byte block, %zu)", n,
				  absurd[i]);
		verify(p, n, seed, "block after a failed realloc");
		EXPECT_NULL_ERRNO(reallocarray(p, opaque(absurd[i]), 1), ENOMEM,
				  "reallocarray(%zu-byte block, %zu, 1)", n, absurd[i]);
		verify(p, n, seed, "block after a failed reallocarray");
	}
	EXPECT_NULL_ERRNO(reallocarray(p, opaque((size_t)1 << 32), opaque((size_t)1 << 32)), ENOMEM,
			  "reallocarray(%zu-byte block, 2^32, 2^32) (overflow)", n);
	verify(p, n, seed, "block after an overflowing reallocarray");
	EXPECT_NULL_ERRNO(reallocarray(p, opaque(SIZE_MAX / 2 + 1), 2), ENOMEM,
			  "reallocarray(%zu-byte block, SIZE_MAX/2+1, 2) (overflow)", n);
	verify(p, n, seed, "block after an overflowing reallocarray");
	/* The block is still a live, usable block. */
	char *q = realloc(p, n + 1000);
	CHECK(q, "realloc(%zu-byte block, %zu) = NULL after failed attempts", n, n + 1000);
	verify(q, n, seed, "block grown after failed reallocs");
	free(q);
}

static int errors(int strict)
{
	/* calloc: nmemb * size overflows */
	static const size_t ovf[][2] = {
		{SIZE_MAX / 2 + 1, 2}, {2, SIZE_MAX / 2 + 1}, {(size_t)1 << 32, (size_t)1 << 32},
		{SIZE_MAX, SIZE_MAX}, {SIZE_MAX / 16 + 1, 16}, {SIZE_MAX, 2}, {65537, SIZE_MAX / 65536},
	};
	for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++)
		EXPECT_NULL_ERRNO(calloc(opaque(ovf[i][0]), opaque(ovf[i][1])), ENOMEM,
				  "calloc(%zu, %zu) (product overflows)", ovf[i][0], ovf[i][1]);
	for (size_t i = 0; i < sizeof ovf / sizeof ovf[0]; i++)
		EXPECT_NULL_ERRNO(reallocarray(NULL, opaque(ovf[i][0]), opaque(ovf[i][1])), ENOMEM,
				  "reallocarray(NULL, %zu, %zu) (product overflows)", ovf[i][0], ovf[i][1]);

	/* absurd sizes, every entry point */
	for (size_t i = 0; i < NABSURD; i++) {
		size_t n = absurd[i];
		EXPECT_NULL_ERRNO(malloc(opaque(n)), ENOMEM, "malloc(%zu)", n);
		EXPECT_NULL_ERRNO(calloc(1, opaque(n)), ENOMEM, "calloc(1, %zu)", n);
		EXPECT_NULL_ERRNO(calloc(opaque(n), 1), ENOMEM, "calloc(%zu, 1)", n);
		EXPECT_NULL_ERRNO(realloc(NULL, opaque(n)), ENOMEM, "realloc(NULL, %zu)", n);
		EXPECT_NULL_ERRNO(aligned_alloc(64, opaque(n)), ENOMEM, "aligned_alloc(64, %zu)", n);
		EXPECT_NULL_ERRNO(aligned_alloc(1 << 20, opaque(n)), ENOMEM, "aligned_alloc(1 MiB, %zu)", n);
		EXPECT_NULL_ERRNO(memalign(4096, opaque(n)), ENOMEM, "memalign(4096, %zu)", n);
		EXPECT_NULL_ERRNO(valloc(opaque(n)), ENOMEM, "valloc(%zu)", n);
		EXPECT_NULL_ERRNO(pvalloc(opaque(n)), ENOMEM, "pvalloc(%zu) (rounding up must not wrap)", n);
		void *sentinel = (void *)0x1234, *p = sentinel;
		int r = posix_memalign(&p, 64, opaque(n));
		CHECK(r == ENOMEM, "posix_memalign(&p, 64, %zu) returned %d, expected ENOMEM", n, r);
		CHECK(p == sentinel, "posix_memalign(&p, 64, %zu) failed but changed p to %p", n, p);
	}

	/* a failed realloc leaves the block intact: small, medium and large blocks */
	realloc_absurd_keeps(24, 1);
	realloc_absurd_keeps(100, 2);
	realloc_absurd_keeps(5000, 3);
	realloc_absurd_keeps(200000, 4);
	realloc_absurd_keeps(3u << 20, 5);

	/* posix_memalign: alignment not a power of two, or not a multiple of sizeof(void *) */
	static const size_t bad_pm[] = {0, 1, 2, 4, 3, 12, 20, 24, 48, 40, 72, 96, 4104, 1000, 65535,
					(1 << 20) + 8, SIZE_MAX};
	for (size_t i = 0; i < sizeof bad_pm / sizeof bad_pm[0]; i++) {
		void *sentinel = (void *)0x1234, *p = sentinel;
		int r = posix_memalign(&p, opaque(bad_pm[i]), 64);
		CHECK(r == EINVAL, "posix_memalign(&p, %zu, 64) returned %d, expected EINVAL (%d)", bad_pm[i],
		      r, EINVAL);
		CHECK(p == sentinel, "posix_memalign(&p, %zu, 64) failed but changed p to %p", bad_pm[i], p);
	}
	/* a valid but impossible alignment */
	{
		void *sentinel = (void *)0x1234, *p = sentinel;
		int r = posix_memalign(&p, opaque(SIZE_MAX / 2 + 1), 16);
		CHECK(r == ENOMEM || r == EINVAL, "posix_memalign(&p, 2^63, 16) returned %d", r);
		CHECK(p == sentinel, "posix_memalign(&p, 2^63, 16) failed but changed p");
		errno = 0;
		void *q = memalign(opaque(SIZE_MAX / 2 + 1), 16);
		CHECK(!q && (errno == ENOMEM || errno == EINVAL), "memalign(2^63, 16) = %p errno %d", q, errno);
		errno = 0;
		q = aligned_alloc(opaque(SIZE_MAX / 2 + 1), 16);
		CHECK(!q && (errno == ENOMEM || errno == EINVAL), "aligned_alloc(2^63, 16) = %p errno %d", q,
		      errno);
	}
	if (strict) {
		static const size_t bad[] = {3, 5, 6, 12, 24, 48, 100, 1000, 4097, 12288, (1 << 20) + 16,
					     SIZE_MAX};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			EXPECT_NULL_ERRNO(aligned_alloc(opaque(bad[i]), 64), EINVAL, "aligned_alloc(%zu, 64)",
					  bad[i]);
			EXPECT_NULL_ERRNO(memalign(opaque(bad[i]), 64), EINVAL, "memalign(%zu, 64)", bad[i]);
		}
	}
	printf("errors ok\n");
	return 0;
}

/* ---------------------------------------------------------------- semantics */

static long maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void calloc_recycled(size_t n, int count)
{
	void **v = malloc(count * sizeof *v);
	CHECK(v, "malloc of the pointer array failed");
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < count; i++) {
			v[i] = malloc(opaque(n));
			CHECK(v[i], "malloc(%zu) = NULL", n);
			memset(v[i], 0xA5, malloc_usable_size(v[i]));
		}
		for (int i = 0; i < count; i++)
			free(v[i]);
		for (int i = 0; i < count; i++) {
			unsigned char *c = calloc(opaque(n), 1);
			CHECK(c, "calloc(%zu, 1) = NULL", n);
			for (size_t j = 0; j < n; j++)
				if (c[j])
					FAIL("calloc(%zu, 1) of a recycled block: byte %zu is 0x%02x, not zero (round %d, "
					     "block %d)", n, j, c[j], round, i);
			v[i] = c;
		}
		/* and the calloc'd blocks dirty again for the next round, split as nmemb * size */
		for (int i = 0; i < count; i++) {
			memset(v[i], 0x5A, n);
			free(v[i]);
		}
		for (int i = 0; i < count; i++) {
			size_t nm = n >= 8 ? n / 8 : 1, sz = n >= 8 ? 8 : n;
			unsigned char *c = calloc(opaque(nm), opaque(sz));
			CHECK(c, "calloc(%zu, %zu) = NULL", nm, sz);
			for (size_t j = 0; j < nm * sz; j++)
				if (c[j])
					FAIL("calloc(%zu, %zu) of a recycled block: byte %zu is 0x%02x", nm, sz, j, c[j]);
			v[i] = c;
		}
		for (int i = 0; i < count; i++)
			free(v[i]);
	}
	free(v);
}

static int semantics(void)
{
	/* malloc(0): glibc returns a unique, freeable, non-NULL pointer. */
	enum { NZ = 1000 };
	void *z[NZ];
	for (int i = 0; i < NZ; i++) {
		z[i] = malloc(opaque(0));
		CHECK(z[i], "malloc(0) returned NULL (glibc returns a unique pointer)");
		for (int j = 0; j < i; j++)
			CHECK(z[i] != z[j], "malloc(0) returned %p twice while both are live", z[i]);
	}
	for (int i = 0; i < NZ; i++)
		free(z[i]);
	/* realloc(NULL, 0) is malloc(0); realloc(NULL, n) is malloc(n) */
	void *p = realloc(NULL, opaque(0));
	CHECK(p, "realloc(NULL, 0) returned NULL (glibc: malloc(0), a unique pointer)");
	free(p);
	p = realloc(NULL, opaque(300));
	CHECK(p, "realloc(NULL, 300) returned NULL");
	CHECK(malloc_usable_size(p) >= 300, "realloc(NULL, 300): usable size %zu", malloc_usable_size(p));
	fill(p, 300, 9);
	verify(p, 300, 9, "realloc(NULL, 300) block");
	free(p);
	/* calloc(0, n), calloc(n, 0): like malloc(0) */
	p = calloc(opaque(0), 10);
	CHECK(p, "calloc(0, 10) returned NULL");
	free(p);
	p = calloc(10, opaque(0));
	CHECK(p, "calloc(10, 0) returned NULL");
	free(p);

	/* realloc(p, 0) frees p and returns NULL (glibc). That p really is freed shows in the memory use:
	 * 4000 blocks of 256 KiB would be 1 GiB if they were kept, and 20000 blocks of 1000 bytes
	 * another 20 MB. */
	long before = maxrss_kib();
	for (int i = 0; i < 4000; i++) {
		char *q = malloc(opaque(256 << 10));
		CHECK(q, "malloc(256 KiB) = NULL");
		memset(q, i, 256 << 10);
		errno = 0;
		void *r = realloc(q, opaque(0));
		CHECK(r == NULL, "realloc(p, 0) returned %p, expected NULL (glibc frees p)", r);
	}
	for (int i = 0; i < 20000; i++) {
		char *q = malloc(opaque(1000));
		CHECK(q, "malloc(1000) = NULL");
		memset(q, i, 1000);
		void *r = realloc(q, opaque(0));
		CHECK(r == NULL, "realloc(p, 0) returned %p, expected NULL (glibc frees p)", r);
	}
	long grown = maxrss_kib() - before;
	CHECK(grown < 200 * 1024, "realloc(p, 0) does not free p: peak RSS grew by %ld KiB over 4000 "
	      "blocks of 256 KiB and 20000 of 1000 bytes", grown);

	/* free(NULL), malloc_usable_size(NULL) */
	for (int i = 0; i < 1000; i++)
		free(NULL);
	CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));

	/* calloc zeroes, including blocks just freed dirty, small classes to large blocks */
	static const size_t sizes[] = {1, 8, 16, 24, 100, 112, 200, 1000, 1024, 4000, 4096, 10000, 65536,
				       100000, 262144, 262145, 500000, 2u << 20, 5u << 20};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		calloc_recycled(sizes[i], sizes[i] >= (1u << 20) ? 4 : sizes[i] > 65536 ? 16 : 200);

	/* reallocarray works like realloc(p, n * size) */
	int *a = reallocarray(NULL, opaque(10), sizeof(int));
	CHECK(a, "reallocarray(NULL, 10, 4) = NULL");
	for (int i = 0; i < 10; i++)
		a[i] = i * 3;
	a = reallocarray(a, opaque(100000), sizeof(int));
	CHECK(a, "reallocarray(a, 100000, 4) = NULL");
	for (int i = 0; i < 10; i++)
		CHECK(a[i] == i * 3, "reallocarray lost element %d", i);
	for (int i = 10; i < 100000; i++)
		a[i] = i * 3;
	a = reallocarray(a, opaque(5), sizeof(int));
	CHECK(a, "reallocarray(a, 5, 4) = NULL");
	for (int i = 0; i < 5; i++)
		CHECK(a[i] == i * 3, "reallocarray shrink lost element %d", i);
	free(a);

	/* realloc to the same size and to a slightly smaller one keeps the content */
	char *s = malloc(opaque(777));
	CHECK(s, "malloc(777) = NULL");
	fill(s, 777, 11);
	s = realloc(s, opaque(777));
	CHECK(s, "realloc same size = NULL");
	verify(s, 777, 11, "realloc to the same size");
	s = realloc(s, opaque(700));
	CHECK(s, "realloc smaller = NULL");
	verify(s, 700, 11, "realloc to a smaller size");
	free(s);
	printf("semantics ok\n");
	return 0;
}

/* ---------------------------------------------------------------- reuse */

static int reuse(void)
{
	enum { N = 40000 };
	static char *v[N];
	long base = maxrss_kib();
	uint64_t x = 12345;
	for (int round = 0; round < 30; round++) {
		size_t total = 0;
		int n = 0;
		while (total < (48u << 20) && n < N) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			size_t s = (x >> 33) % 16 == 0 ? 4096 + (x >> 20) % 200000 : 1 + (x >> 24) % 1500;
			v[n] = malloc(opaque(s));
			CHECK(v[n], "malloc(%zu) = NULL in round %d", s, round);
			memset(v[n], round, s);
			total += s;
			n++;
		}
		for (int i = 0; i < n; i++)
			free(v[i]);
	}
	long grown = maxrss_kib() - base;
	CHECK(grown < 400 * 1024, "30 rounds of 48 MiB allocated and freed took a peak RSS of %ld MiB: freed "
	      "memory is not reused", grown / 1024);
	for (int i = 0; i < 1500; i++) {
		char *p = malloc(opaque((4u << 20) + 64 * i));
		CHECK(p, "malloc(4 MiB) = NULL");
		for (size_t j = 0; j < (4u << 20); j += 4096)
			p[j] = (char)i;
		free(p);
	}
	grown = maxrss_kib() - base;
	CHECK(grown < 600 * 1024, "1500 large blocks of 4 MiB, each freed: peak RSS grew by %ld MiB", grown / 1024);
	printf("reuse ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "resolve"))
		return resolve();
	if (argc >= 2 && !strcmp(argv[1], "errors"))
		return errors(argc >= 3 && !strcmp(argv[2], "strict"));
	if (argc >= 2 && !strcmp(argv[1], "semantics"))
		return semantics();
	if (argc >= 2 && !strcmp(argv[1], "reuse"))
		return reuse();
	fprintf(stderr, "usage: %s resolve|errors [strict]|semantics|reuse\n", argv[0]);
	return 2;
}
