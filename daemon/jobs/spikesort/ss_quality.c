/*
 * ss_quality.c — per-unit quality metrics (SpikeInterface's definitions,
 * see ss_quality.h) and the good/mua label decided from them.
 */
#include "ss_quality.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

/* |x| ≥ 2^-8: bin by exponent and the top 6 mantissa bits */
#define QH_EXP0 119 /* biased exponent of 2^-8 */

void
ss_quality_free(struct ss_quality *q)
{
	if (q == NULL)
		return;
	free(q->num_spikes);
	free(q->firing_rate);
	free(q->presence_ratio);
	free(q->isi_ratio);
	free(q->amp_cutoff);
	free(q->snr);
	free(q->amp_median);
	free(q->isi_count);
	free(q->main_chan);
	free(q->noise);
	free(q->wsum);
	free(q->wcnt);
	free(q->peak);
	free(q->hist);
	free(q);
}

int
ss_q_hist_bin(float x)
{
	union {
		float f;
		uint32_t u;
	} v = {fabsf(x)};
	int64_t i = (int64_t) (v.u >> 17) - (int64_t) QH_EXP0 * 64;

	if (!(v.f >= 0x1p-8f))
		return 0; /* small, or NaN */
	return i >= SS_QH_BINS ? SS_QH_BINS - 1 : (int) i;
}

static double
hist_edge(int i)
{
	union {
		float f;
		uint32_t u;
	} v;

	if (i <= 0)
		return 0;
	v.u = (uint32_t) (i + QH_EXP0 * 64) << 17;
	return v.f;
}

double
ss_q_hist_median(const uint64_t *h)
{
	uint64_t tot = 0, cum = 0;

	for (int i = 0; i < SS_QH_BINS; i++)
		tot += h[i];
	if (tot == 0)
		return NAN;
	for (int i = 0; i < SS_QH_BINS; i++) {
		if ((double) (cum + h[i]) >= 0.5 * (double) tot) {
			double f = (0.5 * (double) tot - (double) cum) /
			           (double) h[i];
			double a = hist_edge(i), b = hist_edge(i + 1);
			return a + f * (b - a);
		}
		cum += h[i];
	}
	return NAN;
}

double
ss_q_presence_ratio(const int64_t *t, int64_t n, int64_t n_samples, int64_t bin)
{
	int64_t nb, hit = 0, last = -1;

	if (bin <= 0 || n_samples < bin || n == 0)
		return NAN;
	nb = n_samples / bin;
	for (int64_t i = 0; i < n; i++) {
		int64_t b = t[i] / bin;
		if (t[i] < 0 || t[i] > nb * bin)
			continue;
		if (b == nb)
			b = nb - 1; /* the last edge is inclusive */
		if (b != last) {
			hit++;
			last = b;
		}
	}
	return (double) hit / (double) nb;
}

double
ss_q_isi_violations(const int64_t *t, int64_t n, double duration_s,
                    double thr_s, double min_isi_s, double fs, int64_t *count)
{
	int64_t nv = 0;

	*count = 0;
	if (n == 0 || duration_s <= 0 || thr_s <= min_isi_s)
		return NAN;
	for (int64_t i = 1; i < n; i++)
		if ((double) (t[i] - t[i - 1]) / fs < thr_s)
			nv++;
	*count = nv;
	double viol_rate =
	        (double) nv / (2.0 * (double) n * (thr_s - min_isi_s));
	return viol_rate / ((double) n / duration_s);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;
	return x < y ? -1 : x > y;
}

static double
median_sorted(const double *x, int64_t n)
{
	if (n == 0)
		return NAN;
	return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

double
ss_q_amplitude_cutoff(const float *a, int64_t n, int nbins, double sigma,
                      int min_ratio, double *work)
{
	int rad = (int) (4.0 * sigma + 0.5);
	double lo, hi, sg = 1, missed = 0, wsum = 0;
	int64_t *h, *pdf;
	double *w;
	int g = 0;

	if (nbins < 1 || (double) n / nbins < min_ratio || n == 0)
		return NAN;
	for (int64_t i = 0; i < n; i++)
		work[i] = a[i];
	qsort(work, (size_t) n, sizeof(double), cmp_double);
	if (median_sorted(work, n) < 0)
		sg = -1;
	lo = sg > 0 ? work[0] : -work[n - 1];
	hi = sg > 0 ? work[n - 1] : -work[0];
	if (hi == lo) {
		/* numpy's histogram of a constant: range ± 0.5 */
		lo -= 0.5;
		hi += 0.5;
	}
	h = calloc((size_t) nbins, sizeof(int64_t));
	pdf = malloc(sizeof(int64_t) * (size_t) nbins);
	w = calloc(2 * (size_t) rad + 1, sizeof(double));
	if (!h || !pdf || !w) {
		free(h);
		free(pdf);
		free(w);
		return NAN;
	}
	for (int64_t i = 0; i < n; i++) {
		double x = sg * work[i];
		int64_t b = (int64_t) ((x - lo) / (hi - lo) * nbins);
		h[b < 0 ? 0 : b >= nbins ? nbins - 1 : b]++;
	}
	/* scipy's gaussian_filter1d (truncate 4, mode "nearest") on integer
	 * counts keeps their type: each value is cut to an integer */
	for (int j = -rad; j <= rad; j++)
		wsum += w[j + rad] = exp(-0.5 * j * j / (sigma * sigma));
	for (int i = 0; i < nbins; i++) {
		double s = 0;
		for (int j = -rad; j <= rad; j++) {
			int q = i + j;
			q = q < 0 ? 0 : q >= nbins ? nbins - 1 : q;
			s += w[j + rad] / wsum * (double) h[q];
		}
		pdf[i] = (int64_t) s;
	}
	/* the last bin as high as the lowest: beyond it, the upper tail
	 * mirrors what the threshold cut from the lower one */
	for (int i = 0; i < nbins; i++)
		if (pdf[i] >= pdf[0])
			g = i;
	for (int i = g + 1; i < nbins; i++)
		missed += (double) pdf[i];
	free(h);
	free(pdf);
	free(w);
	return fmin(missed / ((double) n + missed), 0.5);
}

double
ss_quality_presence_bin(const struct ss_config *cfg, double duration_s)
{
	if (cfg->presence_bin_s > 0)
		return cfg->presence_bin_s;
	return fmin(60, fmax(10, duration_s / 20));
}

int
ss_quality_is_good(const struct ss_config *cfg, const struct ss_quality *q,
                   int k)
{
	if (q->num_spikes[k] == 0)
		return 0;
	if (q->isi_ratio[k] >= cfg->good_isi) /* false for NaN */
		return 0;
	if (q->presence_ratio[k] < cfg->good_presence)
		return 0;
	if (q->amp_cutoff[k] > cfg->good_amp_cutoff)
		return 0;
	if (q->snr[k] < cfg->good_snr)
		return 0;
	return 1;
}

int
ss_quality_begin(const struct ss_config *cfg, struct ss_result *res)
{
	int K = res->K, C = res->C, nt = res->nt;
	struct ss_quality *q = calloc(1, sizeof(*q));
	size_t k1 = (size_t) (K > 0 ? K : 1);
	double *wt = NULL, *u = NULL, *x = NULL;
	int32_t *tc = NULL;

	if (q == NULL)
		return NQ_ENOMEM;
	ss_quality_free(res->quality);
	res->quality = q;
	q->K = K;
	q->C = C;
	q->nt = nt;
	q->nt0min = cfg->nt0min;
	q->num_spikes = calloc(k1, sizeof(int64_t));
	q->firing_rate = malloc(sizeof(double) * k1);
	q->presence_ratio = malloc(sizeof(double) * k1);
	q->isi_ratio = malloc(sizeof(double) * k1);
	q->amp_cutoff = malloc(sizeof(double) * k1);
	q->snr = malloc(sizeof(double) * k1);
	q->amp_median = malloc(sizeof(double) * k1);
	q->isi_count = calloc(k1, sizeof(int64_t));
	q->main_chan = calloc(k1, sizeof(int32_t));
	q->noise = malloc(sizeof(double) * (size_t) (C > 0 ? C : 1));
	q->wsum = calloc(k1 * (size_t) nt, sizeof(double));
	q->wcnt = calloc(k1, sizeof(int64_t));
	q->peak = calloc((size_t) (res->n_spikes ? res->n_spikes : 1),
	                 sizeof(float));
	q->hist = calloc((size_t) C * SS_QH_BINS, sizeof(uint64_t));
	wt = calloc(k1, sizeof(double));
	tc = malloc(sizeof(int32_t) * k1);
	u = malloc(sizeof(double) * (size_t) nt * (size_t) C);
	x = malloc(sizeof(double) * (size_t) C);
	if (!q->num_spikes || !q->firing_rate || !q->presence_ratio ||
	    !q->isi_ratio || !q->amp_cutoff || !q->snr || !q->amp_median ||
	    !q->isi_count || !q->main_chan || !q->noise || !q->wsum ||
	    !q->wcnt || !q->peak || !q->hist || !wt || !tc || !u || !x) {
		free(wt);
		free(tc);
		free(u);
		free(x);
		return NQ_ENOMEM;
	}
	/* each template's weight (its spikes' amplitudes) and cluster */
	for (int k = 0; k < K; k++)
		tc[k] = -1;
	for (int64_t i = 0; i < res->n_spikes; i++) {
		wt[res->templ[i]] += res->amps[i];
		tc[res->templ[i]] = res->clust[i];
	}
	/* a cluster's mean waveform, modelled: its templates, unwhitened
	 * (phy's rows: x = y W⁻¹), weighted; its most negative channel */
	for (int cl = 0; cl < K; cl++) {
		int any = 0;
		memset(u, 0, sizeof(double) * (size_t) nt * C);
		for (int k = 0; k < K; k++) {
			if (tc[k] != cl)
				continue;
			any = 1;
			const float *T = res->templates + (size_t) k * nt * C;
			for (int a = 0; a < nt; a++) {
				memset(x, 0, sizeof(double) * (size_t) C);
				for (int j = 0; j < C; j++) {
					double y = T[(size_t) a * C + j];
					if (y == 0)
						continue;
					const float *wi =
					        res->wmat_inv + (size_t) j * C;
					for (int c = 0; c < C; c++)
						x[c] += y * wi[c];
				}
				for (int c = 0; c < C; c++)
					u[(size_t) a * C + c] += wt[k] * x[c];
			}
		}
		if (!any)
			continue;
		double best = INFINITY;
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++)
				if (u[(size_t) a * C + c] < best) {
					best = u[(size_t) a * C + c];
					q->main_chan[cl] = c;
				}
	}
	free(wt);
	free(tc);
	free(u);
	free(x);
	return 0;
}

void
ss_quality_batch(struct ss_quality *q, const struct ss_result *res,
                 const float *Y, int64_t T, int64_t base, int64_t lo,
                 int64_t hi)
{
	int C = q->C, nt = q->nt;

	for (int64_t i = lo - base; i < hi - base; i++) {
		if (i < 0 || i >= T)
			continue;
		const float *y = Y + (size_t) C * i;
		for (int c = 0; c < C; c++)
			q->hist[(size_t) c * SS_QH_BINS +
			        ss_q_hist_bin(y[c])]++;
	}
	while (q->next < res->n_spikes && res->times[q->next] < lo)
		q->next++;
	for (; q->next < res->n_spikes && res->times[q->next] < hi; q->next++) {
		int64_t s = q->next, t = res->times[s] - base;
		int k = res->clust[s], m;
		if (k < 0 || k >= q->K || t < 0 || t >= T)
			continue;
		m = q->main_chan[k];
		q->peak[s] = Y[(size_t) C * t + m];
		if (t - q->nt0min < 0 || t - q->nt0min + nt > T)
			continue;
		double *w = q->wsum + (size_t) k * nt;
		const float *y = Y + (size_t) C * (t - q->nt0min) + m;
		for (int a = 0; a < nt; a++)
			w[a] += y[(size_t) C * a];
		q->wcnt[k]++;
	}
}

int
ss_quality_finish(const struct ss_config *cfg, struct ss_result *res)
{
	struct ss_quality *q = res->quality;
	int K = res->K, nt = res->nt;
	int64_t m = res->n_spikes, *start = NULL, *fill = NULL, *idx = NULL;
	int64_t *tt = NULL;
	double dur = (double) res->n_samples / cfg->fs, *work = NULL;
	float *amp = NULL;
	int rc = NQ_ENOMEM;
	int64_t pbin;

	if (q == NULL || q->K != K)
		return NQ_EINTERNAL;
	start = calloc((size_t) K + 1, sizeof(int64_t));
	fill = malloc(sizeof(int64_t) * (size_t) (K ? K : 1));
	idx = malloc(sizeof(int64_t) * (size_t) (m ? m : 1));
	tt = malloc(sizeof(int64_t) * (size_t) (m ? m : 1));
	amp = malloc(sizeof(float) * (size_t) (m ? m : 1));
	work = malloc(sizeof(double) * (size_t) (m ? m : 1));
	if (!start || !fill || !idx || !tt || !amp || !work)
		goto out;
	for (int c = 0; c < q->C; c++)
		q->noise[c] =
		        ss_q_hist_median(q->hist + (size_t) c * SS_QH_BINS) /
		        0.6744897501960817;
	/* spikes grouped by cluster, in time order */
	for (int64_t i = 0; i < m; i++)
		start[res->clust[i] + 1]++;
	for (int k = 0; k < K; k++) {
		start[k + 1] += start[k];
		fill[k] = start[k];
	}
	for (int64_t i = 0; i < m; i++)
		idx[fill[res->clust[i]]++] = i;
	res->n_good = 0;
	pbin = (int64_t) (ss_quality_presence_bin(cfg, dur) * cfg->fs);
	for (int k = 0; k < K; k++) {
		int64_t n = start[k + 1] - start[k];
		const int64_t *ix = idx + start[k];
		q->num_spikes[k] = n;
		q->firing_rate[k] = NAN;
		q->presence_ratio[k] = NAN;
		q->isi_ratio[k] = NAN;
		q->amp_cutoff[k] = NAN;
		q->snr[k] = NAN;
		q->amp_median[k] = NAN;
		q->isi_count[k] = 0;
		res->good[k] = 0;
		if (n == 0)
			continue;
		for (int64_t j = 0; j < n; j++) {
			tt[j] = res->times[ix[j]];
			amp[j] = res->amps[ix[j]];
			work[j] = q->peak[ix[j]];
		}
		q->firing_rate[k] = (double) n / dur;
		q->presence_ratio[k] =
		        ss_q_presence_ratio(tt, n, res->n_samples, pbin);
		q->isi_ratio[k] =
		        ss_q_isi_violations(tt, n, dur, cfg->isi_ms * 1e-3, 0,
		                            cfg->fs, &q->isi_count[k]);
		qsort(work, (size_t) n, sizeof(double), cmp_double);
		q->amp_median[k] = median_sorted(work, n);
		q->amp_cutoff[k] =
		        ss_q_amplitude_cutoff(amp, n, 100, 3, 5, work);
		if (q->wcnt[k] > 0 && q->noise[q->main_chan[k]] > 0) {
			const double *w = q->wsum + (size_t) k * nt;
			double ext = 0;
			for (int a = 0; a < nt; a++)
				ext = fmax(ext, fabs(w[a]));
			q->snr[k] = ext / (double) q->wcnt[k] /
			            q->noise[q->main_chan[k]];
		}
		res->good[k] = ss_quality_is_good(cfg, q, k);
		res->n_good += res->good[k];
	}
	rc = 0;
out:
	free(start);
	free(fill);
	free(idx);
	free(tt);
	free(amp);
	free(work);
	return rc;
}

double
ss_quality_median(const struct ss_quality *q, const double *v)
{
	double *x = malloc(sizeof(double) * (size_t) (q->K ? q->K : 1)), r;
	int64_t n = 0;

	if (x == NULL)
		return NAN;
	for (int k = 0; k < q->K; k++)
		if (q->num_spikes[k] > 0 && !isnan(v[k]))
			x[n++] = v[k];
	qsort(x, (size_t) n, sizeof(double), cmp_double);
	r = median_sorted(x, n);
	free(x);
	return r;
}
