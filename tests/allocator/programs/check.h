/*
 * What the test programs share: FAIL and CHECK (one line on stderr, exit 1), opaque(), and the pattern
 * blocks are written with and checked by, fill() and first_bad(). For programs that may use stdio:
 * alloc_live.c, alloc_stats.c and alloc_large.c report through write(2) alone (see theirs).
 */
#ifndef ALLOCATOR_PROGRAMS_CHECK_H
#define ALLOCATOR_PROGRAMS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAIL(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)
#define CHECK(cond, ...) do { if (!(cond)) FAIL(__VA_ARGS__); } while (0)

/* Keeps the compiler from reasoning about sizes (and from warning about absurd ones). */
static inline size_t opaque(size_t x) { volatile size_t v = x; return v; }

/* The pattern of a seed, in 64-bit words (fast enough for MiB blocks): the word at byte offset `at`, a
 * multiple of 8. */
static inline uint64_t pattern_word(uint64_t seed, size_t at)
{
	return (seed * 0x9E3779B97F4A7C15ull + 1) ^ (at * 0xD6E8FEB86659FD93ull);
}

/* Byte i is the byte it has in its word (little-endian), also in a block's partial last word: the
 * pattern of n bytes is the start of the pattern of any longer block, as realloc's checks need. */
static inline unsigned char pattern_byte(uint64_t seed, size_t i)
{
	return (unsigned char)(pattern_word(seed, i & ~(size_t)7) >> (i % 8 * 8));
}

static inline void fill(void *p, size_t n, uint64_t seed)
{
	unsigned char *c = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t v = pattern_word(seed, i);
		memcpy(c + i, &v, 8);
	}
	for (; i < n; i++)
		c[i] = pattern_byte(seed, i);
}

/* The first of n bytes at p that is not fill()'s, SIZE_MAX when there is none. */
static inline size_t first_bad(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *c = p;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t got;
		memcpy(&got, c + i, 8);
		if (got != pattern_word(seed, i))
			break; /* the bytes of this word say which one */
	}
	for (; i < n; i++)
		if (c[i] != pattern_byte(seed, i))
			return i;
	return SIZE_MAX;
}

#endif
