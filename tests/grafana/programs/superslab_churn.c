/*
 * A workload that makes an allocator without a SuperSlab cache churn (run it with
 * HAKMEM_SS_LRU_SIZE=0): every round allocates 40 blocks of 200 KB (five SuperSlabs) and
 * frees them, which empties a SuperSlab, so it is unmapped and mapped again next round.
 *   superslab_churn SECONDS
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	time_t end = time(NULL) + (argc > 1 ? atoi(argv[1]) : 30);
	while (time(NULL) < end) {
		char *volatile v[40];
		for (int i = 0; i < 40; i++) {
			v[i] = malloc(200 * 1000);
			v[i][0] = 1;
		}
		for (int i = 0; i < 40; i++)
			free(v[i]);
		usleep(2000);
	}
	return 0;
}
