// A program that replaces operator new(size_t) and delete(void*) itself, with a header of its own
// before each block: every other form (new[], nothrow, sized and array deletes) must reach this pair,
// as the standard says, even with libhakmem preloaded (src/cxx.c steps aside). Prints "ok" and exits
// 0, or says what failed and exits 1.
#include <cstdio>
#include <cstdlib>
#include <new>

static const unsigned long MAGIC = 0x6e65776e6577UL; // "newnew"
static long news, deletes;

void *operator new(std::size_t n)
{
	unsigned long *h = static_cast<unsigned long *>(std::malloc(n + 16));
	if (!h)
		throw std::bad_alloc();
	h[0] = MAGIC;
	news++;
	return h + 2;
}

void operator delete(void *p) noexcept
{
	if (!p)
		return;
	unsigned long *h = static_cast<unsigned long *>(p) - 2;
	if (h[0] != MAGIC) {
		std::printf("FAIL: delete of a block the program's operator new did not make\n");
		std::exit(1);
	}
	h[0] = 0;
	deletes++;
	std::free(h);
}

struct Thing {
	long a, b, c;
	virtual ~Thing() {}
};

int main()
{
	for (int i = 0; i < 1000; i++) {
		Thing *t = new Thing; // deleted through the sized delete(void*, size_t)
		delete t;
		char *a = new char[100]; // new[] and delete[]
		delete[] a;
		int *q = new (std::nothrow) int(1); // the nothrow new
		delete q;
		Thing *ts = new Thing[3]; // sized delete[]
		delete[] ts;
	}
	if (news != 4000 || deletes != 4000) {
		std::printf("FAIL: the program's operator new ran %ld times and delete %ld times, not 4000\n", news, deletes);
		return 1;
	}
	std::printf("ok\n");
	return 0;
}
