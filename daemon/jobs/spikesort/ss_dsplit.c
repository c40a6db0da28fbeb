/*
 * ss_dsplit.c — the test for a unit split by drift (ss_dsplit.h): its two
 * pieces fire in complementary drift positions.
 */
#include "ss_dsplit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int
cmp_float(const void *x, const void *y)
{
	float a = *(const float *) x, b = *(const float *) y;
	return (a > b) - (a < b);
}

int
ss_dsplit_groups(const float *drift_um, int64_t nb, int nblk, int *grp)
{
	float *m = malloc(sizeof(float) * (size_t) (nb > 0 ? nb : 1));
	float *s = malloc(sizeof(float) * (size_t) (nb > 0 ? nb : 1));
	int moved = 0;

	if (m == NULL || s == NULL || nb < SS_DSPLIT_NG || nblk < 1)
		goto out;
	for (int64_t b = 0; b < nb; b++) {
		double acc = 0;
		for (int j = 0; j < nblk; j++) {
			acc += drift_um[b * nblk + j];
			moved |= drift_um[b * nblk + j] != 0;
		}
		m[b] = s[b] = (float) (acc / nblk);
	}
	if (!moved)
		goto out;
	qsort(s, (size_t) nb, sizeof(float), cmp_float);
	for (int64_t b = 0; b < nb; b++) {
		int g = 0;
		for (int k = 1; k < SS_DSPLIT_NG; k++)
			g += m[b] > s[nb * k / SS_DSPLIT_NG - 1];
		grp[b] = g;
	}
out:
	free(m);
	free(s);
	return moved;
}

int
ss_dsplit_check(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
                int64_t batch, const int *grp, int64_t nbatch, double *chi2,
                double *range)
{
	double ca[SS_DSPLIT_NG] = {0}, cb[SS_DSPLIT_NG] = {0};
	double lo = 1, hi = 0, x2 = 0;
	int used = 0;

	*chi2 = 0;
	*range = 0;
	if (na == 0 || nb == 0 || batch <= 0)
		return 0;
	for (int64_t i = 0; i < na; i++) {
		int64_t k = a[i] / batch;
		ca[grp[k < nbatch ? k : nbatch - 1]]++;
	}
	for (int64_t i = 0; i < nb; i++) {
		int64_t k = b[i] / batch;
		cb[grp[k < nbatch ? k : nbatch - 1]]++;
	}
	for (int g = 0; g < SS_DSPLIT_NG; g++) {
		double n = ca[g] + cb[g], ea, eb;
		if (n == 0)
			continue;
		used++;
		ea = n * (double) na / (double) (na + nb);
		eb = n - ea;
		x2 += (ca[g] - ea) * (ca[g] - ea) / ea +
		      (cb[g] - eb) * (cb[g] - eb) / eb;
		if (n >= 5) {
			lo = fmin(lo, ca[g] / n);
			hi = fmax(hi, ca[g] / n);
		}
	}
	*chi2 = x2;
	*range = hi > lo ? hi - lo : 0;
	/* the survival function of χ² with 2 degrees of freedom */
	return used == SS_DSPLIT_NG && exp(-0.5 * x2) < SS_DSPLIT_P &&
	       *range >= SS_DSPLIT_RANGE;
}
