/*
 * C++'s operator new and delete, every replaceable form, under their mangled names: preloaded, they
 * take the place of libstdc++'s, which call malloc through the PLT inside a new-handler loop (in
 * mimalloc-bench's alloc-test, libstdc++'s wrappers alone were 1.1 of hakmem's 3.1 billion
 * instructions of allocation work). tcmalloc, jemalloc and mimalloc replace them the same way.
 *
 * What needs C++ is left to libstdc++, whose same operator is called with our arguments ("the next
 * one"): the standard's failure behaviour (call the new-handler until it gives up, then throw
 * bad_alloc, or return null for the nothrow forms), alignments that are no power of two, and
 * programs that replace operator new(size_t) or delete(void*) themselves: the standard has the other
 * forms call the program's pair, so ours then step aside for libstdc++'s, which do. Sizes and
 * alignments passed to delete are not needed: free finds both.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

/* An exported operator: declared as C++'s <new> declares it (C cannot include <new>), then defined.
 * Every other function here has its declaration in internal.h, or is static (-Wmissing-prototypes). */
#define OPERATOR(ret, mangled, params) HAK_API ret mangled params; HAK_API ret mangled params

/* libstdc++'s operator `name`: the one after ours, or (libstdc++ loaded by dlopen, out of
 * RTLD_NEXT's reach) the loaded libstdc++'s; NULL when there is none. */
static HAK_NOINLINE void *next_operator(const char *name)
{
	void *next = dlsym(RTLD_NEXT, name);
	if (!next) {
		void *lib = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
		if (lib)
			next = dlsym(lib, name);
	}
	return next;
}

/* The next operator new, to be called when it must throw: with none, an uncaught bad_alloc. */
static HAK_NOINLINE void *next_new(const char *name)
{
	void *next = next_operator(name);
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

/* The program's operator new(size_t) wins over this one when it has its own; so does its delete. */
OPERATOR(void *, _Znwm, (size_t n))
{
	return hak_new(n);
}

OPERATOR(void, _ZdlPv, (void *p))
{
	hak_free(p);
}

/* Their addresses here, which interposition does not change. */
extern void *our_new(size_t n) __attribute__((alias("_Znwm"), visibility("hidden")));
extern void our_delete(void *p) __attribute__((alias("_ZdlPv"), visibility("hidden")));

/* Whether the program replaced operator new(size_t) or delete(void*): then the other forms must
 * reach its pair, and ours step aside. Found at the first call of one of them. */
static _Atomic int replaced = -1; /* -1 not known yet */

static HAK_NOINLINE bool find_replaced(void)
{
	void *new = dlsym(RTLD_DEFAULT, "_Znwm"), *del = dlsym(RTLD_DEFAULT, "_ZdlPv");
	int r = (new && new != (void *)our_new) || (del && del != (void *)our_delete);
	atomic_store_explicit(&replaced, r, memory_order_relaxed);
	return r;
}

static inline bool program_replaced(void)
{
	int r = atomic_load_explicit(&replaced, memory_order_relaxed);
	return unlikely(r) && (r > 0 || find_replaced());
}

/* The others: ours, or libstdc++'s when the program replaced the pair. */
static HAK_NOINLINE void *new_array_unusual(size_t n)
{
	if (program_replaced()) {
		static void *next;
		if (!next)
			next = next_new("_Znam");
		return ((void *(*)(size_t))next)(n);
	}
	return hak_new(n);
}

OPERATOR(void *, _Znam, (size_t n)) /* new[](size_t) */
{
	if (unlikely(atomic_load_explicit(&replaced, memory_order_relaxed)))
		return new_array_unusual(n);
	return hak_new(n);
}

/* The nothrow forms return null where nothing can throw. */
#define NEW_NOTHROW(mangled) \
	OPERATOR(void *, mangled, (size_t n, const void *nothrow)) \
	{ \
		void *p = program_replaced() ? NULL : hak_malloc(n); \
		if (likely(p)) \
			return p; \
		void *(*next)(size_t, const void *) = (void *(*)(size_t, const void *))next_operator(#mangled); \
		return next ? next(n, nothrow) : NULL; \
	}
#define NEW_ALIGNED(mangled) \
	OPERATOR(void *, mangled, (size_t n, size_t align)) \
	{ \
		void *p = program_replaced() || (align & (align - 1)) ? NULL : hak_aligned(align, n); \
		return likely(p) ? p : ((void *(*)(size_t, size_t))next_new(#mangled))(n, align); \
	}
#define NEW_ALIGNED_NOTHROW(mangled) \
	OPERATOR(void *, mangled, (size_t n, size_t align, const void *nothrow)) \
	{ \
		void *p = program_replaced() || (align & (align - 1)) ? NULL : hak_aligned(align, n); \
		if (likely(p)) \
			return p; \
		void *(*next)(size_t, size_t, const void *) = \
			(void *(*)(size_t, size_t, const void *))next_operator(#mangled); \
		return next ? next(n, align, nothrow) : NULL; \
	}
/* A delete's extra arguments (size, alignment, nothrow tag) as they came: passed on, or ignored.
 * The usual case is a load, a test and a jump to free; the rest is out of line. */
#define DELETE(mangled, params, type, ...) \
	static HAK_NOINLINE void mangled##_unusual params \
	{ \
		if (program_replaced()) { \
			static void *next; \
			if (!next) \
				next = next_new(#mangled); \
			((type)next)(__VA_ARGS__); \
		} else { \
			hak_free(p); \
		} \
	} \
	OPERATOR(void, mangled, params) \
	{ \
		if (unlikely(atomic_load_explicit(&replaced, memory_order_relaxed))) { \
			mangled##_unusual(__VA_ARGS__); \
			return; \
		} \
		hak_free(p); \
	}

NEW_NOTHROW(_ZnwmRKSt9nothrow_t)	/* new(size_t, nothrow_t const&) */
NEW_NOTHROW(_ZnamRKSt9nothrow_t)
NEW_ALIGNED(_ZnwmSt11align_val_t)	/* new(size_t, align_val_t) */
NEW_ALIGNED(_ZnamSt11align_val_t)
NEW_ALIGNED_NOTHROW(_ZnwmSt11align_val_tRKSt9nothrow_t)
NEW_ALIGNED_NOTHROW(_ZnamSt11align_val_tRKSt9nothrow_t)

typedef const void *tag;
DELETE(_ZdaPv, (void *p), void (*)(void *), p)
DELETE(_ZdlPvm, (void *p, size_t n), void (*)(void *, size_t), p, n)
DELETE(_ZdaPvm, (void *p, size_t n), void (*)(void *, size_t), p, n)
DELETE(_ZdlPvRKSt9nothrow_t, (void *p, tag t), void (*)(void *, tag), p, t)
DELETE(_ZdaPvRKSt9nothrow_t, (void *p, tag t), void (*)(void *, tag), p, t)
DELETE(_ZdlPvSt11align_val_t, (void *p, size_t a), void (*)(void *, size_t), p, a)
DELETE(_ZdaPvSt11align_val_t, (void *p, size_t a), void (*)(void *, size_t), p, a)
DELETE(_ZdlPvmSt11align_val_t, (void *p, size_t n, size_t a), void (*)(void *, size_t, size_t), p, n, a)
DELETE(_ZdaPvmSt11align_val_t, (void *p, size_t n, size_t a), void (*)(void *, size_t, size_t), p, n, a)
DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t a, tag t), void (*)(void *, size_t, tag), p, a, t)
DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t a, tag t), void (*)(void *, size_t, tag), p, a, t)
