/*
 * HAKMEM_* settings, read once in the library constructor straight from `environ` (getenv is fine
 * too, but reading environ makes it obvious nothing here allocates). A malformed value prints one
 * warning line on stderr and the default is kept: a typo must not take a service down.
 */
#include <string.h>
#include <unistd.h>

#include "internal.h"

extern char **environ;

struct hak_options hak_opt = {
	.ss_lru_size = 16,
	.ss_purge_delay_ns = 1000000000ull,
	.sample_interval = HAK_SAMPLE_INTERVAL,
	.sample_max_rate = HAK_SAMPLE_MAX_RATE,
};

static const char *env(const char *name)
{
	size_t len = strlen(name);
	for (char **e = environ; e && *e; e++)
		if (!strncmp(*e, name, len) && (*e)[len] == '=')
			return *e + len + 1;
	return NULL;
}

static void warn(const char *name, const char *value, const char *why)
{
	char line[512];
	size_t n = 0;
	const char *parts[] = {"hakmem: ignoring ", name, "=", value, ": ", why, "\n"};
	for (unsigned i = 0; i < sizeof parts / sizeof parts[0]; i++)
		for (const char *c = parts[i]; *c && n < sizeof line - 2; c++)
			line[n++] = *c;
	if (line[n - 1] != '\n')
		line[n++] = '\n';
	(void)!write(2, line, n);
}

/* A decimal number in [0, max], nothing else (no sign, no spaces, no suffix). */
static int parse_count(const char *s, unsigned max, unsigned *out)
{
	unsigned long v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

void hak_options_init(void)
{
	const char *v = env("HAKMEM_SS_LRU_SIZE");
	if (v && parse_count(v, 4096, &hak_opt.ss_lru_size))
		warn("HAKMEM_SS_LRU_SIZE", v, "expected a whole number of SuperSlabs from 0 to 4096; using 16");
	v = env("HAKMEM_PURGE_DELAY_MS");
	unsigned delay_ms;
	if (v && parse_count(v, 3600000, &delay_ms))
		warn("HAKMEM_PURGE_DELAY_MS", v, "expected a whole number of milliseconds from 0 to 3600000; using 1000");
	else if (v)
		hak_opt.ss_purge_delay_ns = (uint64_t)delay_ms * 1000000;
	v = env("HAKMEM_THP");
	if (v && parse_count(v, 1, &hak_opt.thp))
		warn("HAKMEM_THP", v, "expected 0 or 1; using 0");
	v = env("HAKMEM_HEAP_ERRORS");
	if (v && strcmp(v, "abort") && strcmp(v, "report"))
		warn("HAKMEM_HEAP_ERRORS", v, "expected abort or report; using abort");
	hak_opt.heap_errors_report = v && !strcmp(v, "report");
	v = env("HAKMEM_SAMPLE_INTERVAL");
	if (v && parse_count(v, 1u << 30, &hak_opt.sample_interval))
		warn("HAKMEM_SAMPLE_INTERVAL", v, "expected a whole number of bytes from 0 (no samples) to 1073741824; "
		     "using " HAK_STR(HAK_SAMPLE_INTERVAL));
	v = env("HAKMEM_SAMPLE_MAX_RATE");
	if (v && parse_count(v, 1000000, &hak_opt.sample_max_rate))
		warn("HAKMEM_SAMPLE_MAX_RATE", v, "expected a whole number of samples a second from 0 (no bound) to 1000000; "
		     "using " HAK_STR(HAK_SAMPLE_MAX_RATE));
	v = env("HAKMEM_STATS");
	if (v && *v) {
		if (strlen(v) >= sizeof hak_opt.stats_path)
			warn("HAKMEM_STATS", "...", "path too long");
		else
			strcpy(hak_opt.stats_path, v);
	}
}
