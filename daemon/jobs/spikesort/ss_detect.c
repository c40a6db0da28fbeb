/*
 * ss_detect.c — initial templates: threshold crossings on whitened data,
 * temporal-PCA features on the nearest channels, and clustering per peak
 * channel by recursive 2-means splits that are kept only when the two halves
 * are well separated along the line between their centres (a unimodal
 * cluster split in two gives d' ≈ 2.7; distinct units give far more).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

void
ss_spikes_free(struct ss_spikes *s)
{
	free(s->t);
	free(s->chan);
	free(s->wave);
	memset(s, 0, sizeof(*s));
}

int
ss_spikes_push(struct ss_spikes *s, int64_t t, int c, float **wave)
{
	size_t wl = (size_t) s->nc * (size_t) s->nt;

	if (s->n == s->cap) {
		int64_t nc = s->cap ? s->cap * 2 : 1024;
		int64_t *tt = realloc(s->t, sizeof(int64_t) * (size_t) nc);
		if (tt == NULL)
			return NQ_ENOMEM;
		s->t = tt;
		int *cc = realloc(s->chan, sizeof(int) * (size_t) nc);
		if (cc == NULL)
			return NQ_ENOMEM;
		s->chan = cc;
		float *w = realloc(s->wave, sizeof(float) * wl * (size_t) nc);
		if (w == NULL)
			return NQ_ENOMEM;
		s->wave = w;
		s->cap = nc;
	}
	s->t[s->n] = t;
	s->chan[s->n] = c;
	*wave = s->wave + wl * (size_t) s->n;
	s->n++;
	return 0;
}

/* The peaks of [lo, hi) (kern peaks_above, grown until they fit): *n of
 * them in (t, c) order in pt, pc, pa (malloc'd, caller frees). */
static int
find_peaks(const struct kern_backend *kb, int C, const float *Y, int64_t T,
           double th, int64_t lo, int64_t hi, int w, int nc,
           const int32_t *dnbr, int64_t **pt, int32_t **pc, float **pa,
           int64_t *n)
{
	int64_t cap = 4096;
	int rc;

	*pt = NULL;
	*pc = NULL;
	*pa = NULL;
	for (;;) {
		int64_t *t = realloc(*pt, sizeof(int64_t) * (size_t) cap);
		if (t != NULL)
			*pt = t;
		int32_t *c = realloc(*pc, sizeof(int32_t) * (size_t) cap);
		if (c != NULL)
			*pc = c;
		float *a = realloc(*pa, sizeof(float) * (size_t) cap);
		if (a != NULL)
			*pa = a;
		if (t == NULL || c == NULL || a == NULL)
			return NQ_ENOMEM;
		if ((rc = KOP(kb, peaks_above, C, T, Y, th, lo, hi, w, nc, dnbr,
		              cap, *pt, *pc, *pa, n)) != 0 ||
		    *n <= cap)
			return rc;
		cap = *n;
	}
}

void
ss_trough_range(const struct ss_config *cfg, int64_t T, int64_t *lo,
                int64_t *hi)
{
	if (*lo < cfg->nt0min)
		*lo = cfg->nt0min;
	if (*hi > T - (cfg->nt - cfg->nt0min))
		*hi = T - (cfg->nt - cfg->nt0min);
}

int
ss_detect_batch(const struct ss_config *cfg, const struct kern_backend *kb,
                const struct ss_probe *p, const float *Y, int64_t T, int64_t lo,
                int64_t hi, int64_t t_abs0, int per_chan_cap,
                int64_t *chan_count, struct ss_spikes *out)
{
	int C = p->n, nc = cfg->nc_feat < C ? cfg->nc_feat : C, nt = cfg->nt;
	int w = cfg->nt0min, rc = NQ_ENOMEM;
	int32_t *nbr = malloc(sizeof(int32_t) * (size_t) C * (size_t) nc);
	int64_t *pt = NULL, np = 0, nk = 0, first = out->n;
	int32_t *pc = NULL, *tc = NULL;
	float *pa = NULL;
	struct ss_kbuf dnbr = {0}, dtc = {0}, dS = {0};
	size_t wl = (size_t) nc * (size_t) nt;

	if (nbr == NULL || ss_probe_neighbours(p, nc, nbr) != 0)
		goto out;
	out->nc = nc;
	out->nt = nt;
	ss_trough_range(cfg, T, &lo, &hi);
	rc = 0;
	if (lo >= hi || C == 0)
		goto out;
	/* strict minima over the space-time neighbourhood, ties to the
	 * earlier sample then the lower channel, found where Y lies */
	if ((rc = ss_kbuf_ensure(kb, &dnbr,
	                         sizeof(int32_t) * (size_t) C * nc)) ||
	    (rc = KOP(kb, upload, dnbr.p, nbr,
	              sizeof(int32_t) * (size_t) C * nc)) ||
	    (rc = find_peaks(kb, C, Y, T, -cfg->th_detect, lo, hi, w, nc,
	                     dnbr.p, &pt, &pc, &pa, &np)))
		goto out;
	rc = NQ_ENOMEM;
	tc = malloc(sizeof(int32_t) * 2 * (size_t) (np ? np : 1));
	if (tc == NULL)
		goto out;
	for (int64_t i = 0; i < np; i++) {
		int c = pc[i];
		if (chan_count[c] >= per_chan_cap)
			continue;
		chan_count[c]++;
		float *wave;
		if ((rc = ss_spikes_push(out, t_abs0 + pt[i], c, &wave)) != 0)
			goto out;
		tc[2 * nk] = (int32_t) (pt[i] - cfg->nt0min);
		tc[2 * nk + 1] = c;
		nk++;
	}
	rc = 0;
	if (nk == 0)
		goto out;
	/* their snippets on the nc nearest channels, gathered there too */
	if ((rc = ss_kbuf_ensure(kb, &dtc,
	                         sizeof(int32_t) * 2 * (size_t) nk)) ||
	    (rc = ss_kbuf_ensure(kb, &dS, sizeof(float) * wl * (size_t) nk)) ||
	    (rc = KOP(kb, upload, dtc.p, tc,
	              sizeof(int32_t) * 2 * (size_t) nk)) ||
	    (rc = KOP(kb, snippets, C, T, Y, nc, dnbr.p, nt, nk, dtc.p,
	              dS.p)) ||
	    (rc = KOP(kb, download, out->wave + wl * (size_t) first, dS.p,
	              sizeof(float) * wl * (size_t) nk)))
		goto out;
out:
	ss_kbuf_free(kb, &dnbr);
	ss_kbuf_free(kb, &dtc);
	ss_kbuf_free(kb, &dS);
	free(nbr);
	free(pt);
	free(pc);
	free(pa);
	free(tc);
	return rc;
}

/* splitmix64: deterministic per seed */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double
rng_unif(uint64_t *s)
{
	return (double) (rng_next(s) >> 11) / 9007199254740992.0;
}

/* Top npc eigenvectors of the peak-channel waveform covariance. */
static int
temporal_pcs(const struct kern_backend *kb, const struct ss_spikes *sp, int npc,
             double *pcs)
{
	int nt = sp->nt, info = 0, rc;
	double *cov = calloc((size_t) nt * nt, sizeof(double));
	struct ss_kbuf dA = {0}, dW = {0};
	int64_t step = sp->n > 20000 ? sp->n / 20000 : 1;

	rc = NQ_ENOMEM;
	if (cov == NULL)
		goto out;
	for (int64_t i = 0; i < sp->n; i += step) {
		const float *w = sp->wave + (size_t) i * sp->nc * nt;
		for (int a = 0; a < nt; a++)
			for (int b = 0; b <= a; b++)
				cov[a + nt * b] += (double) w[a] * w[b];
	}
	if ((rc = ss_kbuf_ensure(kb, &dA, sizeof(double) * nt * nt)) ||
	    (rc = ss_kbuf_ensure(kb, &dW, sizeof(double) * nt)) ||
	    (rc = KOP(kb, upload, dA.p, cov, sizeof(double) * nt * nt)) ||
	    (rc = KOP(kb, syevd, KERN_F64, nt, dA.p, nt, dW.p, &info)) ||
	    (rc = KOP(kb, download, cov, dA.p, sizeof(double) * nt * nt)))
		goto out;
	if (info != 0) {
		rc = NQ_EBADDATA;
		goto out;
	}
	for (int q = 0; q < npc; q++) {
		const double *v = cov + (size_t) nt * (nt - 1 - q);
		/* sign: the trough sample positive, so runs agree */
		double sg = v[nt / 3] < 0 ? -1 : 1;
		for (int a = 0; a < nt; a++)
			pcs[q * nt + a] = sg * v[a];
	}
	rc = 0;
out:
	ss_kbuf_free(kb, &dA);
	ss_kbuf_free(kb, &dW);
	free(cov);
	return rc;
}

struct clus {
	int *idx;
	int n;
};

/* Split members into two by 2-means; 1 when the split is kept. */
static int
try_split(const float *F, int D, const int *idx, int n, int min_size,
          double dthr, uint64_t *rng, int *side, double *work)
{
	double *mean = work, *ax = work + D, *tmp = work + (size_t) 2 * D;
	double *c0 = work + (size_t) 3 * D, *c1 = work + (size_t) 4 * D;
	int n0 = 0, n1 = 0;

	if (n < 2 * min_size)
		return 0;
	memset(mean, 0, sizeof(double) * D);
	for (int i = 0; i < n; i++)
		for (int d = 0; d < D; d++)
			mean[d] += F[(size_t) idx[i] * D + d];
	for (int d = 0; d < D; d++) {
		mean[d] /= n;
		ax[d] = 1 + 0.1 * rng_unif(rng);
	}
	/* principal axis by power iteration on the centred features */
	for (int it = 0; it < 30; it++) {
		double nrm = 0;
		memset(tmp, 0, sizeof(double) * D);
		for (int i = 0; i < n; i++) {
			const float *f = F + (size_t) idx[i] * D;
			double pr = 0;
			for (int d = 0; d < D; d++)
				pr += (f[d] - mean[d]) * ax[d];
			for (int d = 0; d < D; d++)
				tmp[d] += pr * (f[d] - mean[d]);
		}
		for (int d = 0; d < D; d++)
			nrm += tmp[d] * tmp[d];
		nrm = sqrt(nrm);
		if (nrm == 0)
			return 0;
		for (int d = 0; d < D; d++)
			ax[d] = tmp[d] / nrm;
	}
	for (int i = 0; i < n; i++) {
		const float *f = F + (size_t) idx[i] * D;
		double pr = 0;
		for (int d = 0; d < D; d++)
			pr += (f[d] - mean[d]) * ax[d];
		side[i] = pr > 0;
	}
	/* k-means (k = 2) refinement */
	for (int it = 0; it < 20; it++) {
		int changed = 0;
		memset(c0, 0, sizeof(double) * D);
		memset(c1, 0, sizeof(double) * D);
		n0 = n1 = 0;
		for (int i = 0; i < n; i++) {
			const float *f = F + (size_t) idx[i] * D;
			double *c = side[i] ? c1 : c0;
			for (int d = 0; d < D; d++)
				c[d] += f[d];
			if (side[i])
				n1++;
			else
				n0++;
		}
		if (n0 == 0 || n1 == 0)
			return 0;
		for (int d = 0; d < D; d++) {
			c0[d] /= n0;
			c1[d] /= n1;
		}
		for (int i = 0; i < n; i++) {
			const float *f = F + (size_t) idx[i] * D;
			double d0 = 0, d1 = 0;
			for (int d = 0; d < D; d++) {
				d0 += (f[d] - c0[d]) * (f[d] - c0[d]);
				d1 += (f[d] - c1[d]) * (f[d] - c1[d]);
			}
			int s = d1 < d0;
			changed += s != side[i];
			side[i] = s;
		}
		if (!changed)
			break;
	}
	if (n0 < min_size || n1 < min_size)
		return 0;
	/* separation along the centre line */
	double nrm = 0, m[2] = {0, 0}, v[2] = {0, 0};
	for (int d = 0; d < D; d++) {
		ax[d] = c1[d] - c0[d];
		nrm += ax[d] * ax[d];
	}
	nrm = sqrt(nrm);
	if (nrm == 0)
		return 0;
	for (int i = 0; i < n; i++) {
		const float *f = F + (size_t) idx[i] * D;
		double pr = 0;
		for (int d = 0; d < D; d++)
			pr += f[d] * ax[d] / nrm;
		m[side[i]] += pr;
		v[side[i]] += pr * pr;
	}
	m[0] /= n0;
	m[1] /= n1;
	v[0] = v[0] / n0 - m[0] * m[0];
	v[1] = v[1] / n1 - m[1] * m[1];
	double dp = fabs(m[1] - m[0]) / sqrt((v[0] + v[1]) / 2 + 1e-12);
	return dp > dthr;
}

struct leaf {
	int chan, n;
	int *idx;
};

static int
leaf_cmp(const void *a, const void *b)
{
	const struct leaf *x = a, *y = b;
	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	if (x->chan != y->chan)
		return x->chan < y->chan ? -1 : 1;
	return x->idx[0] < y->idx[0] ? -1 : 1;
}

int
ss_cluster(const struct ss_config *cfg, const struct kern_backend *kb,
           const struct ss_probe *p, const struct ss_spikes *sp, float **Wout,
           int *Kout)
{
	int C = p->n, nc = sp->nc, nt = sp->nt, npc = cfg->npc;
	int D = nc * npc, rc = NQ_ENOMEM, nleaf = 0, capleaf = 0;
	int min_size = cfg->min_spikes > 5 ? cfg->min_spikes : 5;
	double *pcs = malloc(sizeof(double) * (size_t) npc * nt);
	float *F = NULL, *W = NULL;
	int *order = NULL, *side = NULL, *stack = NULL, *nbr = NULL;
	double *work = malloc(sizeof(double) * 5 * (size_t) D);
	struct leaf *leaves = NULL;
	uint64_t rng = cfg->seed ^ 0x5EEDULL;

	*Wout = NULL;
	*Kout = 0;
	if (pcs == NULL || work == NULL)
		goto out;
	if (sp->n == 0) {
		rc = 0;
		goto out;
	}
	if ((rc = temporal_pcs(kb, sp, npc, pcs)) != 0)
		goto out;
	rc = NQ_ENOMEM;
	F = calloc((size_t) sp->n * D, sizeof(float)); /* (analyzer: all set) */
	order = calloc((size_t) sp->n, sizeof(int));
	side = malloc(sizeof(int) * (size_t) sp->n);
	/* (start, len) pairs of disjoint ranges: split halves hold ≥ min_size
	 * (≥ 5) spikes, so fewer than n ints, but the first pair needs 2 even
	 * for one spike (the residual detection's can be one) */
	stack = malloc(sizeof(int) * ((size_t) sp->n + 2));
	nbr = malloc(sizeof(int) * (size_t) nc);
	if (!F || !order || !side || !stack || !nbr)
		goto out;
	for (int64_t i = 0; i < sp->n; i++) {
		const float *w = sp->wave + (size_t) i * nc * nt;
		for (int j = 0; j < nc; j++)
			for (int q = 0; q < npc; q++) {
				double s = 0;
				for (int k = 0; k < nt; k++)
					s += w[j * nt + k] * pcs[q * nt + k];
				F[(size_t) i * D + (size_t) j * npc + q] =
				        (float) s;
			}
	}
	/* members grouped by peak channel (counting sort keeps time order) */
	{
		int64_t pos = 0;
		for (int c = 0; c < C; c++)
			for (int64_t i = 0; i < sp->n; i++)
				if (sp->chan[i] == c)
					order[pos++] = (int) i;
		if (pos != sp->n) { /* a peak channel outside the probe */
			rc = NQ_EINTERNAL;
			goto out;
		}
	}
	for (int64_t s0 = 0; s0 < sp->n;) {
		int c = sp->chan[order[s0]];
		int64_t e0 = s0;
		while (e0 < sp->n && sp->chan[order[e0]] == c)
			e0++;
		/* work list of [start, len) ranges inside order[] */
		int top = 0;
		stack[top++] = (int) s0;
		stack[top++] = (int) (e0 - s0);
		while (top > 0) {
			int len = stack[--top], st = stack[--top];
			int *idx = order + st;
			if (len >= 2 * min_size &&
			    try_split(F, D, idx, len, min_size,
			              cfg->split_dprime, &rng, side, work)) {
				/* partition idx by side, stable */
				int a = 0;
				/* len >= 2 * min_size >= 10 */
				// NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI)
				int *tmp = malloc(sizeof(int) * (size_t) len);
				if (tmp == NULL)
					goto out;
				for (int i = 0; i < len; i++)
					if (!side[i])
						tmp[a++] = idx[i];
				int b = a;
				for (int i = 0; i < len; i++)
					if (side[i])
						tmp[b++] = idx[i];
				memcpy(idx, tmp, sizeof(int) * (size_t) len);
				free(tmp);
				stack[top++] = st;
				stack[top++] = a;
				stack[top++] = st + a;
				stack[top++] = len - a;
				continue;
			}
			if (len < min_size)
				continue;
			if (nleaf == capleaf) {
				capleaf = capleaf ? capleaf * 2 : 64;
				struct leaf *nl = realloc(
				        leaves, sizeof(*nl) * (size_t) capleaf);
				if (nl == NULL)
					goto out;
				leaves = nl;
			}
			leaves[nleaf].chan = c;
			leaves[nleaf].n = len;
			leaves[nleaf].idx = idx;
			nleaf++;
		}
		s0 = e0;
	}
	if (nleaf == 0) {
		rc = 0;
		goto out;
	}
	qsort(leaves, (size_t) nleaf, sizeof(*leaves), leaf_cmp);
	if (nleaf > cfg->max_templates)
		nleaf = cfg->max_templates;
	W = calloc((size_t) nleaf * C * nt, sizeof(float));
	if (W == NULL)
		goto out;
	for (int l = 0; l < nleaf; l++) {
		float *Wk = W + (size_t) l * C * nt;
		double nrm = 0;
		ss_probe_nearest(p, leaves[l].chan, nc, nbr);
		for (int i = 0; i < leaves[l].n; i++) {
			const float *w =
			        sp->wave + (size_t) leaves[l].idx[i] * nc * nt;
			for (int j = 0; j < nc; j++)
				for (int k = 0; k < nt; k++)
					Wk[nbr[j] + C * k] += w[j * nt + k];
		}
		for (size_t i = 0; i < (size_t) C * nt; i++)
			nrm += (double) Wk[i] * Wk[i];
		nrm = sqrt(nrm);
		for (size_t i = 0; i < (size_t) C * nt; i++)
			Wk[i] = nrm > 0 ? (float) (Wk[i] / nrm) : 0;
	}
	*Wout = W;
	*Kout = nleaf;
	W = NULL;
	rc = 0;
out:
	free(pcs);
	free(work);
	free(F);
	free(order);
	free(side);
	free(stack);
	free(nbr);
	free(leaves);
	free(W);
	return rc;
}
