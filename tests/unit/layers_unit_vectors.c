/*
 * libhakmem's gauges (src/layers.c) on every unit counters block: each word of struct hakmem_counters
 * set to 1 alone, the rest 0. The gauges are linear in the counts, so these blocks pin them down whole;
 * tests/unit/test_layers_match_libhakmem.py holds hakwatch/read/layers.py to the numbers printed here.
 *
 * Prints the block's word count, then one line a word: the word's index, live bytes of every slot
 * (the classes, then large blocks), every layer, mapped bytes, the resident estimate, SuperSlabs live,
 * cached and purged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

int main(void)
{
	struct hakmem_counters c;
	const size_t words = sizeof c / sizeof(__u64);
	printf("%zu\n", words);
	for (size_t w = 0; w < words; w++) {
		__u64 unit[sizeof c / sizeof(__u64)] = {0};
		unit[w] = 1;
		memcpy(&c, unit, sizeof c);
		printf("%zu", w);
		for (unsigned slot = 0; slot <= HAKMEM_SLOT_LARGE; slot++)
			printf(" %" PRId64, hak_live_bytes(&c, slot));
		int64_t layers[HAKMEM_NUM_LAYERS];
		hak_layers(&c, layers);
		for (unsigned l = 0; l < HAKMEM_NUM_LAYERS; l++)
			printf(" %" PRId64, layers[l]);
		int64_t live, cached, purged;
		hak_superslabs(&c, &live, &cached, &purged);
		printf(" %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 "\n", hak_mapped_bytes(&c),
		       hak_resident_estimate(&c), live, cached, purged);
	}
	return 0;
}
