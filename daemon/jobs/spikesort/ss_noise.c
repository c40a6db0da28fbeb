/*
 * ss_noise.c — the whitening's covariance is the noise's, not the spikes':
 * in a preprocessed batch, every channel's samples around spikes (threshold
 * crossings beyond k robust σ on it or on its nearest channels) are zeroed
 * before the covariance is summed, and each channel's kept samples are
 * counted so the sum can be normalised per channel pair. Without it, the
 * footprints of big units dominate the covariance and the whitening
 * flattens every direction they span: a small unit between two big ones
 * (its footprint a mix of theirs) came out six times smaller in whitened
 * units than alone, under the matching threshold.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

float
ss_median_inplace(float *v, int64_t n)
{
	int64_t lo = 0, hi = n - 1, k = n / 2;

	while (lo < hi) {
		float piv = v[lo + (hi - lo) / 2];
		int64_t i = lo, j = hi;
		while (i <= j) {
			/* the pivot stops both scans; the bounds say so
			 * to the analyzer */
			while (i < hi && v[i] < piv)
				i++;
			while (j > lo && v[j] > piv)
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

/* dil (T) = 1 within [t - before, t + after] of every sample t of channel
 * c of X (C × T) beyond k σ, σ = MAD / 0.6745. buf: T floats; dif: T + 1. */
static void
channel_windows(const float *X, int C, int64_t T, int c, double k, int before,
                int after, float *buf, int32_t *dif, unsigned char *dil)
{
	int32_t run = 0;
	float thr;

	for (int64_t t = 0; t < T; t++)
		buf[t] = fabsf(X[c + (size_t) C * t]);
	thr = (float) (k * ss_median_inplace(buf, T) / 0.6745);
	memset(dil, 0, (size_t) T);
	if (!(thr > 0))
		return; /* a dead channel: nothing to mask */
	memset(dif, 0, sizeof(int32_t) * ((size_t) T + 1));
	for (int64_t t = 0; t < T; t++)
		if (fabsf(X[c + (size_t) C * t]) > thr) {
			int64_t a = t - before, b = t + after + 1;
			dif[a > 0 ? a : 0]++;
			dif[b < T ? b : T]--;
		}
	for (int64_t t = 0; t < T; t++) {
		run += dif[t];
		dil[t] = run > 0;
	}
}

/* Zero channel c of X where any of its nm nearest channels' windows (dil,
 * C × T) lie; the samples left. row: T bytes. */
static int64_t
mask_channel(const struct ss_probe *p, float *X, int64_t T, int c, int nm,
             const unsigned char *dil, int *nb, unsigned char *row)
{
	int C = p->n;
	int64_t n = 0;

	ss_probe_nearest(p, c, nm, nb);
	memset(row, 0, (size_t) T);
	for (int j = 0; j < nm; j++) {
		const unsigned char *d = dil + (size_t) nb[j] * T;
		for (int64_t t = 0; t < T; t++)
			row[t] |= d[t];
	}
	for (int64_t t = 0; t < T; t++) {
		if (row[t])
			X[c + (size_t) C * t] = 0;
		else
			n++;
	}
	return n;
}

int
ss_noise_mask(const struct ss_probe *p, float *X, int64_t T, double k, int nm,
              int before, int after, int64_t *kept)
{
	int C = p->n, rc = NQ_ENOMEM;
	size_t CT = (size_t) C * (size_t) (T > 0 ? T : 0);
	unsigned char *dil = malloc(CT ? CT : 1);
	unsigned char *row = malloc((size_t) (T > 0 ? T : 0) + 1);
	float *buf = malloc(sizeof(float) * ((size_t) (T > 0 ? T : 0) + 1));
	int32_t *dif = malloc(sizeof(int32_t) * ((size_t) (T > 0 ? T : 0) + 1));
	int *nb = malloc(sizeof(int) * (size_t) (nm > 0 ? nm : 1));

	if (!dil || !row || !buf || !dif || !nb)
		goto out;
	nm = nm > C ? C : nm < 1 ? 1 : nm;
	rc = 0;
	if (T <= 0 || C <= 0)
		goto out;
	/* every channel's windows first (the masking zeroes X) */
	for (int c = 0; c < C; c++)
		channel_windows(X, C, T, c, k, before, after, buf, dif,
		                dil + (size_t) c * T);
	for (int c = 0; c < C; c++)
		kept[c] += mask_channel(p, X, T, c, nm, dil, nb, row);
out:
	free(dil);
	free(row);
	free(buf);
	free(dif);
	free(nb);
	return rc;
}
