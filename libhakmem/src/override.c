/*
 * The exported names of the malloc API, nothing else: argument checks that POSIX and C specify, then
 * the allocator proper. malloc and free are other names of hak_malloc and hak_free (alloc.c, free.c):
 * a wrapper would cost each call a jump.
 */
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

static bool pow2(size_t a)
{
	return a && !(a & (a - 1));
}

HAK_API void *calloc(size_t count, size_t size)
{
	return hak_calloc(count, size);
}

HAK_API void *realloc(void *p, size_t n)
{
	return hak_realloc(p, n);
}

HAK_API void *reallocarray(void *p, size_t count, size_t size)
{
	size_t n;
	if (__builtin_mul_overflow(count, size, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return hak_realloc(p, n);
}

HAK_API int posix_memalign(void **out, size_t align, size_t n)
{
	if (!pow2(align) || align % sizeof(void *))
		return EINVAL;
	int saved = errno;
	void *p = hak_aligned(align, n);
	if (!p) {
		int e = errno;
		errno = saved;
		return e;
	}
	*out = p;
	return 0;
}

HAK_API void *aligned_alloc(size_t align, size_t n)
{
	if (!pow2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return hak_aligned(align, n);
}

HAK_API void *memalign(size_t align, size_t n)
{
	return aligned_alloc(align, n);
}

HAK_API void *valloc(size_t n)
{
	return hak_aligned(4096, n);
}

HAK_API void *pvalloc(size_t n)
{
	if (n > PTRDIFF_MAX) {
		errno = ENOMEM;
		return NULL;
	}
	return hak_aligned(4096, (n + 4095) & ~(size_t)4095);
}

HAK_API size_t malloc_usable_size(void *p)
{
	return hak_usable_size(p);
}

/* glibc's extension: give back what can be given back now. Here that is every empty SuperSlab in the
 * LRU (purged: the mapping stays, the pages go) and every cached large block (unmapped); `pad` has no
 * meaning for an allocator without a heap top. Returns 1 if memory was released, as glibc does. */
HAK_API int malloc_trim(size_t pad)
{
	hak_ensure_init();
	size_t released = hak_ss_trim() + hak_large_trim();
	hak_stats_flush_thread(&hak_tc); /* the gauges show it at once, and a thread without a heap
					     * (no exit-time flush) loses nothing */
	return released != 0;
}
