/*
 * ss_post.c — after matching: spikes in time order, duplicates of a unit
 * within dup_ms dropped (the larger amplitude kept), clusters of
 * near-identical templates joined (similarity ≥ merge_corr), and the
 * refractory label: "good" when the autocorrelogram's rate within refrac_ms
 * is below good_ratio of its 10–50 ms baseline.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

void
ss_result_free(struct ss_result *r)
{
	free(r->times);
	free(r->templ);
	free(r->clust);
	free(r->amps);
	free(r->templates);
	free(r->wmat);
	free(r->wmat_inv);
	free(r->similar);
	free(r->good);
	free(r->contam);
	free(r->amp_mean);
	free(r->counts);
	memset(r, 0, sizeof(*r));
}

/* Cross-correlogram of two sorted trains: rate within ±ref over the rate
 * at 10–50 ms (both per sample of lag). -1 when independent trains would
 * put fewer than 8 pairs in the centre: a dip could not be told from
 * chance (P(≤ 1 | 8) ≈ 0.003). */
double
ss_ccg_ratio(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
             int64_t ref, int64_t b0, int64_t b1)
{
	int64_t nc = 0, nbase = 0, j0 = 0;

	for (int64_t i = 0; i < na; i++) {
		while (j0 < nb && b[j0] <= a[i] - b1)
			j0++;
		for (int64_t j = j0; j < nb && b[j] < a[i] + b1; j++) {
			int64_t d = b[j] - a[i];
			d = d < 0 ? -d : d;
			if (d < ref)
				nc++;
			else if (d >= b0)
				nbase++;
		}
	}
	if ((double) nbase * (double) (2 * ref - 1) / (double) (2 * (b1 - b0)) <
	    8)
		return -1;
	return ((double) nc / (double) (2 * ref - 1)) /
	       ((double) nbase / (double) (2 * (b1 - b0)));
}

static int
by_time(const void *a, const void *b, void *arg)
{
	int64_t i = *(const int64_t *) a, j = *(const int64_t *) b;
	const struct ss_match_out *o = arg;
	if (o->t[i] != o->t[j])
		return o->t[i] < o->t[j] ? -1 : 1;
	if (o->k[i] != o->k[j])
		return o->k[i] < o->k[j] ? -1 : 1;
	return i < j ? -1 : i > j;
}

static int
find(int *par, int i)
{
	while (par[i] != i)
		i = par[i] = par[par[i]];
	return i;
}

int
ss_post(const struct ss_config *cfg, const struct ss_templates *tp,
        struct ss_match_out *sp, struct ss_result *res)
{
	int K = tp->K, C = tp->C, nt = tp->nt, rc = NQ_ENOMEM;
	int64_t n = sp->n, m = 0;
	int64_t *ord = malloc(sizeof(int64_t) * (size_t) (n ? n : 1));
	int64_t *last = malloc(sizeof(int64_t) * (size_t) (K ? K : 1));
	uint8_t *keep = malloc((size_t) (n ? n : 1));
	int *par = malloc(sizeof(int) * (size_t) (K ? K : 1));
	int64_t dup = (int64_t) llround(cfg->dup_ms * 1e-3 * cfg->fs);
	int64_t ref = (int64_t) llround(cfg->refrac_ms * 1e-3 * cfg->fs);
	int64_t b0 = (int64_t) llround(0.010 * cfg->fs);
	int64_t b1 = (int64_t) llround(0.050 * cfg->fs);

	if (!ord || !last || !keep || !par)
		goto out;
	res->K = K;
	res->nt = nt;
	res->C = C;
	res->similar = calloc((size_t) K * K + 1, sizeof(float));
	res->good = calloc((size_t) K + 1, sizeof(int));
	res->contam = calloc((size_t) K + 1, sizeof(float));
	res->amp_mean = calloc((size_t) K + 1, sizeof(float));
	res->counts = calloc((size_t) K + 1, sizeof(int64_t));
	res->templates = malloc(sizeof(float) * ((size_t) K * C * nt + 1));
	if (!res->similar || !res->good || !res->contam || !res->amp_mean ||
	    !res->counts || !res->templates)
		goto out;
	/* W is C × nt column-major = nt × C row-major: phy's layout */
	if (K > 0)
		memcpy(res->templates, tp->W,
		       sizeof(float) * (size_t) K * C * nt);
	for (int64_t i = 0; i < n; i++)
		ord[i] = i;
	qsort_r(ord, (size_t) n, sizeof(int64_t), by_time, sp);
	for (int k = 0; k < K; k++)
		last[k] = -1;
	/* a spike within dup of the unit's last kept spike: keep the larger */
	for (int64_t j = 0; j < n; j++) {
		int64_t i = ord[j];
		int k = sp->k[i];
		keep[i] = 1;
		if (last[k] >= 0 && sp->t[i] - sp->t[last[k]] <= dup) {
			if (sp->a[i] > sp->a[last[k]]) {
				keep[last[k]] = 0;
				last[k] = i;
			} else {
				keep[i] = 0;
			}
			continue;
		}
		last[k] = i;
	}
	for (int64_t j = 0; j < n; j++)
		m += keep[ord[j]];
	res->times = malloc(sizeof(int64_t) * (size_t) (m ? m : 1));
	res->templ = malloc(sizeof(int32_t) * (size_t) (m ? m : 1));
	res->clust = malloc(sizeof(int32_t) * (size_t) (m ? m : 1));
	res->amps = malloc(sizeof(float) * (size_t) (m ? m : 1));
	if (!res->times || !res->templ || !res->clust || !res->amps)
		goto out;
	/* similarity; near-duplicate templates are one unit when their
	 * cross-correlogram has a refractory dip (two neurons with similar
	 * waveforms fire independently, so theirs does not) */
	{
		int64_t *tstart = calloc((size_t) K + 1, sizeof(int64_t));
		int64_t *tt = malloc(sizeof(int64_t) * (size_t) (m ? m : 1));
		if (!tstart || !tt) {
			free(tstart);
			free(tt);
			goto out;
		}
		for (int64_t j = 0; j < n; j++)
			if (keep[ord[j]])
				tstart[sp->k[ord[j]] + 1]++;
		for (int k = 0; k < K; k++)
			tstart[k + 1] += tstart[k];
		for (int k = 0; k < K; k++)
			last[k] = tstart[k];
		for (int64_t j = 0; j < n; j++)
			if (keep[ord[j]])
				tt[last[sp->k[ord[j]]]++] = sp->t[ord[j]];
		float *cn = malloc(sizeof(float) * ((size_t) K * C + 1));
		if (cn == NULL) {
			free(tstart);
			free(tt);
			goto out;
		}
		ss_template_chan_norms(tp->W, K, C, nt, cn);
		for (int k = 0; k < K; k++)
			par[k] = k;
		for (int a = 0; a < K; a++) {
			res->similar[a * K + a] = 1;
			for (int b = a + 1; b < K; b++) {
				/* below 0.05 is written as 0 */
				double s = ss_template_corr_sparse(
				        tp->W + (size_t) a * C * nt,
				        tp->W + (size_t) b * C * nt,
				        cn + (size_t) a * C,
				        cn + (size_t) b * C, C, nt,
				        cfg->nt0min / 2, 0.05);
				res->similar[a * K + b] =
				        res->similar[b * K + a] = (float) s;
				if (s < cfg->merge_corr)
					continue;
				double q = ss_ccg_ratio(
				        tt + tstart[a],
				        tstart[a + 1] - tstart[a],
				        tt + tstart[b],
				        tstart[b + 1] - tstart[b], ref, b0, b1);
				if (s < cfg->merge_corr_shape &&
				    !(q >= 0 && q < cfg->good_ratio))
					continue;
				int ra = find(par, a), rb = find(par, b);
				if (ra != rb)
					par[ra > rb ? ra : rb] =
					        ra < rb ? ra : rb;
			}
		}
		free(cn);
		free(tstart);
		free(tt);
	}
	m = 0;
	for (int64_t j = 0; j < n; j++) {
		int64_t i = ord[j];
		if (!keep[i])
			continue;
		res->times[m] = sp->t[i];
		res->templ[m] = sp->k[i];
		res->clust[m] = find(par, sp->k[i]);
		res->amps[m] = sp->a[i];
		m++;
	}
	res->n_spikes = m;
	/* per-cluster statistics from the time-ordered spikes */
	{
		int64_t *start = calloc((size_t) K + 1, sizeof(int64_t));
		int64_t *tt = malloc(sizeof(int64_t) * (size_t) (m ? m : 1));
		if (!start || !tt) {
			free(start);
			free(tt);
			goto out;
		}
		for (int64_t i = 0; i < m; i++) {
			res->counts[res->clust[i]]++;
			res->amp_mean[res->clust[i]] += res->amps[i];
		}
		for (int k = 0; k < K; k++)
			start[k + 1] = start[k] + res->counts[k];
		for (int k = 0; k < K; k++)
			last[k] = start[k];
		for (int64_t i = 0; i < m; i++)
			tt[last[res->clust[i]]++] = res->times[i];
		res->n_units = res->n_good = 0;
		for (int k = 0; k < K; k++) {
			int64_t cnt = res->counts[k], nc = 0, nb = 0;
			if (cnt == 0)
				continue;
			res->n_units++;
			res->amp_mean[k] /= (float) cnt;
			const int64_t *x = tt + start[k];
			for (int64_t i = 0; i < cnt; i++)
				for (int64_t j = i + 1; j < cnt; j++) {
					int64_t d = x[j] - x[i];
					if (d >= b1)
						break;
					if (d < ref)
						nc++;
					else if (d >= b0)
						nb++;
				}
			double rc_rate = (double) nc / (double) ref;
			double rb_rate = (double) nb / (double) (b1 - b0);
			double ratio = rb_rate > 0 ? rc_rate / rb_rate : 1;
			res->contam[k] = (float) (100 * fmin(ratio, 1));
			res->good[k] = nb > 0 && ratio < cfg->good_ratio;
			res->n_good += res->good[k];
		}
		free(start);
		free(tt);
	}
	rc = 0;
out:
	free(ord);
	free(last);
	free(keep);
	free(par);
	return rc;
}
