/*
 * What a reader outside the process needs to find the counts its threads have not flushed yet
 * (probes/hakmem_counters.h, struct hakmem_state_map): hakwatch reads the totals, the exited threads'
 * batch and every thread's cache from /proc/PID/mem at each scrape, so that an idle thread pool or a
 * batch of exited workers shows as it is, without a flush and without a cost on the fast path.
 */
#include <stddef.h>

#include "internal.h"

HAK_API const struct hakmem_state_map hakmem_state_map = {
	.version = HAKMEM_STATE_MAP_VERSION,
	.totals = (uintptr_t)&hakmem_totals,
	.exited = (uintptr_t)&hak_exited,
	.threads = (uintptr_t)&hak_registry,
	.thread_changes = (uintptr_t)&hak_registry_changes,
	.heap_next = offsetof(struct hak_heap, reg_next),
	.heap_cache = offsetof(struct hak_heap, tc),
	.cache_bytes = sizeof(struct hak_tcache),
	.cache_counters = offsetof(struct hak_tcache, counters),
	.cache_limit = offsetof(struct hak_tcache, limit),
	.cache_room = offsetof(struct hak_tcache, room),
	.cache_flushed_len = offsetof(struct hak_tcache, flushed_len),
	.cache_returned = offsetof(struct hak_tcache, returned),
	.cache_sample_left = offsetof(struct hak_tcache, sample_left),
	.cache_sample_base = offsetof(struct hak_tcache, sample_base),
	.cache_flush_seq = offsetof(struct hak_tcache, flush_seq),
};
