/*
 * Size classes: the block sizes of probes/hakmem_counters.h, and the tables that map a request to
 * its class in one load (built once, in the library constructor or the first slow path).
 */
#include "internal.h"

const uint32_t hak_class_size[HAK_NUM_CLASSES] = {HAKMEM_CLASS_SIZES};
uint8_t hak_class_small[1024 / 16 + 1];
uint8_t hak_class_medium[HAK_MAX_SMALL / 256];
uint8_t hak_class_pages[HAK_NUM_CLASSES];

/* A slab spans the fewest pages that hold 4 blocks (mimalloc's small pages hold 4 of its biggest small
 * objects too), at most HAK_SLAB_MAX_PAGES: 2 or 3 blocks for the classes above 128 KiB. Big classes'
 * caches hold 2 blocks (thread.c) and refill one at a time, so more blocks a slab buy nothing; what
 * bigger slabs cost is measured: with 8 blocks a slab (and 31 pages for the classes above 128 KiB,
 * one block pinning a whole SuperSlab), mstress's peak RSS was 21.5 MiB; with 8 blocks and 8 pages at
 * most, 17.5; with 4 blocks, 16.0 (a free page fits a new slab of more classes). */
static unsigned pages_for(uint32_t size)
{
	unsigned pages = 1;
	while (pages < HAK_SLAB_MAX_PAGES && pages * HAK_PAGE_SIZE / size < 4)
		pages *= 2;
	return pages;
}

void hak_classes_init(void)
{
	unsigned c = 0;
	for (unsigned i = 0; i <= 1024 / 16; i++) {
		size_t n = i ? (size_t)i * 16 : 1;
		while (hak_class_size[c] < n)
			c++;
		hak_class_small[i] = c;
	}
	for (unsigned i = 0; i < HAK_MAX_SMALL / 256; i++) {
		size_t n = (size_t)i * 256 + 1;
		while (hak_class_size[c] < n)
			c++;
		hak_class_medium[i] = c;
	}
	for (c = 0; c < HAK_NUM_CLASSES; c++)
		hak_class_pages[c] = pages_for(hak_class_size[c]);
}
