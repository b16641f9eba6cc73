/*
 * libhakmem's own ln and 1 - exp(-y) (src/fastmath.c, compiled in with this file) against libm's,
 * over the ranges sampling uses: ln of (0, 1] down to 2^-53, and 1 - exp(-y) from 1e-9 to 800.
 * Prints the worst relative error of each; exits 1 if either is above 1e-11.
 */
#include <math.h>
#include <stdio.h>

double hak_ln(double x);
double hak_one_minus_exp_neg(double y);

int main(void)
{
	double worst_ln = 0, worst_exp = 0;
	for (double x = 0x1p-53; x <= 1; x *= 1.0001) {
		double want = log(x), got = hak_ln(x);
		double err = want ? fabs(got - want) / fabs(want) : fabs(got);
		worst_ln = err > worst_ln ? err : worst_ln;
	}
	for (double y = 1e-9; y <= 800; y *= 1.0001) {
		double want = -expm1(-y), got = hak_one_minus_exp_neg(y);
		double err = fabs(got - want) / want;
		worst_exp = err > worst_exp ? err : worst_exp;
	}
	printf("ln %.3g\none_minus_exp_neg %.3g\n", worst_ln, worst_exp);
	return worst_ln > 1e-11 || worst_exp > 1e-11;
}
