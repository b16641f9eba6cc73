/* One million malloc(32)/free pairs served by the thread cache: for instruction counts under callgrind. */
#include <stdlib.h>

int main(void)
{
	for (int i = 0; i < 1000000; i++) {
		void *volatile p = malloc(32);
		free(p);
	}
	return 0;
}
