/*
 * SuperSlabs: mapping them, the LRU of empty ones, delayed purging, and the list of SuperSlabs
 * abandoned by threads that exited.
 *
 * An empty SuperSlab goes to the LRU (at most HAKMEM_SS_LRU_SIZE of them, most recent first) rather
 * than back to the kernel: the next thread that needs memory takes it with no syscall. Entries idle
 * for longer than the purge delay give their pages back with one MADV_DONTNEED (the mapping stays,
 * so reuse costs page faults, not a syscall); an entry pushed past the LRU's size is unmapped.
 * So a steady program makes no memory syscalls at all, and an idle one returns its memory.
 */
#include <string.h>

#include "internal.h"

_Atomic uint64_t hak_segmap[HAK_SEGMAP_WORDS];

static hak_lock_t lru_lock = HAK_LOCK_INIT;
static struct hak_superslab *lru_head, *lru_tail;
static unsigned lru_len;

static hak_lock_t abandoned_lock = HAK_LOCK_INIT;
static struct hak_superslab *abandoned;

/* Fresh SuperSlabs come from mappings of SS_BATCH at a time, handed out in address order: a growing
 * heap makes one mmap per four SuperSlabs. The rest of a batch is address space only (8 MiB in all);
 * no page of it is touched until it is handed out. */
#define SS_BATCH 4
static hak_lock_t fresh_lock = HAK_LOCK_INIT;
static char *fresh_next, *fresh_end;

static void segmap_set(struct hak_superslab *ss, bool on)
{
	uintptr_t i = (uintptr_t)ss >> HAK_SS_SHIFT;
	uint64_t bit = (uint64_t)1 << (i & 63);
	if (on)
		atomic_fetch_or(&hak_segmap[i >> 6], bit);
	else
		atomic_fetch_and(&hak_segmap[i >> 6], ~bit);
}

/* Mark [from, to) of the SuperSlab as written, counting each 4 KiB page the first time: the
 * allocator's resident estimate. Carving marks whole blocks, as the program will write them. */
void hak_ss_touch(struct hak_superslab *ss, const char *from, const char *to)
{
	size_t first = (size_t)(from - (char *)ss) >> HAK_SUBPAGE_SHIFT;
	size_t last = (size_t)(to - 1 - (char *)ss) >> HAK_SUBPAGE_SHIFT;
	uint64_t fresh = 0;
	for (size_t page = first >> 4; page <= last >> 4; page++) { /* a carve mostly stays in one page */
		unsigned lo = page == first >> 4 ? first & 15 : 0, hi = page == last >> 4 ? last & 15 : 15;
		uint16_t want = (uint16_t)((0xffffu >> (15 - hi)) & (0xffffu << lo));
		fresh += __builtin_popcount(want & ~ss->touched[page]);
		ss->touched[page] |= want;
		if (ss->touched[page] == 0xffff)
			ss->resident |= 1u << page;
	}
	hak_tc.counters.bytes[HAKMEM_B_TOUCHED_IN] += fresh << HAK_SUBPAGE_SHIFT;
}

/* Forget the touched pages from page `first` on: they were purged or unmapped. */
static void ss_untouch(struct hak_superslab *ss, unsigned first)
{
	uint64_t n = 0;
	for (unsigned p = first; p < HAK_SS_PAGES; p++) {
		n += __builtin_popcount(ss->touched[p]);
		ss->touched[p] = 0;
	}
	ss->resident &= (1u << first) - 1;
	hak_tc.counters.bytes[HAKMEM_B_TOUCHED_OUT] += n << HAK_SUBPAGE_SHIFT;
}

/* Fresh or recycled, a SuperSlab starts with every page but the header's free and no class in any;
 * which of its pages were ever written survives (they are still resident). */
static void ss_reset(struct hak_superslab *ss)
{
	uint16_t touched[HAK_SS_PAGES];
	uint32_t resident = ss->resident;
	memcpy(touched, ss->touched, sizeof touched);
	memset(ss, 0, sizeof *ss);
	memcpy(ss->touched, touched, sizeof touched);
	ss->resident = resident;
	ss->free_pages = ~1u;
	memset(ss->page_cls, HAK_NO_CLASS, sizeof ss->page_cls);
	hak_ss_touch(ss, (char *)ss, (char *)ss + sizeof *ss);
}

static void ss_unmap(struct hak_superslab *ss)
{
	segmap_set(ss, false);
	ss_untouch(ss, 0);
	hak_stats_ss_event(HAKMEM_SS_UNMAP, ss, HAK_SS_SIZE);
	hak_os_unmap(ss, HAK_SS_SIZE);
}

static void lru_unlink(struct hak_superslab *ss)
{
	if (ss->prev)
		ss->prev->next = ss->next;
	else
		lru_head = ss->next;
	if (ss->next)
		ss->next->prev = ss->prev;
	else
		lru_tail = ss->prev;
	lru_len--;
	if (ss->purged)
		hak_stats_ss_event(HAKMEM_SS_UNPURGE, ss, HAK_SS_SIZE);
}

/* Purge LRU entries idle for at least `delay_ns`, oldest first (they sit at the tail); returns the
 * bytes given back. Called under lru_lock, on LRU traffic only (no timer thread: a busy program never
 * gets here with old entries) and by malloc_trim (delay 0). */
static size_t lru_purge_idle(uint64_t now, uint64_t delay_ns)
{
	size_t purged = 0;
	for (struct hak_superslab *ss = lru_tail; ss && !ss->purged; ss = ss->prev) {
		if (now - ss->idle_since_ns < delay_ns)
			break;
		ss->purged = 1;
		ss_untouch(ss, 1);
		hak_stats_ss_event(HAKMEM_SS_MADVISE, ss, HAK_SS_SIZE - HAK_PAGE_SIZE);
		hak_os_purge((char *)ss + HAK_PAGE_SIZE, HAK_SS_SIZE - HAK_PAGE_SIZE);
		purged += HAK_SS_SIZE - HAK_PAGE_SIZE;
	}
	return purged;
}

size_t hak_ss_trim(void)
{
	hak_lock(&lru_lock);
	size_t purged = lru_purge_idle(hak_now_ns(), 0);
	hak_unlock(&lru_lock);
	return purged;
}

static struct hak_superslab *ss_map_fresh(void)
{
	hak_lock(&fresh_lock);
	if (fresh_next == fresh_end) {
		size_t n = SS_BATCH;
		char *p = hak_os_map_aligned(n * HAK_SS_SIZE, HAK_SS_SIZE);
		if (!p) /* short of address space or overcommit: one will do */
			p = hak_os_map_aligned((n = 1) * HAK_SS_SIZE, HAK_SS_SIZE);
		if (!p) {
			hak_unlock(&fresh_lock);
			return NULL;
		}
		hak_tc.counters.bytes[HAKMEM_B_SS_RESERVED] += n * HAK_SS_SIZE;
		if (hak_opt.thp)
			hak_os_want_huge_pages(p, n * HAK_SS_SIZE);
		fresh_next = p;
		fresh_end = p + n * HAK_SS_SIZE;
	}
	struct hak_superslab *ss = (struct hak_superslab *)fresh_next;
	fresh_next += HAK_SS_SIZE;
	hak_unlock(&fresh_lock);
	return ss;
}

struct hak_superslab *hak_ss_obtain(struct hak_heap *h, unsigned *stage)
{
	struct hak_superslab *ss = NULL;
	if (lru_head) {
		hak_lock(&lru_lock);
		ss = lru_head;
		if (ss) {
			lru_unlink(ss);
			hak_stats_ss_event(HAKMEM_SS_LRU_HIT, ss, HAK_SS_SIZE);
		}
		hak_unlock(&lru_lock);
	}
	if (ss) {
		*stage = HAKMEM_STAGE_LRU;
	} else {
		ss = ss_map_fresh();
		if (!ss)
			return NULL;
		*stage = HAKMEM_STAGE_MAP;
		hak_stats_ss_event(HAKMEM_SS_MAP, ss, HAK_SS_SIZE);
		segmap_set(ss, true);
	}
	ss_reset(ss);
	atomic_store_explicit(&ss->heap, h, memory_order_relaxed);
	atomic_store_explicit(&ss->owner, hak_self(), memory_order_relaxed);
	ss->next = h->superslabs;
	if (ss->next)
		ss->next->prev = ss;
	h->superslabs = ss;
	return ss;
}

/* An empty SuperSlab, already out of its heap's list. */
void hak_ss_retire(struct hak_superslab *ss)
{
	atomic_store_explicit(&ss->heap, NULL, memory_order_relaxed);
	atomic_store_explicit(&ss->owner, 0, memory_order_relaxed);
	if (hak_opt.ss_lru_size == 0) {
		ss_unmap(ss);
		return;
	}
	struct hak_superslab *evicted = NULL;
	hak_lock(&lru_lock);
	uint64_t now = hak_now_ns(); /* under the lock: stamps never go back along the LRU */
	ss->idle_since_ns = now;
	ss->purged = 0;
	ss->prev = NULL;
	ss->next = lru_head;
	if (lru_head)
		lru_head->prev = ss;
	else
		lru_tail = ss;
	lru_head = ss;
	lru_len++;
	hak_stats_ss_event(HAKMEM_SS_LRU_PUT, ss, HAK_SS_SIZE);
	if (lru_len > hak_opt.ss_lru_size) {
		evicted = lru_tail;
		lru_unlink(evicted);
		hak_stats_ss_event(HAKMEM_SS_LRU_EVICT, evicted, HAK_SS_SIZE);
	}
	lru_purge_idle(now, hak_opt.ss_purge_delay_ns);
	hak_unlock(&lru_lock);
	if (evicted)
		ss_unmap(evicted);
}

void hak_ss_abandon(struct hak_superslab *ss)
{
	atomic_store_explicit(&ss->heap, NULL, memory_order_relaxed);
	atomic_store_explicit(&ss->owner, 0, memory_order_release);
	hak_lock(&abandoned_lock);
	ss->prev = NULL;
	ss->next = abandoned;
	abandoned = ss;
	hak_unlock(&abandoned_lock);
}

struct hak_superslab *hak_ss_take_abandoned(void)
{
	if (!abandoned)
		return NULL;
	hak_lock(&abandoned_lock);
	struct hak_superslab *ss = abandoned;
	if (ss)
		abandoned = ss->next;
	hak_unlock(&abandoned_lock);
	return ss;
}

void hak_ss_fork_prepare(void)
{
	hak_lock(&lru_lock);
	hak_lock(&abandoned_lock);
	hak_lock(&fresh_lock);
}

void hak_ss_fork_parent(void)
{
	hak_unlock(&fresh_lock);
	hak_unlock(&abandoned_lock);
	hak_unlock(&lru_lock);
}

/* The child inherits the LRU and the rest of the batch with the parent's totals, which count them. */
void hak_ss_fork_child(void)
{
	hak_lock_reset(&fresh_lock);
	hak_lock_reset(&abandoned_lock);
	hak_lock_reset(&lru_lock);
}
