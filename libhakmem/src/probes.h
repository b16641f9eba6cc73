/*
 * The USDT probes: macros generated from probes/hakmem.d by `dtrace -h` (HAKMEM_FLUSH(),
 * HAKMEM_FLUSH_ENABLED(), ...). Every call site tests the *_ENABLED() semaphore first, so with nothing
 * attached a probe costs one predictable branch, and argument set-up is skipped.
 * With HAKMEM_NO_PROBES (build/libhakmem-noprobes.so) the macros vanish, to measure that branch.
 */
#ifndef HAKMEM_PROBES_H
#define HAKMEM_PROBES_H

#ifdef HAKMEM_NO_PROBES
#define HAK_PROBE_ENABLED(name) 0
#define HAK_PROBE(name, ...) ((void)0)
#else
#include "hakmem_probes.h"
#define HAK_PROBE_ENABLED(name) HAKMEM_##name##_ENABLED()
#define HAK_PROBE(name, ...) HAKMEM_##name(__VA_ARGS__)
#endif

#endif
