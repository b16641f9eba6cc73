/*
 * Size classes: the block sizes of probes/hakmem_counters.h, and the tables that map a request to
 * its class in one load (built once, in the library constructor or the first slow path).
 */
#include "internal.h"

const uint32_t hak_class_size[HAK_NUM_CLASSES] = {HAKMEM_CLASS_SIZES};
uint8_t hak_class_small[1024 / 16 + 1];
uint8_t hak_class_medium[HAK_MAX_SMALL / 256];
uint8_t hak_class_pages[HAK_NUM_CLASSES];

/* A slab spans enough pages for at least 8 blocks (fewer for the biggest classes, which get a
 * whole SuperSlab: pages 1..31), so refills of big classes still bring several blocks. */
static unsigned pages_for(uint32_t size)
{
	for (unsigned pages = 1; pages < HAK_SS_PAGES - 1; pages *= 2)
		if (pages * HAK_PAGE_SIZE / size >= 8)
			return pages;
	return HAK_SS_PAGES - 1;
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
