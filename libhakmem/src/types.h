/*
 * Every data structure of libhakmem, with the invariants that make it safe.
 *
 * Memory comes in SuperSlabs: 2 MiB regions aligned to 2 MiB, so the SuperSlab of any small block is
 * its address with the low 21 bits cleared. A SuperSlab is cut into 32 pages of 64 KiB; a slab is a
 * run of 1, 2, 4 or 8 pages serving one size class, aligned to its length. Page 0 is the SuperSlab
 * header (this struct, with the metadata of every slab, in its first 4 KiB) and holds no blocks.
 * Every block's offset in its SuperSlab is a multiple of its size (a slab's first block is the first
 * such offset in its pages), so free() checks that a pointer starts a block with one multiply
 * (DESIGN.md, "Heap misuse"). A SuperSlab belongs to one thread (its heap) or to nobody (abandoned by
 * a thread that exited, waiting for another to adopt it), or sits empty in the LRU.
 *
 * A free block's first word is the link to the next free block, encoded (hak_link_*); its second is
 * its mark (hak_free_mark: a random key XORed with its address), which it loses when it is handed out:
 * so a block freed twice is recognised.
 */
#ifndef HAKMEM_TYPES_H
#define HAKMEM_TYPES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "hakmem_counters.h"

#define HAK_SS_SHIFT 21
#define HAK_SS_SIZE ((size_t)1 << HAK_SS_SHIFT)
#define HAK_PAGE_SHIFT 16
#define HAK_PAGE_SIZE ((size_t)1 << HAK_PAGE_SHIFT)
#define HAK_SS_PAGES 32
#define HAK_SLAB_MAX_PAGES 8 /* classes.c: pages_for */
#define HAK_SS_HEADER HAK_PAGE_SIZE /* page 0: struct superslab in its first 4 KiB, no blocks */
#define HAK_SUBPAGE_SHIFT 12 /* the kernel's pages: what the resident estimate counts in */
_Static_assert(HAK_SS_SIZE == HAKMEM_SUPERSLAB_BYTES && HAK_SS_HEADER == HAKMEM_SUPERSLAB_HEADER_BYTES,
	       "probes/hakmem_counters.h states the SuperSlab geometry the memory layers are computed with");
_Static_assert(HAK_PAGE_SIZE >> HAK_SUBPAGE_SHIFT == 16, "touched[] keeps 16 kernel pages per page in a uint16_t");
#define HAK_NUM_CLASSES HAKMEM_NUM_CLASSES
#define HAK_MAX_SMALL HAKMEM_MAX_CLASS_SIZE

struct hak_block {
	uintptr_t link;		/* the next free block, encoded: hak_link_get/hak_link_set */
	uint64_t key;		/* hak_free_mark(block) while free, 0 from when it is handed out */
};

struct hak_heap;
struct hak_tcache;

/* A slab: metadata in its SuperSlab's header, blocks in its pages. `free` and `used` belong to the
 * owning thread alone; other threads only push onto `remote`, which the owner takes whole with one
 * atomic exchange, so no lock is ever taken on a free. */
struct hak_slab {
	struct hak_block *free;			/* blocks returned by the owner, ready to hand out */
	_Atomic(struct hak_block *) remote;	/* blocks freed by other threads, not yet drained */
	char *start;				/* first block */
	uint32_t bsize;				/* block size (the class's size) */
	uint32_t capacity;			/* blocks that fit */
	uint32_t carved;			/* blocks handed out at least once; the rest were never touched */
	uint32_t used;				/* blocks out of the slab (with the program or in a thread cache) */
	uint8_t cls;				/* size class index */
	uint8_t npages;				/* pages spanned; 0 when this page starts no slab */
	uint8_t list;				/* which heap list holds it: HAK_LIST_* */
	struct hak_slab *prev, *next;		/* in that list */
};

enum { HAK_LIST_NONE, HAK_LIST_AVAIL, HAK_LIST_FULL };

struct hak_superslab {
	/* The owning thread's thread pointer (hak_self), 0 when abandoned or cached: free() compares it
	 * with %fs:0 in one instruction, where the address of the thread's cache would take three. */
	_Atomic uintptr_t owner;
	/* The owner's heap, for other threads to flag remote frees on. Heaps live in a pool that is never
	 * unmapped, so a flag raised on the heap of a thread that just exited is harmless. */
	_Atomic(struct hak_heap *) heap;
	/* page index -> size class of the slab covering it, HAK_NO_CLASS for page 0 and free pages: next
	 * to `owner`, so free()'s fast path reads one cache line of the header. */
	uint8_t page_cls[HAK_SS_PAGES];
	uint32_t free_pages;			/* bit i set: page i belongs to no slab */
	uint32_t used_pages;			/* pages in slabs; 0 means the SuperSlab is empty */
	struct hak_superslab *prev, *next;	/* in the owner's list, the LRU or the abandoned list */
	uint64_t idle_since_ns;			/* when it entered the LRU */
	int purged;				/* its pages were given back with MADV_DONTNEED */
	uint8_t page_slab[HAK_SS_PAGES];	/* page index -> index of the page starting its slab */
	uint16_t touched[HAK_SS_PAGES];		/* bit i of page p: its i-th 4 KiB was written and not purged since */
	uint32_t resident;			/* bit p: all of page p is touched */
	struct hak_slab slabs[HAK_SS_PAGES];	/* indexed by a slab's first page */
};
_Static_assert(sizeof(struct hak_superslab) <= 4096, "SuperSlab header outgrew its 4 KiB");

struct hak_slab_list {
	struct hak_slab *head;
};

/* The slow-path state of one thread: which slabs it allocates from and which SuperSlabs it owns.
 * Allocated from an internal pool on the thread's first slow path; never touched by other threads
 * except the registry walk at process exit and in a forked child. */
struct hak_heap {
	struct hak_tcache *tc;
	struct hak_slab *current[HAK_NUM_CLASSES];	/* the slab refills take from first */
	struct hak_slab_list avail[HAK_NUM_CLASSES];	/* slabs with free or never carved blocks */
	struct hak_slab_list full[HAK_NUM_CLASSES];	/* slabs with none, maybe with remote frees */
	struct hak_superslab *superslabs;		/* owned SuperSlabs */
	_Atomic uint32_t remote_pending;		/* set by other threads: a full slab got a remote free */
	uint32_t refills_since_flush;
	uint64_t objects_since_flush;
	struct hak_heap *reg_prev, *reg_next;		/* in the registry of live heaps */
	struct hak_heap *pool_next;
};

/* The thread cache: what the fast path touches, in the thread's static TLS (initial-exec, so one
 * %fs-relative access). All zero in a new thread: limits of 0 send the first malloc and free to the
 * slow path, which sets the heap up. */
struct hak_tcache {
	struct hak_block *head[HAK_NUM_CLASSES];
	/* Blocks the class's cache can still take (limit - length): free() decrements it and leaves on
	 * the borrow, one instruction where comparing a length with the limit took five. */
	uint32_t room[HAK_NUM_CLASSES];
	/* Bytes to the next allocation sample (sample.c), counted down by every allocation; what was
	 * counted down since sample_base is the requested bytes not yet in `counters`. */
	uint64_t sample_left;
	uint32_t limit[HAK_NUM_CLASSES];
	struct hak_heap *heap;
	uint64_t slow_bytes_since_flush;		/* bytes refilled, freed on slow paths, large, since the last flush */
	/* Set once the thread's exit destructor ran. glibc still frees (and other exit code may still
	 * malloc) after that; such operations then use a heap for the moment only and flush at once,
	 * so nothing is left registered on a thread whose TLS is about to disappear. */
	uint8_t exited;
	struct hakmem_counters counters;		/* deltas since the last flush (the flush probe's block) */
	/* Blocks handed out from the cache are not counted as they go (one instruction fewer in malloc):
	 * a flush works them out from what entered the cache, what left it otherwise, and its length. */
	uint32_t flushed_len[HAK_NUM_CLASSES];	/* the cache's lengths at the last flush */
	uint32_t returned[HAK_NUM_CLASSES];		/* blocks given back to their slabs since then */
	uint64_t sample_base;
	uint64_t sample_mean;				/* of the running interval; 0 before the first */
	uint64_t sample_rng;				/* the thread's random stream for sample intervals */
	uint8_t refill_ramp[HAK_NUM_CLASSES];		/* the class's refills so far, up to full batches */
	/* hakmem_totals.seq when this thread joined the list of threads or last flushed: a reader that
	 * finds it unchanged knows the thread's counts since then are still all in this block. */
	uint64_t flush_seq;
};

#endif
