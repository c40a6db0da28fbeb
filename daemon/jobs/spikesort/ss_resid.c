/*
 * ss_resid.c — a second detection on a learning pass's residual, for small
 * units whose spikes never cross th_detect on any one whitened channel.
 *
 * The whitening of every sample flattens the channels a big unit dominates
 * (on SpikeInterface's 32-channel recording, a 115 µV unit on the channel
 * of a 1666 µV one stands 1.6 whitened units tall there, where th_detect is
 * 4), so threshold crossings never see it, though its whole footprint
 * stands about 6 σ out of the noise. Kilosort 4 finds such units with
 * universal templates matched after the big units are subtracted; here,
 * after the big units are peeled off by a learning pass (every other
 * batch of it: ss_sort.c), each channel of the residual is filtered with
 * the learned templates' mean temporal shape, put in its own robust σ,
 * and pooled with its nearest channel; local
 * maxima of that score at or above th_resid (σ) are clustered into more
 * templates (ss_cluster), which the next learning pass refines or drops.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

/* every SIG_STEP-th sample of a batch's core gives a channel's σ */
#define SIG_STEP 16

float
ss_resid_score2(float zc, float zn)
{
	return zc > 0 ? zc * zc + zn * zn : 0.0F;
}

int
ss_resid_filter(const float *W, int K, int C, int nt, int nt0min, int nh,
                int h0, float *h)
{
	size_t L = (size_t) C * (size_t) nt;
	double nrm = 0;

	if (K < 1 || nh < 1 || h0 < 0 || h0 > nt0min || nt0min - h0 + nh > nt)
		return NQ_EBADPARAM;
	memset(h, 0, sizeof(float) * (size_t) nh);
	for (int k = 0; k < K; k++) {
		const float *w = W + (size_t) k * L;
		int pc = 0;
		float best = -1;
		double s = 0;
		for (int c = 0; c < C; c++) {
			float a = fabsf(w[c + (size_t) C * nt0min]);
			if (a > best) {
				best = a;
				pc = c;
			}
		}
		for (int i = 0; i < nh; i++) {
			double v = w[pc + (size_t) C * (nt0min - h0 + i)];
			s += v * v;
		}
		if (s <= 0)
			continue;
		/* troughs negative: a peak channel whose trough sample is
		 * positive is flipped */
		s = (w[pc + (size_t) C * nt0min] > 0 ? -1 : 1) / sqrt(s);
		for (int i = 0; i < nh; i++)
			h[i] += (float) (s * w[pc +
			                       (size_t) C * (nt0min - h0 + i)]);
	}
	for (int i = 0; i < nh; i++)
		nrm += (double) h[i] * h[i];
	if (nrm <= 0)
		return NQ_EBADPARAM;
	for (int i = 0; i < nh; i++)
		h[i] = (float) (h[i] / sqrt(nrm));
	return 0;
}

/* Z = each channel of R correlated with h (troughs give Z > 0), for t in
 * [a, b), then divided by the channel's robust σ over [lo, hi). Rows and
 * channels are independent: threads share them, with the same sums. */
static int
filter_norm(const float *R, int C, int64_t a, int64_t b, int64_t lo, int64_t hi,
            const float *h, int nh, int h0, float *Z)
{
	int64_t ns = (hi - lo + SIG_STEP - 1) / SIG_STEP;
	float *v = malloc(sizeof(float) * (size_t) (ns > 0 ? ns : 1) *
	                  (size_t) (C > 0 ? C : 1));
	float *inv = malloc(sizeof(float) * (size_t) (C > 0 ? C : 1));

	if (v == NULL || inv == NULL) {
		free(v);
		free(inv);
		return NQ_ENOMEM;
	}
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
	for (int64_t t = a; t < b; t++) {
		float *z = Z + (size_t) t * C;
		memset(z, 0, sizeof(float) * (size_t) C);
		for (int i = 0; i < nh; i++) {
			const float *x = R + (size_t) (t - h0 + i) * C;
			float hv = h[i];
			for (int c = 0; c < C; c++)
				z[c] += hv * x[c];
		}
	}
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4)
#endif
	for (int c = 0; c < C; c++) {
		float *vc = v + (size_t) c * (size_t) (ns > 0 ? ns : 1);
		int64_t n = 0;
		for (int64_t t = lo; t < hi; t += SIG_STEP)
			vc[n++] = fabsf(Z[(size_t) t * C + c]);
		float sig = n > 0 ? ss_median_inplace(vc, n) / 0.6745F : 0;
		inv[c] = sig > 0 ? 1 / sig : 0;
	}
	/* row by row: a channel's column is C floats apart */
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
	for (int64_t t = a; t < b; t++) {
		float *z = Z + (size_t) t * C;
		for (int c = 0; c < C; c++)
			z[c] *= inv[c];
	}
	free(v);
	free(inv);
	return 0;
}

/* Is (t, c) within w of one of the nm matched spikes (mt increasing)
 * whose peak channel has c among its nc nearest (nbr)? */
static int
leftover(int64_t t, int c, const int64_t *mt, const int *mc, int64_t nm,
         int64_t w, const int32_t *nbr, int nc)
{
	int64_t a = 0, b = nm;

	while (a < b) { /* first mt ≥ t − w */
		int64_t m = a + (b - a) / 2;
		if (mt[m] < t - w)
			a = m + 1;
		else
			b = m;
	}
	for (; a < nm && mt[a] <= t + w; a++)
		for (int j = 0; j < nc; j++)
			if (nbr[(size_t) mc[a] * nc + j] == c)
				return 1;
	return 0;
}

/* The score's local maxima: E (C × T) valid on [a, b), over ±w samples
 * and each channel's nc nearest (nbr). */
struct scan {
	const float *E;
	const int32_t *nbr;
	int64_t a, b;
	int C, nc, w;
};

/* (t, c) at or above th (squared, as E) and a strict maximum, ties to the
 * earlier sample then the lower channel. */
static int
is_peak(const struct scan *s, int64_t t, int c, float th)
{
	float e = s->E[(size_t) t * s->C + c];
	const int32_t *nb = s->nbr + (size_t) c * s->nc;

	if (!(e >= th))
		return 0;
	for (int64_t u = t - s->w; u <= t + s->w; u++) {
		if (u < s->a || u >= s->b)
			continue;
		for (int j = 0; j < s->nc; j++) {
			float e2 = s->E[(size_t) u * s->C + nb[j]];
			if (u == t && nb[j] == c)
				continue;
			if (e2 > e ||
			    (e2 == e && (u < t || (u == t && nb[j] < c))))
				return 0;
		}
	}
	return 1;
}

/* Z (C × T) on [a, b) becomes the pooled score squared, row by row (row:
 * C). */
static void
pool(float *Z, int C, int64_t a, int64_t b, const int *nn, float *row)
{
	for (int64_t t = a; t < b; t++) {
		float *z = Z + (size_t) t * C;
		for (int c = 0; c < C; c++)
			row[c] = ss_resid_score2(z[c], z[nn[c]]);
		memcpy(z, row, sizeof(float) * (size_t) C);
	}
}

/* The peak (t, c) into out with its snippet of R (from w before t, on
 * c's out->nc nearest), as kern snippets gathers it. */
static int
push_peak(struct ss_spikes *out, const float *R, int C, const int32_t *nbr,
          int w, int64_t t, int c, int64_t t_abs0)
{
	int nc = out->nc, nt = out->nt, rc;
	const float *Rt = R + (size_t) (t - w) * C;
	const int32_t *nb = nbr + (size_t) c * nc;
	float *s;

	if ((rc = ss_spikes_push(out, t_abs0 + t, c, &s)) != 0)
		return rc;
	for (int j = 0; j < nc; j++)
		for (int k = 0; k < nt; k++)
			s[(size_t) j * nt + k] = Rt[(size_t) k * C + nb[j]];
	return 0;
}

int
ss_resid_detect(const struct ss_config *cfg, const struct ss_probe *p,
                const float *R, int64_t T, int64_t lo, int64_t hi,
                int64_t t_abs0, const float *h, int nh, int h0, double th,
                const int64_t *mt, const int *mc, int64_t nm, int per_chan_cap,
                int64_t *chan_count, struct ss_spikes *out)
{
	int C = p->n, nc = cfg->nc_feat < C ? cfg->nc_feat : C, nt = cfg->nt;
	int w = cfg->nt0min, rc = NQ_ENOMEM;
	int32_t *nbr = malloc(sizeof(int32_t) * (size_t) C * (size_t) nc);
	int *nn = malloc(sizeof(int) * (size_t) C);
	float *Z = NULL, *row = malloc(sizeof(float) * (size_t) (C + 1));
	struct scan sc;

	if (nbr == NULL || nn == NULL || row == NULL ||
	    ss_probe_neighbours(p, nc, nbr) != 0)
		goto out;
	out->nc = nc;
	out->nt = nt;
	/* each channel's nearest other (itself on a one-channel probe) */
	for (int c = 0; c < C; c++)
		nn[c] = nc > 1 ? nbr[(size_t) c * nc + 1] : c;
	ss_trough_range(cfg, T, &lo, &hi);
	/* the score where the filter fits, around [lo, hi) by w */
	sc.a = lo - w > h0 ? lo - w : h0;
	sc.b = hi + w < T - nh + h0 + 1 ? hi + w : T - nh + h0 + 1;
	rc = 0;
	if (lo >= hi || C == 0 || sc.a >= sc.b)
		goto out;
	rc = NQ_ENOMEM;
	if ((Z = malloc(sizeof(float) * (size_t) C * (size_t) T)) == NULL)
		goto out;
	if ((rc = filter_norm(R, C, sc.a, sc.b, lo, hi, h, nh, h0, Z)) != 0)
		goto out;
	pool(Z, C, sc.a, sc.b, nn, row);
	sc.E = Z;
	sc.nbr = nbr;
	sc.C = C;
	sc.nc = nc;
	sc.w = w;
	for (int64_t t = lo; t < hi; t++)
		for (int c = 0; c < C; c++) {
			if (!is_peak(&sc, t, c, (float) (th * th)) ||
			    chan_count[c] >= per_chan_cap ||
			    leftover(t, c, mt, mc, nm, w / 2, nbr, nc))
				continue;
			chan_count[c]++;
			if ((rc = push_peak(out, R, C, nbr, w, t, c, t_abs0)) !=
			    0)
				goto out;
		}
	rc = 0;
out:
	free(nbr);
	free(nn);
	free(Z);
	free(row);
	return rc;
}
