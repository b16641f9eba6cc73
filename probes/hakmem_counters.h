/*
 * The counters block that libhakmem's `flush` probe points at, and the names of its indices.
 *
 * Shared, as one source of truth, by the allocator (libhakmem/, C11, userspace) and by hakwatch's BPF
 * program (probes/hakwatch.bpf.c, compiled by bcc), which copies blocks with bpf_probe_read_user. Both
 * compile this file, so it uses only __u64 from <linux/types.h> and plain enums. hakwatch's Python
 * side reads the #defines, the *_NAMES lists and the fields of struct hakmem_counters from this text
 * (hakwatch/contract/layout.py): keep each #define on one line and each field on one line of its own.
 *
 * Every field is a cumulative count. A thread adds to its own block; `flush` hands the block over as
 * a delta (the allocator adds it to the process totals, fires the probe, then zeroes the block), so
 * a consumer that saw every flush only ever adds. (The allocator counts allocs[] of a class at the
 * flush, from its thread cache's length, not as blocks go: the fast path has one counter fewer.) The probe's second argument is the process totals
 * (struct hakmem_totals), with this delta already in: a consumer that has never seen the process
 * starts from them. Every
 * gauge (live bytes, the memory layers, SuperSlabs in use) is a difference of these counts: see
 * DESIGN.md, "The memory layers". Bump HAKMEM_COUNTERS_VERSION on any layout change.
 */
#ifndef HAKMEM_COUNTERS_H
#define HAKMEM_COUNTERS_H

#include <linux/types.h>

#define HAKMEM_COUNTERS_VERSION 3

/* Block sizes of the size classes, in bytes, smallest first. Every class is a multiple of 16 so any
 * block meets malloc's fundamental alignment. Requests above the last class are large blocks. */
#define HAKMEM_NUM_CLASSES 52
#define HAKMEM_CLASS_SIZES 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072, 163840, 196608, 229376, 262144
#define HAKMEM_MAX_CLASS_SIZE 262144

/* allocs[] and frees[] have one more slot after the classes: large blocks. */
#define HAKMEM_SLOT_LARGE HAKMEM_NUM_CLASSES
#define HAKMEM_SLOT_NAME_LARGE "large"

/* SuperSlab geometry, which the memory layers are computed with. The header takes page 0 (64 KiB)
 * whole: its first 4 KiB hold the metadata and the rest is never used, so that no block lies in the
 * page a wild pointer into the header would name (free() tells such a pointer by its page alone). */
#define HAKMEM_SUPERSLAB_BYTES 2097152
#define HAKMEM_SUPERSLAB_HEADER_BYTES 65536

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

/* Free routes: every free() of a block takes exactly one. The block counts frees by class and route:
 * frees[] those of the thread-cache route (tls_sll) and large blocks, slab_frees[] the two slab routes,
 * so that the fast path adds to one counter and a slow free to one other. */
enum hakmem_route {
	HAKMEM_ROUTE_TLS_SLL,	/* pushed to the freeing thread's cache */
	HAKMEM_ROUTE_SS_LOCAL,	/* returned to its slab by the slab's owner */
	HAKMEM_ROUTE_SS_REMOTE,	/* queued on the slab's remote-free queue by another thread */
	HAKMEM_ROUTE_LARGE,	/* a large block */
	HAKMEM_NUM_ROUTES
};
#define HAKMEM_ROUTE_NAMES "tls_sll", "ss_local", "ss_remote", "large"

/* The slab routes, the second index of slab_frees[]. */
enum hakmem_slab_route {
	HAKMEM_SLAB_LOCAL,
	HAKMEM_SLAB_REMOTE,
	HAKMEM_NUM_SLAB_ROUTES
};

/* The memory syscalls the allocator itself makes (all of them go through libhakmem/src/os.c). */
enum hakmem_os_call {
	HAKMEM_OS_MMAP,
	HAKMEM_OS_MUNMAP,
	HAKMEM_OS_MADVISE,
	HAKMEM_NUM_OS_CALLS
};
#define HAKMEM_OS_CALL_NAMES "mmap", "munmap", "madvise"

/* SuperSlab events (each also fires its own probe, ss_<name>). */
enum hakmem_ss_event {
	HAKMEM_SS_MAP,		/* handed out fresh from a mapping */
	HAKMEM_SS_UNMAP,	/* given back to the kernel */
	HAKMEM_SS_LRU_PUT,	/* empty, kept in the LRU */
	HAKMEM_SS_LRU_HIT,	/* taken back from the LRU */
	HAKMEM_SS_LRU_EVICT,	/* pushed out of the LRU (then unmapped) */
	HAKMEM_SS_MADVISE,	/* an LRU entry's pages purged (MADV_DONTNEED) */
	HAKMEM_SS_UNPURGE,	/* a purged entry left the LRU (hit or evicted) */
	HAKMEM_NUM_SS_EVENTS
};
#define HAKMEM_SS_EVENT_NAMES "map", "unmap", "lru_put", "lru_hit", "lru_evict", "madvise", "unpurge"

/* Large-block events (each also fires its own probe, large_<name>); blocks served from or returned to
 * the large-block cache are not events. */
enum hakmem_large_event {
	HAKMEM_LARGE_MAP,
	HAKMEM_LARGE_UNMAP,
	HAKMEM_NUM_LARGE_EVENTS
};
#define HAKMEM_LARGE_EVENT_NAMES "map", "unmap"

/* Byte counts, the index of bytes[]. Each layer of DESIGN.md's identity is a sum of these (and of the
 * block counts times class sizes); a pair named _in/_out is a gauge's ups and downs. */
enum hakmem_bytes {
	HAKMEM_B_REQUESTED,		/* asked for by the program (malloc's argument) */
	HAKMEM_B_LARGE_ALLOC,		/* large blocks handed out (their mapping's size) */
	HAKMEM_B_LARGE_FREE,		/* large blocks freed */
	HAKMEM_B_LARGE_MAP,		/* large-block mappings made */
	HAKMEM_B_LARGE_UNMAP,		/* large-block mappings given back */
	HAKMEM_B_SS_RESERVED,		/* SuperSlab address space mapped (whole batches) */
	HAKMEM_B_REMOTE_DRAINED,	/* queued blocks taken back into their slab's free list */
	HAKMEM_B_CACHE_RETURNED,	/* blocks a thread cache gave back to their slabs */
	HAKMEM_B_CARVED,		/* fresh blocks cut from slabs */
	HAKMEM_B_SLAB_IN,		/* slabs made: their pages */
	HAKMEM_B_SLAB_OUT,		/* slabs released */
	HAKMEM_B_SLAB_OUT_CARVED,	/* the carved blocks of released slabs (all on the free list) */
	HAKMEM_B_METADATA,		/* mappings for the allocator's own bookkeeping (thread heaps) */
	HAKMEM_B_TOUCHED_IN,		/* SuperSlab memory first written (4 KiB pages) */
	HAKMEM_B_TOUCHED_OUT,		/* touched SuperSlab memory purged or unmapped */
	HAKMEM_NUM_BYTES
};
#define HAKMEM_BYTES_NAMES "requested", "large_alloc", "large_free", "large_map", "large_unmap", "ss_reserved", "remote_drained", "cache_returned", "carved", "slab_in", "slab_out", "slab_out_carved", "metadata", "touched_in", "touched_out"

/* Heap misuse the allocator detected (DESIGN.md, "Heap misuse"): each is reported on stderr, counted
 * here, flushed at once and fires the heap_error probe; then the process aborts, or, with
 * HAKMEM_HEAP_ERRORS=report, goes on with the block leaked. */
enum hakmem_heap_error {
	HAKMEM_HEAP_DOUBLE_FREE,	/* a block freed again while free */
	HAKMEM_HEAP_INVALID_POINTER,	/* freed or reallocated, not the start of a block of ours */
	HAKMEM_HEAP_CORRUPT_FREE_LIST,	/* a free-list link that does not decode to a free block of its slab */
	HAKMEM_NUM_HEAP_ERRORS
};
#define HAKMEM_HEAP_ERROR_NAMES "double_free", "invalid_pointer", "corrupt_free_list"

struct hakmem_counters {
	__u64 allocs[HAKMEM_NUM_CLASSES + 1];			/* blocks handed out, per class, then large (see below) */
	__u64 frees[HAKMEM_NUM_CLASSES + 1];			/* blocks freed to the thread cache, per class, then large */
	__u64 slab_frees[HAKMEM_NUM_CLASSES][HAKMEM_NUM_SLAB_ROUTES];	/* blocks freed to a slab, per class: ss_local, ss_remote */
	__u64 refills[HAKMEM_NUM_CLASSES][HAKMEM_NUM_STAGES];	/* thread-cache refills, per class and serving stage */
	__u64 refill_objects[HAKMEM_NUM_CLASSES];		/* blocks those refills brought, per class */
	__u64 os_calls[HAKMEM_NUM_OS_CALLS];			/* the allocator's own memory syscalls */
	__u64 os_bytes[HAKMEM_NUM_OS_CALLS];			/* and the bytes they covered */
	__u64 ss_events[HAKMEM_NUM_SS_EVENTS];			/* SuperSlab events */
	__u64 large_events[HAKMEM_NUM_LARGE_EVENTS];		/* large-block mappings made and given back */
	__u64 bytes[HAKMEM_NUM_BYTES];				/* byte counts of enum hakmem_bytes */
	__u64 heap_errors[HAKMEM_NUM_HEAP_ERRORS];		/* heap misuse detected, by kind */
};

/* The process totals, exported by libhakmem as the symbol `hakmem_totals`, for a consumer that
 * reads them from the process's memory. `seq` is a seqlock over everything struct hakmem_state_map
 * leads to: odd while a flush adds a block to the totals (or to the exited threads' batch) and zeroes
 * it, and while a thread joins or leaves the list of threads. Each flush's probe fires inside that
 * window, after its add, with the totals as its second argument and a seq of its own (odd, larger
 * than any before): totals read with an even seq E hold every flush below E and none above. */
struct hakmem_totals {
	__u64 seq;
	struct hakmem_counters counters;
};

/* Where a reader outside the process finds what its threads have not flushed yet (DESIGN.md,
 * "Readings"): exported by libhakmem as the symbol `hakmem_state_map`, addresses filled in by the
 * loader. Everything it leads to is stable while hakmem_totals.seq is even and unchanged. Per thread
 * (a list of heaps, each pointing at its thread's cache): the counters block since its last flush,
 * and what the flush would work allocs[] and bytes[requested] out from (hakmem_counters.h's opening
 * comment): allocs[c] += refill_objects[c] + frees[c] - returned[c] - (limit[c] - room[c] -
 * flushed_len[c]), requested += sample_base - sample_left. One __u64 field a line (hakwatch/contract/layout.py
 * reads them). */
#define HAKMEM_STATE_MAP_VERSION 1
#define HAKMEM_STATE_MAP_SYMBOL "hakmem_state_map"
#define HAKMEM_MAX_THREADS 65536	/* a longer list of threads is corrupt: a reader stops there */
struct hakmem_state_map {
	__u64 version;			/* HAKMEM_STATE_MAP_VERSION */
	__u64 totals;			/* address of hakmem_totals */
	__u64 exited;			/* address of the exited threads' batch (struct hakmem_counters) */
	__u64 threads;			/* address of the pointer to the first heap (0: none) */
	__u64 thread_changes;		/* address of a __u64 bumped each time a thread joins or leaves the list */
	__u64 heap_next;		/* offset in a heap of the pointer to the next one */
	__u64 heap_cache;		/* offset in a heap of the pointer to its thread's cache */
	__u64 cache_bytes;		/* size of a thread's cache */
	__u64 cache_counters;		/* offsets in it: the counters block */
	__u64 cache_limit;		/* __u32[HAKMEM_NUM_CLASSES] */
	__u64 cache_room;		/* __u32[HAKMEM_NUM_CLASSES] */
	__u64 cache_flushed_len;	/* __u32[HAKMEM_NUM_CLASSES] */
	__u64 cache_returned;		/* __u32[HAKMEM_NUM_CLASSES] */
	__u64 cache_sample_left;	/* __u64 */
	__u64 cache_sample_base;	/* __u64 */
	__u64 cache_flush_seq;		/* __u64: the totals' seq when the thread joined the list or last flushed */
};

/* The memory layers, in stacking order: every byte the allocator has mapped is in exactly one, and
 * each is a difference of the counts above (DESIGN.md, "The memory layers"). */
#define HAKMEM_LAYER_NAMES "live", "thread_cache", "remote_free", "slab_free", "never_carved", "free_pages", "superslab_lru", "superslab_purged", "superslab_reserved", "large_cache", "metadata"
enum hakmem_layer {
	HAKMEM_LAYER_LIVE,
	HAKMEM_LAYER_THREAD_CACHE,
	HAKMEM_LAYER_REMOTE_FREE,
	HAKMEM_LAYER_SLAB_FREE,
	HAKMEM_LAYER_NEVER_CARVED,
	HAKMEM_LAYER_FREE_PAGES,
	HAKMEM_LAYER_SUPERSLAB_LRU,
	HAKMEM_LAYER_SUPERSLAB_PURGED,
	HAKMEM_LAYER_SUPERSLAB_RESERVED,
	HAKMEM_LAYER_LARGE_CACHE,
	HAKMEM_LAYER_METADATA,
	HAKMEM_NUM_LAYERS
};

#define HAKMEM_STATS_SCHEMA "hakmem-stats/3"
#define HAKMEM_SUPERSLAB_STATE_NAMES "live", "cached", "purged"

#endif
