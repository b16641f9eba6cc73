/*
 * USDT provider of libhakmem: the single source of truth for probe names and arguments.
 * `dtrace -h -s hakmem.d` makes the HAKMEM_*() and HAKMEM_*_ENABLED() macros; `dtrace -G` the
 * semaphores. Keep one probe a line: Debian's dtrace falls back to a line matcher without pyparsing; and use
 * uint64_t, not "unsigned long long", which its pyparsing grammar rejects.
 *
 * Every probe is semaphore-gated and none fires on the fast path. See probes/hakmem_counters.h for
 * the blocks `flush` points at, and DESIGN.md (at the repository root) for the contract.
 */
provider hakmem {
	/* once, from the library constructor: pid, NUL-terminated library version (also the symbol hakmem_version) */
	probe init(int pid, char *version);
	/* counter deltas since the previous flush of a thread (or of exited threads, batched): a struct
	 * hakmem_counters; then the process totals with those deltas already in: a struct hakmem_totals;
	 * fired under the allocator's stats lock; one site in the library */
	probe flush(void *delta, void *totals);
	/* one refill of a thread cache: class block size, stage (enum hakmem_stage), objects obtained, nanoseconds spent */
	probe refill(unsigned int class_size, unsigned int stage, unsigned int objects, uint64_t ns);
	/* SuperSlab events: base address, bytes (counted in the flush blocks too) */
	probe ss_map(void *addr, unsigned long bytes);
	probe ss_unmap(void *addr, unsigned long bytes);
	probe ss_lru_put(void *addr, unsigned long bytes);
	probe ss_lru_hit(void *addr, unsigned long bytes);
	probe ss_lru_evict(void *addr, unsigned long bytes);
	probe ss_madvise(void *addr, unsigned long bytes);
	/* large blocks' pages (above the largest size class) mapped from the kernel and given back, a mapping possibly in pieces: address, bytes */
	probe large_map(void *addr, unsigned long bytes);
	probe large_unmap(void *addr, unsigned long bytes);
	/* heap misuse detected, before the report and the abort: kind (enum hakmem_heap_error), the pointer, its size class in bytes (0 when unknown or large) */
	probe heap_error(unsigned int kind, void *addr, unsigned long class_size);
	/* an allocation sample (HAKMEM_SAMPLE_INTERVAL, sampled only while this probe is attached): the address handed out, bytes asked for, bytes it stands for (its weight) */
	probe sample_alloc(void *addr, unsigned long size, unsigned long weight);
	/* a sampled block freed: its address, bytes asked for */
	probe sample_free(void *addr, unsigned long size);
};
