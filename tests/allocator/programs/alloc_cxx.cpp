// C++'s operator new and delete, as libhakmem replaces them (src/cxx.c): every form is served and
// keeps the standard's failure behaviour. Prints "ok" and exits 0, or says what failed and exits 1.
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

static int failures;

static void check(bool ok, const char *what)
{
	if (!ok) {
		std::printf("FAIL: %s\n", what);
		failures++;
	}
}

struct alignas(256) Wide {
	char bytes[300];
};

static int handler_calls;

static void give_up()
{
	handler_calls++;
	std::set_new_handler(nullptr); // the next failure throws
}

int main()
{
	// the operators the program calls are libhakmem's, not libstdc++'s
	Dl_info info;
	void *op = dlsym(RTLD_DEFAULT, "_Znwm");
	check(op && dladdr(op, &info) && std::strstr(info.dli_fname, "libhakmem"),
	      "operator new(size_t) is libhakmem's");

	// plain, array, sized delete, nothrow and aligned forms, written and read back
	std::vector<int *> kept;
	for (int i = 0; i < 100000; i++) {
		int *p = new int(i);
		kept.push_back(p);
		char *a = new char[(i % 2000) + 1];
		std::memset(a, i & 0xff, (i % 2000) + 1);
		delete[] a;
		if (i % 3 == 0) {
			delete kept.back();
			kept.pop_back();
		}
	}
	for (size_t i = 0; i < kept.size(); i++)
		delete kept[i];
	Wide *w = new Wide;
	check(reinterpret_cast<uintptr_t>(w) % 256 == 0, "new of an alignas(256) type is aligned");
	delete w;
	Wide *ws = new Wide[5];
	check(reinterpret_cast<uintptr_t>(ws) % 256 == 0, "new[] of an alignas(256) type is aligned");
	delete[] ws;
	Wide *wn = new (std::nothrow) Wide;
	check(wn && reinterpret_cast<uintptr_t>(wn) % 256 == 0, "nothrow aligned new");
	delete wn;
	char *big = new char[8 << 20]; // a large block
	big[0] = big[(8 << 20) - 1] = 1;
	delete[] big;

	// no memory: throws bad_alloc, or returns null for nothrow, after the new-handler
	volatile size_t huge = SIZE_MAX / 4;
	bool threw = false;
	try {
		char *p = new char[huge];
		delete[] p;
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	check(threw, "new[] of SIZE_MAX/4 throws bad_alloc");
	threw = false;
	try {
		Wide *p = new Wide[huge / 512];
		delete[] p;
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	check(threw, "aligned new[] of a huge count throws bad_alloc");
	threw = false;
	try {
		void *p = ::operator new(100, std::align_val_t(48)); // no power of two
		::operator delete(p, std::align_val_t(48));
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	check(threw, "aligned new with an alignment of 48 throws bad_alloc");
	check(::operator new(100, std::align_val_t(48), std::nothrow) == nullptr,
	      "nothrow aligned new with an alignment of 48 returns null");
	check(new (std::nothrow) char[huge] == nullptr, "nothrow new[] of SIZE_MAX/4 returns null");
	check(new (std::nothrow) Wide[huge / 512] == nullptr, "nothrow aligned new[] of a huge count returns null");
	std::set_new_handler(give_up);
	threw = false;
	try {
		void *p = ::operator new(huge);
		::operator delete(p);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	check(threw && handler_calls == 1, "the new-handler is called once, then bad_alloc is thrown");
	if (failures)
		return 1;
	std::printf("ok\n");
	return 0;
}
