/*
 * ss_filter.c — per-batch preprocessing in plain C: channel means, median
 * common reference, and a 3rd-order Butterworth high-pass run forward and
 * backward (zero phase), as Kilosort does before whitening.
 */
#include <math.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

int
ss_filter_design(struct ss_filter *f, double fs, double fc)
{
	double W, D;

	if (!(fs > 0) || !(fc > 0) || fc >= fs / 2)
		return NQ_EBADPARAM;
	/* bilinear transform of the analogue prototype 1/((s+1)(s²+s+1))
	 * with the high-pass substitution s → Ω (z+1)/(z-1), Ω prewarped */
	W = tan(M_PI * fc / fs);
	f->b1[0] = 1 / (1 + W);
	f->b1[1] = -1 / (1 + W);
	f->a1[0] = 1;
	f->a1[1] = (W - 1) / (W + 1);
	D = W * W + W + 1;
	f->b2[0] = 1 / D;
	f->b2[1] = -2 / D;
	f->b2[2] = 1 / D;
	f->a2[0] = 1;
	f->a2[1] = (2 * W * W - 2) / D;
	f->a2[2] = (W * W - W + 1) / D;
	return 0;
}

/* k-th smallest of v[0..n) (v reordered). */
static float
select_k(float *v, int n, int k)
{
	int lo = 0, hi = n - 1;

	while (lo < hi) {
		float piv = v[(lo + hi) / 2];
		int i = lo, j = hi;
		while (i <= j) {
			while (v[i] < piv)
				i++;
			while (v[j] > piv)
				j--;
			if (i <= j) {
				float t = v[i];
				v[i] = v[j];
				v[j] = t;
				i++;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return v[k];
}

/* Median of v[0..n) (n ≥ 3; the mean of the two middle values when n is
 * even), exact. The median moves little from one sample to the next, so
 * the values within ±*half of the last one (guess) are gathered without
 * branches and, when both middle ranks fall among them, only that small
 * set is searched; otherwise a full quickselect. *half adapts to keep the
 * set small but hit. buf: n floats. */
static float
median_near(const float *v, int n, float *buf, float guess, float *half)
{
	int k2 = n / 2, k1 = n % 2 == 0 ? k2 - 1 : k2, below = 0, m = 0;
	float lo = guess - *half, hi = guess + *half, med, lower;

	if (*half > 0) {
		for (int i = 0; i < n; i++) {
			buf[m] = v[i];
			m += (v[i] >= lo) & (v[i] < hi);
			below += v[i] < lo;
		}
		if (below <= k1 && k2 < below + m) {
			med = select_k(buf, m, k2 - below);
			lower = med;
			if (k1 < k2) {
				/* the lower middle is the max below it */
				lower = buf[0];
				for (int i = 1; i < k2 - below; i++)
					lower = buf[i] > lower ? buf[i] : lower;
			}
			if (4 * m > n)
				*half *= 0.7f;
			return k1 < k2 ? (med + lower) / 2 : med;
		}
	}
	memcpy(buf, v, sizeof(float) * (size_t) n);
	med = select_k(buf, n, k2);
	lower = med;
	if (k1 < k2) {
		lower = buf[0];
		for (int i = 1; i < k2; i++)
			lower = buf[i] > lower ? buf[i] : lower;
	}
	/* missed (or first sample): widen, from the spread of the values */
	if (*half > 0)
		*half *= 2;
	else {
		float a = buf[0], b = buf[0];
		for (int i = 1; i < n; i++) {
			a = buf[i] < a ? buf[i] : a;
			b = buf[i] > b ? buf[i] : b;
		}
		*half = (b - a) / 8 > 0 ? (b - a) / 8 : 1;
	}
	return k1 < k2 ? (med + lower) / 2 : med;
}

/* Both sections over all channels at once, one sample after the other, so
 * the inner loop runs over contiguous channels. dir = +1 or -1. */
static void
run_sections_batch(const struct ss_filter *f, float *X, int C, int64_t T,
                   int dir, double *st)
{
	double *z1 = st, *s1 = st + C, *s2 = st + 2 * C;
	const double b10 = f->b1[0], b11 = f->b1[1], a11 = f->a1[1];
	const double b20 = f->b2[0], b21 = f->b2[1], b22 = f->b2[2];
	const double a21 = f->a2[1], a22 = f->a2[2];
	int64_t t0 = dir > 0 ? 0 : T - 1;
	const float *x0 = X + (size_t) t0 * C;

	for (int c = 0; c < C; c++) {
		z1[c] = -b10 * x0[c];
		s1[c] = 0;
		s2[c] = 0;
	}
	for (int64_t i = 0; i < T; i++) {
		float *x = X + (size_t) (dir > 0 ? i : T - 1 - i) * C;
		for (int c = 0; c < C; c++) {
			double xi = x[c];
			double y = b10 * xi + z1[c];
			z1[c] = b11 * xi - a11 * y;
			double u = b20 * y + s1[c];
			s1[c] = b21 * y - a21 * u + s2[c];
			s2[c] = b22 * y - a22 * u;
			x[c] = (float) u;
		}
	}
}

void
ss_filter_filtfilt_batch(const struct ss_filter *f, float *X, int C, int64_t T,
                         double *work)
{
	run_sections_batch(f, X, C, T, +1, work);
	run_sections_batch(f, X, C, T, -1, work);
}

void
ss_preprocess(const struct ss_filter *f, float *X, int C, int64_t T, int car,
              double *work, float *cwork)
{
	memset(work, 0, sizeof(double) * (size_t) C);
	for (int64_t t = 0; t < T; t++)
		for (int c = 0; c < C; c++)
			work[c] += X[t * C + c];
	for (int c = 0; c < C; c++)
		cwork[c] = (float) (work[c] / (double) T);
	for (int64_t t = 0; t < T; t++)
		for (int c = 0; c < C; c++)
			X[t * C + c] -= cwork[c];
	if (car && C >= 3) {
		float guess = 0, half = 0;
		for (int64_t t = 0; t < T; t++) {
			float *col = X + t * C;
			float med = median_near(col, C, cwork, guess, &half);
			for (int c = 0; c < C; c++)
				col[c] -= med;
			guess = med;
		}
	}
	ss_filter_filtfilt_batch(f, X, C, T, work);
}
