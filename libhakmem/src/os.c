/*
 * Memory from the kernel. The only file that calls mmap, munmap and madvise, so that every memory
 * syscall the allocator makes is counted (calls and bytes, in the calling thread's counters block,
 * reported by `flush` and HAKMEM_STATS) in one place.
 */
#include <sys/mman.h>
#include <time.h>

#include "internal.h"

/* Every call counts; its bytes only if it succeeded, so that mapped (mmap less munmap bytes) is what
 * the allocator really holds, the sum of the memory layers. */
static void count(enum hakmem_os_call call, size_t bytes)
{
	hak_tc.counters.os_calls[call]++;
	hak_tc.counters.os_bytes[call] += bytes;
	hak_stats_flush_soon();
}

static void *mapped(void *p, size_t bytes)
{
	count(HAKMEM_OS_MMAP, p == MAP_FAILED ? 0 : bytes);
	return p == MAP_FAILED ? NULL : p;
}

void *hak_os_map(size_t bytes)
{
	return mapped(mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), bytes);
}

void hak_os_unmap(void *p, size_t bytes)
{
	munmap(p, bytes);
	count(HAKMEM_OS_MUNMAP, bytes);
}

void hak_os_purge(void *p, size_t bytes)
{
	madvise(p, bytes, MADV_DONTNEED);
	count(HAKMEM_OS_MADVISE, bytes);
}

/* Where the kernel's THP mode is `madvise` (or `always`), the range is then backed by 2 MiB pages as
 * it is touched: fewer TLB misses on big heaps, at the price of RSS growing 2 MiB at a time. */
void hak_os_want_huge_pages(void *p, size_t bytes)
{
	madvise(p, bytes, MADV_HUGEPAGE);
	count(HAKMEM_OS_MADVISE, bytes);
}

/* Where the next aligned mapping is asked for. The kernel places a mapping at the hint when that
 * range is free, and successive batches of SuperSlabs then cost one mmap each instead of the map-then-trim
 * dance (three syscalls); only when the hint is taken do we over-map and trim once, and move on. */
static _Atomic uintptr_t aligned_hint = (uintptr_t)0x200000000000ULL;

void *hak_os_map_aligned(size_t bytes, size_t align)
{
	uintptr_t hint = atomic_fetch_add(&aligned_hint, bytes);
	void *p = mapped(mmap((void *)hint, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), bytes);
	if (!p)
		return NULL;
	if (((uintptr_t)p & (align - 1)) == 0)
		return p;
	hak_os_unmap(p, bytes);
	char *raw = hak_os_map(bytes + align);
	if (!raw)
		return NULL;
	char *aligned = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	if (aligned > raw)
		hak_os_unmap(raw, aligned - raw);
	size_t tail = (raw + bytes + align) - (aligned + bytes);
	if (tail)
		hak_os_unmap(aligned + bytes, tail);
	atomic_store(&aligned_hint, (uintptr_t)aligned + bytes);
	return aligned;
}

uint64_t hak_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}
