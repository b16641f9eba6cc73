/*
 * The two functions of libm that sampling needs, so that the library does not link libm: loading
 * it would cost every process that preloads libhakmem about 330 KiB of resident text and one more
 * object for the dynamic linker, for two calls per sample interval. Both are accurate to about
 * 1e-12 relative over the ranges sampling uses, which is far below what the estimates need.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define LN2 0.6931471805599453

/* x = m 2^e with m in [sqrt(1/2), sqrt(2)); ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172,
 * by its series up to s^15. For normal x > 0 only. */
double hak_ln(double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof bits);
	int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL;
	double m;
	memcpy(&m, &bits, sizeof m);
	if (m > 1.4142135623730951) {
		m *= 0.5;
		e++;
	}
	double s = (m - 1) / (m + 1), s2 = s * s, t = 1.0 / 15;
	for (int k = 13; k >= 1; k -= 2)
		t = t * s2 + 1.0 / k;
	return e * LN2 + 2 * s * t;
}

/* 1 - exp(-y) for y >= 0, exact in relative terms for small y too (where 1 - exp(-y) would lose
 * its digits): exp(-y) = 2^-k exp(r) with |r| <= ln2 / 2, exp(r) by Taylor to r^13. */
double hak_one_minus_exp_neg(double y)
{
	if (y < 1e-3)
		return y * (1 - y / 2 * (1 - y / 3 * (1 - y / 4 * (1 - y / 5))));
	if (y > 700)
		return 1;
	int k = (int)(y / LN2 + 0.5);
	double r = k * LN2 - y, t = 1;
	for (int i = 13; i >= 1; i--)
		t = 1 + t * r / i;
	uint64_t bits = (uint64_t)(1023 - k) << 52; /* 2^-k, k <= 1010 */
	double scale;
	memcpy(&scale, &bits, sizeof scale);
	return 1 - t * scale;
}
