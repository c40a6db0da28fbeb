/*
 * ss_post.c — after matching: spikes in time order, duplicates of a unit
 * within dup_ms dropped (the larger amplitude kept), clusters of
 * near-identical templates joined (similarity ≥ merge_corr), and a
 * provisional refractory label: "good" when the autocorrelogram's rate
 * within refrac_ms is below good_ratio of its 10–50 ms baseline. The job
 * replaces it with the label from the quality metrics (ss_quality_finish,
 * after the features pass has measured SNR and amplitudes). Last, the
 * template ids are renumbered so the spikes' templates and clusters have no
 * gaps (ss_order.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"
#include "ss_dsplit.h"
#include "ss_order.h"
#include "ss_quality.h"

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
	free(r->drift_um);
	free(r->drift_block_um);
	free(r->merges);
	ss_quality_free(r->quality);
	memset(r, 0, sizeof(*r));
}

void
ss_ccg_counts(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
              int64_t ref, int64_t b0, int64_t b1, int64_t *nc_, double *expect)
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
	*nc_ = nc;
	*expect = (double) nbase * (double) (2 * ref - 1) /
	          (double) (2 * (b1 - b0));
}

/* Cross-correlogram of two sorted trains: rate within ±ref over the rate
 * at 10–50 ms (both per sample of lag). -1 when a dip could not be told
 * from chance: independent trains would put fewer than 8 pairs in the
 * centre (P(≤ 1 | 8) ≈ 0.003), or fewer than 5 and some are there (an
 * empty centre where 5 are expected has P ≈ 0.007; a 15 Hz unit split
 * between two templates over a minute expects ~6). */
double
ss_ccg_ratio(const int64_t *a, int64_t na, const int64_t *b, int64_t nb,
             int64_t ref, int64_t b0, int64_t b1)
{
	int64_t nc;
	double expect;

	ss_ccg_counts(a, na, b, nb, ref, b0, b1, &nc, &expect);
	if (expect < 8 && !(expect >= 5 && nc == 0))
		return -1;
	return (double) nc / expect;
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

static int
by_amp(const void *x, const void *y, void *arg)
{
	int a = *(const int *) x, b = *(const int *) y;
	const double *amp = arg;
	if (amp[a] != amp[b])
		return amp[a] > amp[b] ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* Does unit u's spike i (time t) have a kept spike of the train v (spike
 * indices in time order, *j the first that may be in range) within ±d? */
static int
coincident(const struct ss_match_out *sp, const uint8_t *keep, const int64_t *v,
           int64_t nv, int64_t *j, int64_t t, int64_t d)
{
	while (*j < nv && sp->t[v[*j]] < t - d)
		(*j)++;
	for (int64_t q = *j; q < nv && sp->t[v[q]] <= t + d; q++)
		if (keep[v[q]])
			return 1;
	return 0;
}

/* Cross-unit duplicates. A spike that travels along the probe (delays
 * between channels that a rank-3 template cannot follow) leaves a delayed
 * copy in the residual on channels beside its peak, which a neighbouring
 * template matches every time a fraction of a millisecond later: a unit
 * made of copies, or a small unit padded with them (half its precision).
 * A unit u whose train is locked to that of a bigger unit v sharing
 * channels with it (at least a fifth of u's spikes within xdup_ms of one
 * of v's, and ten times what independent trains give) loses those spikes;
 * its other spikes stay unless fewer than min_spikes are left. Units go
 * biggest (mean amplitude) first, so a copy is judged against a train
 * already cleaned. */
static int
drop_echoes(const struct ss_config *cfg, const struct ss_templates *tp,
            const struct ss_match_out *sp, const int64_t *ord, int64_t n,
            uint8_t *keep)
{
	int K = tp->K, C = tp->C, nt = tp->nt, rc = NQ_ENOMEM;
	int64_t d = (int64_t) llround(cfg->xdup_ms * 1e-3 * cfg->fs);

	if (d <= 0 || K < 2 || n < 2)
		return 0;
	int64_t *st = calloc((size_t) K + 1, sizeof(int64_t));
	int64_t *fill = malloc(sizeof(int64_t) * (size_t) K);
	int64_t *ti = malloc(sizeof(int64_t) * (size_t) n);
	double *amp = calloc((size_t) K, sizeof(double));
	int *uo = malloc(sizeof(int) * (size_t) K);
	uint8_t *ch = calloc((size_t) K * C, 1);
	double span = (double) (sp->t[ord[n - 1]] - sp->t[ord[0]] + 1);

	if (!st || !fill || !ti || !amp || !uo || !ch)
		goto out;
	for (int64_t j = 0; j < n; j++) {
		int64_t i = ord[j];
		if (!keep[i])
			continue;
		st[sp->k[i] + 1]++;
		amp[sp->k[i]] += sp->a[i];
	}
	for (int k = 0; k < K; k++) {
		amp[k] = st[k + 1] > 0 ? amp[k] / (double) st[k + 1] : 0;
		st[k + 1] += st[k];
		fill[k] = st[k];
		uo[k] = k;
		for (int c = 0; c < C; c++)
			for (int a = 0; a < nt; a++)
				if (tp->W[(size_t) k * C * nt + c +
				          (size_t) C * a] != 0) {
					ch[(size_t) k * C + c] = 1;
					break;
				}
	}
	for (int64_t j = 0; j < n; j++)
		if (keep[ord[j]])
			ti[fill[sp->k[ord[j]]]++] = ord[j];
	qsort_r(uo, (size_t) K, sizeof(int), by_amp, amp);
	for (int x = 1; x < K; x++) {
		int u = uo[x];
		const int64_t *tu = ti + st[u];
		int64_t nu0 = st[u + 1] - st[u];
		for (int y = 0; y < x && nu0 > 0; y++) {
			int v = uo[y], shared = 0;
			const int64_t *tv = ti + st[v];
			int64_t nv0 = st[v + 1] - st[v], nu = 0, nv = 0;
			int64_t nco = 0, j = 0;
			for (int c = 0; c < C && !shared; c++)
				shared = ch[(size_t) u * C + c] &&
				         ch[(size_t) v * C + c];
			if (!shared || nv0 == 0)
				continue;
			for (int64_t q = 0; q < nv0; q++)
				nv += keep[tv[q]];
			for (int64_t q = 0; q < nu0; q++) {
				if (!keep[tu[q]])
					continue;
				nu++;
				nco += coincident(sp, keep, tv, nv0, &j,
				                  sp->t[tu[q]], d);
			}
			double chance = (double) nu * (double) nv *
			                (double) (2 * d + 1) / span;
			if (nu == 0 || (double) nco < 0.2 * (double) nu ||
			    (double) nco <= 10 * chance + 5)
				continue;
			j = 0;
			for (int64_t q = 0; q < nu0; q++)
				if (keep[tu[q]] &&
				    coincident(sp, keep, tv, nv0, &j,
				               sp->t[tu[q]], d)) {
					keep[tu[q]] = 0;
					nu--;
				}
			/* the few left of a unit of copies are copies that
			 * missed the window, not a unit */
			if (nu < cfg->min_spikes)
				for (int64_t q = 0; q < nu0; q++)
					keep[tu[q]] = 0;
		}
	}
	rc = 0;
out:
	free(st);
	free(fill);
	free(ti);
	free(amp);
	free(uo);
	free(ch);
	return rc;
}

/* P(X ≤ k) for X ~ Poisson(mu) */
static double
poisson_cdf(int64_t k, double mu)
{
	double term = exp(-mu), sum = term;

	for (int64_t i = 1; i <= k; i++) {
		term *= mu / (double) i;
		sum += term;
	}
	return sum;
}

/* how far below merge_corr a pair split by drift may be (ss_dsplit.h):
 * on np2drift128 the pieces of a unit at the probe's end, or one left a
 * few µm off by the correction, were 0.82–0.95 alike, and no two units
 * above 0.80 */
#define DSPLIT_SIM_DROP 0.05

struct cand {
	int a, b;
	float s;
};

static int
by_sim(const void *x, const void *y)
{
	const struct cand *p = x, *q = y;
	if (p->s != q->s)
		return p->s > q->s ? -1 : 1;
	if (p->a != q->a)
		return p->a < q->a ? -1 : 1;
	return (p->b > q->b) - (p->b < q->b);
}

/* cd: the pairs a < b of similarity ≥ thr, most similar first; their
 * count */
static int
candidates(int K, const float *sim, double thr, struct cand *cd)
{
	int n = 0;

	for (int a = 0; a < K; a++)
		for (int b = a + 1; b < K; b++)
			if (sim[a * K + b] >= thr)
				cd[n++] = (struct cand){a, b, sim[a * K + b]};
	qsort(cd, (size_t) n, sizeof(struct cand), by_sim);
	return n;
}

/* Does the union keep its refractory period? ratio: refractory-window
 * pairs over chance (-1: no baseline); p: chance of as few */
static int
refractory_union(const struct ss_config *cfg, double s, double ratio, double p)
{
	return ratio >= 0 && ratio < cfg->good_ratio &&
	       p < (s >= 0.95 ? 0.05 : 0.01);
}

/* Is the union of trains a and b one unit split by drift
 * (ss_dsplit_check), with no more refractory pairs (nc, chance expect)
 * than good_ratio of chance plus one? */
static int
drift_union(const struct ss_config *cfg, const struct ss_result *res,
            const int *grp, const int64_t *a, int64_t na, const int64_t *b,
            int64_t nb, int64_t nc, double expect, double *chi2, double *range)
{
	return (double) nc <= cfg->good_ratio * expect + 1 &&
	       ss_dsplit_check(a, na, b, nb, res->drift_batch, grp,
	                       res->n_drift, chi2, range);
}

/* the sorted spike times of cluster root r: its templates' trains (tt from
 * tstart[k], each sorted) merged into out; returns their count */
static int64_t
cluster_train(int K, int *par, int r, const int64_t *tt, const int64_t *tstart,
              int64_t *out, int64_t *tmp)
{
	int64_t n = 0;

	for (int k = 0; k < K; k++) {
		int64_t i = 0, j = tstart[k], e = tstart[k + 1], o = 0;
		if (find(par, k) != r || e == j)
			continue;
		/* merge out[0..n) with tt[j..e) through tmp */
		while (i < n || j < e)
			tmp[o++] = j >= e || (i < n && out[i] <= tt[j])
			                   ? out[i++]
			                   : tt[j++];
		memcpy(out, tmp, sizeof(int64_t) * (size_t) o);
		n = o;
	}
	return n;
}

/*
 * Joins clusters of near-identical templates (par: union-find over template
 * ids, roots the smallest id). Candidate pairs (similarity ≥ merge_corr)
 * are taken most similar first, each tested on the clusters they belong to
 * by then, so the pieces of a unit split in three gather the refractory
 * evidence that each pair alone lacks. A pair is one unit when its shapes
 * are near copies (≥ merge_corr_shape) or when the union keeps its
 * refractory period: the cross-correlogram puts nc spikes of one within
 * refrac_ms of the other's where independent trains put `expect` (from
 * its 10–50 ms baseline), nc / expect < good_ratio, and chance would give
 * as few with probability P(X ≤ nc | expect) < 1 % (5 % from similarity
 * 0.95 on: the stronger the shape evidence, the less the timing must
 * add). Where drift was corrected, a pair down to merge_corr −
 * DSPLIT_SIM_DROP is also one unit when it is split by the drift
 * (ss_dsplit_check: complementary in the drift's position) and the union
 * has no more refractory pairs than good_ratio of chance plus one. Every
 * merge is recorded in res->merges.
 */
static int
merge_units(const struct ss_config *cfg, int K, const float *sim,
            const int64_t *tt, const int64_t *tstart, int *par,
            struct ss_result *res)
{
	int64_t ref = (int64_t) llround(cfg->refrac_ms * 1e-3 * cfg->fs);
	int64_t b0 = (int64_t) llround(0.010 * cfg->fs);
	int64_t b1 = (int64_t) llround(0.050 * cfg->fs);
	int64_t n = tstart[K];
	struct cand *cd =
	        malloc(sizeof(struct cand) * ((size_t) K * K / 2 + 1));
	int64_t *ta = malloc(sizeof(int64_t) * (size_t) (n + 1));
	int64_t *tb = malloc(sizeof(int64_t) * (size_t) (n + 1));
	int64_t *tmp = malloc(sizeof(int64_t) * (size_t) (n + 1));
	int *grp = NULL, drifted = 0;
	int nc_ = 0, rc = NQ_ENOMEM;

	res->merges = NULL;
	res->n_merges = 0;
	if (!cd || !ta || !tb || !tmp)
		goto out;
	if (res->drift_um != NULL && res->drift_batch > 0 &&
	    res->n_drift >= SS_DSPLIT_NG) {
		grp = malloc(sizeof(int) * (size_t) res->n_drift);
		if (grp == NULL)
			goto out;
		drifted = ss_dsplit_groups(res->drift_um, res->n_drift,
		                           res->n_drift_blocks, grp);
	}
	nc_ = candidates(K, sim,
	                 cfg->merge_corr - (drifted ? DSPLIT_SIM_DROP : 0), cd);
	if (nc_ > 0) {
		res->merges = calloc((size_t) nc_, sizeof(struct ss_merge));
		if (res->merges == NULL)
			goto out;
	}
	for (int i = 0; i < nc_; i++) {
		int ra = find(par, cd[i].a), rb = find(par, cd[i].b);
		int64_t na, nb, nc = 0;
		double expect = 0, ratio = -1, p = 1, chi2 = 0, range = 0;
		int by_shape = cd[i].s >= cfg->merge_corr_shape, by_drift = 0;
		if (ra == rb)
			continue;
		na = cluster_train(K, par, ra, tt, tstart, ta, tmp);
		nb = cluster_train(K, par, rb, tt, tstart, tb, tmp);
		ss_ccg_counts(ta, na, tb, nb, ref, b0, b1, &nc, &expect);
		if (expect > 0) {
			ratio = (double) nc / expect;
			p = poisson_cdf(nc, expect);
		}
		if (!by_shape && !(cd[i].s >= cfg->merge_corr &&
		                   refractory_union(cfg, cd[i].s, ratio, p))) {
			by_drift = drifted &&
			           drift_union(cfg, res, grp, ta, na, tb, nb,
			                       nc, expect, &chi2, &range);
			if (!by_drift)
				continue;
		}
		res->merges[res->n_merges++] = (struct ss_merge){
		        ra < rb ? ra : rb, ra < rb ? rb : ra, cd[i].s,
		        (float) ratio,     (float) expect,    nc,
		        by_shape,          by_drift,          (float) chi2,
		        (float) range};
		par[ra > rb ? ra : rb] = ra < rb ? ra : rb;
	}
	rc = 0;
out:
	free(cd);
	free(ta);
	free(tb);
	free(tmp);
	free(grp);
	return rc;
}

int
ss_post_dedup(const struct ss_config *cfg, int K, const struct ss_match_out *sp,
              int64_t *ord, uint8_t *keep)
{
	int64_t n = sp->n,
	        dup = (int64_t) llround(cfg->dup_ms * 1e-3 * cfg->fs);
	int64_t *last = malloc(sizeof(int64_t) * (size_t) (K > 0 ? K : 1));

	if (last == NULL)
		return NQ_ENOMEM;
	for (int64_t i = 0; i < n; i++)
		ord[i] = i;
	qsort_r(ord, (size_t) n, sizeof(int64_t), by_time, (void *) sp);
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
	free(last);
	return 0;
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
	if (ss_post_dedup(cfg, K, sp, ord, keep) != 0)
		goto out;
	if (drop_echoes(cfg, tp, sp, ord, n, keep) != 0)
		goto out;
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
			}
		}
		rc = merge_units(cfg, K, res->similar, tt, tstart, par, res);
		free(cn);
		free(tstart);
		free(tt);
		if (rc != 0)
			goto out;
		rc = NQ_ENOMEM;
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
					/* counts[] are tallied from clust[]
					 * above, start[k] + cnt <= m */
					// NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
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
	/* ids without gaps, as phy expects (ss_order.h) */
	rc = ss_order_ids(res);
out:
	free(ord);
	free(last);
	free(keep);
	free(par);
	return rc;
}
