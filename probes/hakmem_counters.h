/*
 * The counters block that libhakmem's `flush` probe points at, and the names of its indices.
 *
 * Shared, as one source of truth, by the allocator (libhakmem/, C11, userspace) and by hakwatch's BPF
 * program (probes/hakwatch.bpf.c, compiled by bcc), which copies the block with bpf_probe_read_user
 * and adds it to per-process totals. Both compile this file, so it uses only __u64 from
 * <linux/types.h> and plain enums. hakwatch's Python side reads HAKMEM_CLASS_SIZES and the *_NAMES
 * lists from this text (hakwatch/layout.py); keep each of them on one line.
 *
 * Every field is a delta since the thread's previous flush: the allocator fires `flush`, then zeroes
 * the block, so a consumer only ever adds. Bump HAKMEM_COUNTERS_VERSION on any layout change.
 */
#ifndef HAKMEM_COUNTERS_H
#define HAKMEM_COUNTERS_H

#include <linux/types.h>

#define HAKMEM_COUNTERS_VERSION 1

/* Block sizes of the size classes, in bytes, smallest first. Every class is a multiple of 16 so any
 * block meets malloc's fundamental alignment. Requests above the last class are large blocks. */
#define HAKMEM_NUM_CLASSES 52
#define HAKMEM_CLASS_SIZES 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072, 163840, 196608, 229376, 262144
#define HAKMEM_MAX_CLASS_SIZE 262144

/* allocs[] has one more slot after the classes: blocks served as large blocks. */
#define HAKMEM_ALLOC_SLOT_LARGE HAKMEM_NUM_CLASSES
#define HAKMEM_ALLOC_SLOT_NAME_LARGE "large"

/* Refill stages, in the order a thread-cache miss tries them. */
enum hakmem_stage {
	HAKMEM_STAGE_LOCAL,	/* the slab's local free list */
	HAKMEM_STAGE_REMOTE,	/* the slab's remote-free queue, drained by one exchange */
	HAKMEM_STAGE_CARVE,	/* fresh, never used blocks of the slab */
	HAKMEM_STAGE_SLAB,	/* a new slab from the thread's SuperSlabs */
	HAKMEM_STAGE_LRU,	/* a cached, empty SuperSlab from the LRU */
	HAKMEM_STAGE_MAP,	/* a newly mapped SuperSlab */
	HAKMEM_NUM_STAGES
};
#define HAKMEM_STAGE_NAMES "local", "remote", "carve", "slab", "lru", "map"

/* Free routes: every free() of a block counts once, in exactly one route. */
enum hakmem_route {
	HAKMEM_ROUTE_TLS_SLL,	/* pushed to the freeing thread's cache */
	HAKMEM_ROUTE_SS_LOCAL,	/* returned to its slab by the slab's owner */
	HAKMEM_ROUTE_SS_REMOTE,	/* queued on the slab's remote-free queue by another thread */
	HAKMEM_ROUTE_LARGE,	/* a large block */
	HAKMEM_NUM_ROUTES
};
#define HAKMEM_ROUTE_NAMES "tls_sll", "ss_local", "ss_remote", "large"

/* The memory syscalls the allocator itself makes (all of them go through libhakmem/src/os.c). */
enum hakmem_os_call {
	HAKMEM_OS_MMAP,
	HAKMEM_OS_MUNMAP,
	HAKMEM_OS_MADVISE,
	HAKMEM_NUM_OS_CALLS
};
#define HAKMEM_OS_CALL_NAMES "mmap", "munmap", "madvise"

struct hakmem_counters {
	__u64 allocs[HAKMEM_NUM_CLASSES + 1];			/* blocks handed out, per class, then large */
	__u64 frees[HAKMEM_NUM_ROUTES];				/* blocks released, per route */
	__u64 refills[HAKMEM_NUM_CLASSES][HAKMEM_NUM_STAGES];	/* thread-cache refills, per class and serving stage */
	__u64 refill_objects[HAKMEM_NUM_CLASSES];		/* blocks those refills brought, per class */
	__u64 os_calls[HAKMEM_NUM_OS_CALLS];			/* the allocator's own memory syscalls */
	__u64 os_bytes[HAKMEM_NUM_OS_CALLS];			/* and the bytes they covered */
};

#endif
