/*
 * The memory layers (DESIGN.md, "The memory layers"): where every mapped byte is, computed from the
 * process totals alone. hakwatch computes the same from the same counts (hakwatch/read/layers.py); the
 * tests hold the two equal through HAKMEM_STATS and `hakwatch run --summary`.
 */
#include "internal.h"

#define SS ((int64_t)HAKMEM_SUPERSLAB_BYTES)
#define HDR ((int64_t)HAKMEM_SUPERSLAB_HEADER_BYTES)

int64_t hak_live_bytes(const struct hakmem_counters *t, unsigned slot)
{
	if (slot == HAKMEM_SLOT_LARGE)
		return (int64_t)(t->bytes[HAKMEM_B_LARGE_ALLOC] - t->bytes[HAKMEM_B_LARGE_FREE]);
	const __u64 *slab = t->slab_frees[slot];
	return (int64_t)(t->allocs[slot] - t->frees[slot] - slab[HAKMEM_SLAB_LOCAL] - slab[HAKMEM_SLAB_REMOTE]) *
	       hak_class_size[slot];
}

void hak_superslabs(const struct hakmem_counters *t, int64_t *live, int64_t *cached, int64_t *purged)
{
	const __u64 *e = t->ss_events;
	*live = (int64_t)(e[HAKMEM_SS_MAP] + e[HAKMEM_SS_LRU_HIT] - e[HAKMEM_SS_LRU_PUT] -
			  (e[HAKMEM_SS_UNMAP] - e[HAKMEM_SS_LRU_EVICT]));
	*cached = (int64_t)(e[HAKMEM_SS_LRU_PUT] - e[HAKMEM_SS_LRU_HIT] - e[HAKMEM_SS_LRU_EVICT]);
	*purged = (int64_t)(e[HAKMEM_SS_MADVISE] - e[HAKMEM_SS_UNPURGE]);
}

void hak_layers(const struct hakmem_counters *t, int64_t out[HAKMEM_NUM_LAYERS])
{
	const __u64 *b = t->bytes;
	int64_t live_small = 0, refilled = 0, cached = 0, allocated_small = 0, local = 0, remote = 0;
	for (unsigned c = 0; c < HAK_NUM_CLASSES; c++) {
		int64_t sz = hak_class_size[c];
		live_small += hak_live_bytes(t, c);
		refilled += (int64_t)t->refill_objects[c] * sz;
		cached += (int64_t)t->frees[c] * sz;
		allocated_small += (int64_t)t->allocs[c] * sz;
		local += (int64_t)t->slab_frees[c][HAKMEM_SLAB_LOCAL] * sz;
		remote += (int64_t)t->slab_frees[c][HAKMEM_SLAB_REMOTE] * sz;
	}
	int64_t drained = b[HAKMEM_B_REMOTE_DRAINED], returned = b[HAKMEM_B_CACHE_RETURNED];
	int64_t carved = b[HAKMEM_B_CARVED], released_carved = b[HAKMEM_B_SLAB_OUT_CARVED];
	int64_t slabs = (int64_t)(b[HAKMEM_B_SLAB_IN] - b[HAKMEM_B_SLAB_OUT]);
	int64_t live_large = hak_live_bytes(t, HAKMEM_SLOT_LARGE);
	int64_t ss_live, ss_cached, ss_purged;
	hak_superslabs(t, &ss_live, &ss_cached, &ss_purged);

	out[HAKMEM_LAYER_LIVE] = live_small + live_large;
	/* blocks enter a thread cache by refills and by frees to it; leave by mallocs and returns */
	out[HAKMEM_LAYER_THREAD_CACHE] = refilled + cached - allocated_small - returned;
	out[HAKMEM_LAYER_REMOTE_FREE] = remote - drained;
	/* refills that did not carve took from free lists; released slabs had all their blocks there */
	out[HAKMEM_LAYER_SLAB_FREE] = local + drained + returned - (refilled - carved) - released_carved;
	out[HAKMEM_LAYER_NEVER_CARVED] = slabs - (carved - released_carved);
	out[HAKMEM_LAYER_FREE_PAGES] = ss_live * (SS - HDR) - slabs;
	out[HAKMEM_LAYER_SUPERSLAB_LRU] = (ss_cached - ss_purged) * SS;
	out[HAKMEM_LAYER_SUPERSLAB_PURGED] = ss_purged * SS;
	out[HAKMEM_LAYER_SUPERSLAB_RESERVED] = (int64_t)b[HAKMEM_B_SS_RESERVED] - (int64_t)t->ss_events[HAKMEM_SS_MAP] * SS;
	out[HAKMEM_LAYER_LARGE_CACHE] = (int64_t)(b[HAKMEM_B_LARGE_MAP] - b[HAKMEM_B_LARGE_UNMAP]) - live_large;
	out[HAKMEM_LAYER_METADATA] = ss_live * HDR + (int64_t)b[HAKMEM_B_METADATA];
}

int64_t hak_mapped_bytes(const struct hakmem_counters *t)
{
	return (int64_t)(t->os_bytes[HAKMEM_OS_MMAP] - t->os_bytes[HAKMEM_OS_MUNMAP]);
}

/* Touched SuperSlab pages not purged since, large mappings whole, metadata mappings whole. */
int64_t hak_resident_estimate(const struct hakmem_counters *t)
{
	const __u64 *b = t->bytes;
	return (int64_t)(b[HAKMEM_B_TOUCHED_IN] - b[HAKMEM_B_TOUCHED_OUT] + b[HAKMEM_B_LARGE_MAP] -
			 b[HAKMEM_B_LARGE_UNMAP] + b[HAKMEM_B_METADATA]);
}
