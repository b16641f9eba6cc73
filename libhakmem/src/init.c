/*
 * Process start and end. Initialisation happens once, on whichever comes first: the first malloc
 * (often from ld.so or another library's constructor, before ours runs) or the constructor.
 */
#include <unistd.h>

#include "internal.h"

static _Atomic int init_state; /* 0 not started, 1 running, 2 done */

static HAK_NOINLINE void init_once(void)
{
	int expected = 0;
	if (!atomic_compare_exchange_strong(&init_state, &expected, 1)) {
		while (atomic_load(&init_state) != 2)
			sched_yield();
		return;
	}
	hak_classes_init();
	hak_misuse_init();
	hak_options_init();
	hak_threads_init();
	atomic_store(&init_state, 2);
}

void hak_ensure_init(void)
{
	if (unlikely(atomic_load_explicit(&init_state, memory_order_acquire) != 2))
		init_once();
}

__attribute__((constructor)) static void hak_constructor(void)
{
	hak_ensure_init();
	if (HAK_PROBE_ENABLED(INIT)) {
		/* in a register: the compiler would otherwise pass the address as sym@GOTPCREL(%rip), an
		 * argument spec a BPF program cannot read */
		const char *version = hakmem_version;
		__asm__("" : "+r"(version));
		HAK_PROBE(INIT, (int)getpid(), version);
	}
}

/* The library was loaded first (LD_PRELOAD), so its destructor runs last: after the program's
 * atexit handlers and other libraries' destructors have done their freeing. */
__attribute__((destructor)) static void hak_destructor(void)
{
	hak_threads_flush_all();
	hak_stats_write_file();
}
