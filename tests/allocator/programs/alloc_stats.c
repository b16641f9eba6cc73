/*
 * Workloads for the HAKMEM_STATS checks. They use no stdio, so the C library allocates nothing of its
 * own that stays live at exit: every block the program allocates, it frees. The pid goes to stdout
 * through write(2) as "pid N".
 *
 *   alloc_stats balanced N    N malloc(100) live together, plus blocks of every class, large blocks,
 *                             calloc / realloc / aligned blocks; everything freed
 *   alloc_stats threads       4 threads handing blocks to each other; everything freed
 *   alloc_stats superslabs    4 rounds of about 60 MiB of 1000-byte blocks allocated, then freed
 *                             (empty SuperSlabs to cache or unmap)
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *msg)
{
	write(2, "FAIL: ", 6);
	write(2, msg, strlen(msg));
	write(2, "\n", 1);
	_exit(1);
}

static void say_pid(void)
{
	char buf[32], tmp[24];
	int n = 0, k = 0;
	long pid = getpid();
	while (pid) {
		tmp[k++] = (char)('0' + pid % 10);
		pid /= 10;
	}
	memcpy(buf, "pid ", 4);
	n = 4;
	while (k)
		buf[n++] = tmp[--k];
	buf[n++] = '\n';
	if (write(1, buf, n) != n)
		die("write failed");
}

static size_t opaque(size_t x) { volatile size_t v = x; return v; }

static int balanced(long n100)
{
	void **v = malloc(n100 * sizeof *v);
	if (!v)
		die("malloc failed");
	for (long i = 0; i < n100; i++) {
		v[i] = malloc(opaque(100));
		if (!v[i])
			die("malloc(100) failed");
		memset(v[i], (int)i, 100);
	}
	for (long i = 0; i < n100; i++)
		free(v[i]);
	free(v);
	/* every class and some large blocks */
	void *b[400];
	int nb = 0;
	for (size_t s = 1; s < 600000 && nb < 380; s = s + s / 8 + 1) {
		b[nb] = malloc(opaque(s));
		if (!b[nb])
			die("malloc failed");
		memset(b[nb], 1, s);
		nb++;
	}
	for (int i = 0; i < 20; i++) {
		b[nb] = (i % 2) ? calloc(1, opaque(1u << 20)) : malloc(opaque((1u << 20) + i));
		if (!b[nb])
			die("large allocation failed");
		nb++;
	}
	for (int i = 0; i < nb; i++)
		free(b[i]);
	void *p = NULL;
	for (size_t s = 8; s < 2000000; s *= 3) {
		p = realloc(p, opaque(s));
		if (!p)
			die("realloc failed");
		memset(p, 2, s);
	}
	free(p);
	for (size_t a = 16; a <= 65536; a *= 4) {
		void *q;
		if (posix_memalign(&q, a, opaque(a + 5)))
			die("posix_memalign failed");
		free(q);
		q = aligned_alloc(a, opaque(3 * a));
		if (!q)
			die("aligned_alloc failed");
		free(q);
		q = memalign(a, opaque(100));
		if (!q)
			die("memalign failed");
		free(q);
	}
	void *q = valloc(opaque(5000));
	if (!q)
		die("valloc failed");
	free(q);
	q = calloc(opaque(10), opaque(10));
	if (!q)
		die("calloc failed");
	free(q);
	free(NULL);
	return 0;
}

#define NT 4
static void *_Atomic box[NT];

static void *thread_main(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (int i = 0; i < 20000; i++) {
		void *p = malloc(opaque(16 + (i * 37 + t) % 3000));
		if (!p)
			die("malloc failed");
		memset(p, t, 16);
		void *old = __atomic_exchange_n(&box[(t + 1) % NT], p, __ATOMIC_ACQ_REL);
		free(old);
		void *mine = malloc(opaque(64));
		if (!mine)
			die("malloc failed");
		free(mine);
	}
	return NULL;
}

static int threads(void)
{
	pthread_t th[NT];
	for (int i = 0; i < NT; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i))
			die("pthread_create failed");
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NT; i++)
		free(box[i]);
	return 0;
}

static int superslabs(void)
{
	enum { N = 60000 };
	void **v = malloc(N * sizeof *v);
	if (!v)
		die("malloc failed");
	for (int r = 0; r < 4; r++) {
		for (int i = 0; i < N; i++) {
			v[i] = malloc(opaque(1000));
			if (!v[i])
				die("malloc(1000) failed");
			memset(v[i], r, 1000);
		}
		for (int i = 0; i < N; i++)
			free(v[i]);
	}
	free(v);
	return 0;
}

int main(int argc, char **argv)
{
	say_pid();
	if (argc == 3 && !strcmp(argv[1], "balanced"))
		return balanced(atol(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "threads"))
		return threads();
	if (argc == 2 && !strcmp(argv[1], "superslabs"))
		return superslabs();
	die("usage: alloc_stats balanced N | threads | superslabs");
	return 2;
}
