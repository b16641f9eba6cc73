/*
 * C++'s operator new and delete, every replaceable form, under their mangled names: preloaded, they
 * take the place of libstdc++'s, which call malloc through the PLT inside a new-handler loop (in
 * mimalloc-bench's alloc-test, libstdc++'s wrappers alone were 1.1 of hakmem's 3.1 billion
 * instructions of allocation work). tcmalloc, jemalloc and mimalloc replace them the same way.
 *
 * The standard's failure behaviour (call the new-handler until it gives up, then throw bad_alloc, or
 * return null for the nothrow forms) needs C++; so when the allocator has no memory, the call goes
 * on to the next definition of the same operator (libstdc++'s), which retries through our malloc and
 * does all of that. Sizes and alignments passed to delete are not needed: free finds both.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* The operator `name` defined after us (libstdc++'s), to be called with our arguments: it retries,
 * calls the new-handler, throws. Without one (no libstdc++ in the process: nothing would call ours
 * either), out of memory is fatal, as an uncaught bad_alloc would be. */
static HAK_NOINLINE void *next_new(const char *name)
{
	void *next = dlsym(RTLD_NEXT, name);
	if (!next) {
		static const char msg[] = "hakmem: out of memory in operator new, and no libstdc++ to throw\n";
		(void)!write(2, msg, sizeof msg - 1);
		abort();
	}
	return next;
}

/* new(size_t) and new[](size_t) with no memory (alloc.c's hak_new): libstdc++'s new[] is its new. */
void *hak_new_failed(size_t n)
{
	return ((void *(*)(size_t))next_new("_Znwm"))(n);
}

/* malloc's fast path, inline in hak_new: these are one jump. */
#define NEW(mangled) \
	HAK_API void *mangled(size_t n) \
	{ \
		return hak_new(n); \
	}
#define NEW_NOTHROW(mangled) \
	HAK_API void *mangled(size_t n, const void *nothrow) \
	{ \
		void *p = hak_malloc(n); \
		return likely(p) ? p : ((void *(*)(size_t, const void *))next_new(#mangled))(n, nothrow); \
	}
#define NEW_ALIGNED(mangled) \
	HAK_API void *mangled(size_t n, size_t align) \
	{ \
		void *p = hak_aligned(align, n); \
		return likely(p) ? p : ((void *(*)(size_t, size_t))next_new(#mangled))(n, align); \
	}
#define NEW_ALIGNED_NOTHROW(mangled) \
	HAK_API void *mangled(size_t n, size_t align, const void *nothrow) \
	{ \
		void *p = hak_aligned(align, n); \
		return likely(p) ? p : ((void *(*)(size_t, size_t, const void *))next_new(#mangled))(n, align, nothrow); \
	}
#define DELETE(mangled) \
	HAK_API void mangled(void *p) \
	{ \
		hak_free(p); \
	}

NEW(_Znwm)				/* new(size_t) */
NEW(_Znam)				/* new[](size_t) */
NEW_NOTHROW(_ZnwmRKSt9nothrow_t)	/* new(size_t, nothrow_t const&) */
NEW_NOTHROW(_ZnamRKSt9nothrow_t)
NEW_ALIGNED(_ZnwmSt11align_val_t)	/* new(size_t, align_val_t) */
NEW_ALIGNED(_ZnamSt11align_val_t)
NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t)
NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t)

DELETE(_ZdlPv)				/* delete(void*) */
DELETE(_ZdaPv)
DELETE(_ZdlPvm)				/* delete(void*, size_t) */
DELETE(_ZdaPvm)
DELETE(_ZdlPvRKSt9nothrow_t)
DELETE(_ZdaPvRKSt9nothrow_t)
DELETE(_ZdlPvSt11align_val_t)
DELETE(_ZdaPvSt11align_val_t)
DELETE(_ZdlPvmSt11align_val_t)
DELETE(_ZdaPvmSt11align_val_t)
DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t)
DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t)
