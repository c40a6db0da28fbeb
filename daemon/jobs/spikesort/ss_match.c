/*
 * ss_match.c — template matching by greedy matching pursuit with low-rank
 * templates (the seed lab's fast MAP step, Kilosort's peeling):
 *   P = Uᵀ R           kern gemms, each group of templates on its own
 *                      channel window (templates are local)
 *   s_k(t) = Σ_r Σ_τ V_k[τ,r] P[rk, t+τ]     projection score, unit-norm W_k
 *                      (kern conv_rows), so the device carries both
 * Every round accepts the peaks of max_k s_k(t) that exceed th_match and are
 * the largest within one template width, subtracts a·W_k from the residual,
 * and recomputes P and the scores only where the residual changed, so
 * overlapping spikes come out in later rounds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"
#include "ss.h"

void
ss_templates_free(struct ss_templates *t)
{
	free(t->W);
	free(t->U);
	free(t->V);
	free(t->mu);
	memset(t, 0, sizeof(*t));
}

int
ss_templates_lowrank(const struct kern_backend *kb, struct ss_templates *t)
{
	int C = t->C, nt = t->nt, R = t->rank, K = t->K, info = 0, rc;
	double *G = malloc(sizeof(double) * (size_t) nt * nt);
	double *u = malloc(sizeof(double) * (size_t) C * R);
	struct ss_kbuf dA = {0}, dW = {0};

	free(t->U);
	free(t->V);
	t->U = calloc((size_t) C * R * (K ? K : 1), sizeof(float));
	t->V = calloc((size_t) nt * R * (K ? K : 1), sizeof(float));
	rc = NQ_ENOMEM;
	if (!G || !u || !t->U || !t->V)
		goto out;
	if ((rc = ss_kbuf_ensure(kb, &dA, sizeof(double) * nt * nt)) ||
	    (rc = ss_kbuf_ensure(kb, &dW, sizeof(double) * nt)))
		goto out;
	for (int k = 0; k < K; k++) {
		float *W = t->W + (size_t) k * C * nt;
		double nrm = 0;
		/* G = Wᵀ W (nt × nt); its top eigenvectors are W's right
		 * singular vectors */
		for (int a = 0; a < nt; a++)
			for (int b = 0; b <= a; b++) {
				double s = 0;
				for (int c = 0; c < C; c++)
					s += (double) W[c + C * a] *
					     W[c + C * b];
				G[a + nt * b] = s;
			}
		if ((rc = KOP(kb, upload, dA.p, G, sizeof(double) * nt * nt)) ||
		    (rc = KOP(kb, syevd, KERN_F64, nt, dA.p, nt, dW.p,
		              &info)) ||
		    (rc = KOP(kb, download, G, dA.p, sizeof(double) * nt * nt)))
			goto out;
		if (info != 0) {
			rc = NQ_EBADDATA;
			goto out;
		}
		for (int r = 0; r < R; r++) {
			const double *v = G + (size_t) nt * (nt - 1 - r);
			for (int c = 0; c < C; c++) {
				double s = 0;
				for (int a = 0; a < nt; a++)
					s += W[c + C * a] * v[a];
				u[c + C * r] = s;
				nrm += s * s;
			}
		}
		/* keep the contiguous channel window where the footprint has
		 * energy (≥ 1e-2 of its peak channel, 10 % in amplitude): far
		 * channels hold only averaged noise (a learned template's
		 * window otherwise spans ~100 channels), and a bounded window
		 * lets matching project each template on its own channels */
		{
			double emax = 0;
			int c0 = C, c1 = 0;
			for (int c = 0; c < C; c++) {
				double e = 0;
				for (int r = 0; r < R; r++)
					e += u[c + C * r] * u[c + C * r];
				emax = e > emax ? e : emax;
			}
			for (int c = 0; c < C; c++) {
				double e = 0;
				for (int r = 0; r < R; r++)
					e += u[c + C * r] * u[c + C * r];
				if (emax > 0 && e >= 1e-2 * emax) {
					c0 = c < c0 ? c : c0;
					c1 = c + 1;
				}
			}
			nrm = 0;
			for (int c = 0; c < C; c++)
				for (int r = 0; r < R; r++) {
					if (c < c0 || c >= c1)
						u[c + C * r] = 0;
					nrm += u[c + C * r] * u[c + C * r];
				}
		}
		nrm = sqrt(nrm);
		if (nrm == 0)
			nrm = 1;
		for (int r = 0; r < R; r++) {
			const double *v = G + (size_t) nt * (nt - 1 - r);
			for (int c = 0; c < C; c++)
				t->U[c + (size_t) C * (k * R + r)] =
				        (float) (u[c + C * r] / nrm);
			for (int a = 0; a < nt; a++)
				t->V[(size_t) k * nt * R + a * R + r] =
				        (float) v[a];
		}
		/* W := U Vᵀ so that scores and subtraction agree */
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++) {
				double s = 0;
				for (int r = 0; r < R; r++)
					s += t->U[c +
					          (size_t) C * (k * R + r)] *
					     t->V[(size_t) k * nt * R + a * R +
					          r];
				W[c + C * a] = (float) s;
			}
	}
	rc = 0;
out:
	ss_kbuf_free(kb, &dA);
	ss_kbuf_free(kb, &dW);
	free(G);
	free(u);
	return rc;
}

double
ss_template_corr(const float *A, const float *B, int C, int nt, int maxlag)
{
	double best = -1, na = 0, nb = 0;

	for (int i = 0; i < C * nt; i++) {
		na += (double) A[i] * A[i];
		nb += (double) B[i] * B[i];
	}
	if (na == 0 || nb == 0)
		return 0;
	for (int d = -maxlag; d <= maxlag; d++) {
		double s = 0;
		for (int a = 0; a < nt; a++) {
			int b = a + d;
			if (b < 0 || b >= nt)
				continue;
			for (int c = 0; c < C; c++)
				s += (double) A[c + C * a] * B[c + C * b];
		}
		s /= sqrt(na * nb);
		if (s > best)
			best = s;
	}
	return best;
}

void
ss_template_chan_norms(const float *W, int K, int C, int nt, float *cn)
{
	for (int k = 0; k < K; k++)
		for (int c = 0; c < C; c++) {
			double s = 0;
			for (int a = 0; a < nt; a++) {
				double v = W[(size_t) k * C * nt + c + C * a];
				s += v * v;
			}
			cn[(size_t) k * C + c] = (float) sqrt(s);
		}
}

double
ss_template_corr_sparse(const float *A, const float *B, const float *ca,
                        const float *cb, int C, int nt, int maxlag,
                        double floor)
{
	double na = 0, nb = 0, bound = 0, best = -1;
	int *ch = malloc(sizeof(int) * (size_t) C), nc = 0;

	if (ch == NULL)
		return ss_template_corr(A, B, C, nt, maxlag);
	for (int c = 0; c < C; c++) {
		na += (double) ca[c] * ca[c];
		nb += (double) cb[c] * cb[c];
		bound += (double) ca[c] * cb[c];
	}
	/* Cauchy–Schwarz per channel bounds the correlation at every lag */
	if (na == 0 || nb == 0 || bound < floor * sqrt(na * nb)) {
		free(ch);
		return 0;
	}
	/* channels whose products cannot add up to 1e-4 are skipped */
	for (int c = 0; c < C; c++)
		if ((double) ca[c] * cb[c] > 1e-4 * sqrt(na * nb) / C)
			ch[nc++] = c;
	for (int d = -maxlag; d <= maxlag; d++) {
		double s = 0;
		for (int a = 0; a < nt; a++) {
			int b = a + d;
			if (b < 0 || b >= nt)
				continue;
			for (int i = 0; i < nc; i++)
				s += (double) A[ch[i] + C * a] *
				     B[ch[i] + C * b];
		}
		s /= sqrt(na * nb);
		if (s > best)
			best = s;
	}
	free(ch);
	return best;
}

void
ss_match_out_free(struct ss_match_out *o)
{
	free(o->t);
	free(o->k);
	free(o->a);
	memset(o, 0, sizeof(*o));
}

int
ss_match_out_push(struct ss_match_out *o, int64_t t, int k, float a)
{
	if (o->n == o->cap) {
		int64_t nc = o->cap ? o->cap * 2 : 4096;
		int64_t *tt = realloc(o->t, sizeof(int64_t) * (size_t) nc);
		if (tt == NULL)
			return NQ_ENOMEM;
		o->t = tt;
		int32_t *kk = realloc(o->k, sizeof(int32_t) * (size_t) nc);
		if (kk == NULL)
			return NQ_ENOMEM;
		o->k = kk;
		float *aa = realloc(o->a, sizeof(float) * (size_t) nc);
		if (aa == NULL)
			return NQ_ENOMEM;
		o->a = aa;
		o->cap = nc;
	}
	o->t[o->n] = t;
	o->k[o->n] = k;
	o->a[o->n] = a;
	o->n++;
	return 0;
}

/* A run of templates (ord[i0..i1)) projected together on channels [c0, c1):
 * one kern gemm per group instead of every template on every channel. */
struct ss_mgroup {
	int i0, i1, c0, c1;
};

struct ss_matcher {
	const struct kern_backend *kb;
	const struct ss_templates *tp;
	int K, C, nt, R, RK;
	int64_t Tmax;
	int *ord; /* matcher order (by channel window) → template */
	int *wc0; /* channel window of each template */
	int *wc1;
	struct ss_mgroup *grp;
	int ngrp;
	struct ss_kbuf dU, dVt, dR, dP, dS;
	float *S;  /* K × Tmax scores (template order) */
	float *Sc; /* download scratch, K × n */
	float *Sb; /* best cost per start sample */
	float *Ab; /* its amplitude */
	int32_t *Kb;
	double lam;
	uint8_t *dirty;  /* per sample: P needs recomputing */
	uint8_t *sdirty; /* per sample: score needs recomputing */
	int64_t *peaks;
};

void
ss_matcher_free(struct ss_matcher *m)
{
	if (m == NULL)
		return;
	ss_kbuf_free(m->kb, &m->dU);
	ss_kbuf_free(m->kb, &m->dVt);
	ss_kbuf_free(m->kb, &m->dR);
	ss_kbuf_free(m->kb, &m->dP);
	ss_kbuf_free(m->kb, &m->dS);
	free(m->ord);
	free(m->wc0);
	free(m->wc1);
	free(m->grp);
	free(m->S);
	free(m->Sc);
	free(m->Sb);
	free(m->Ab);
	free(m->Kb);
	free(m->dirty);
	free(m->sdirty);
	free(m->peaks);
	free(m);
}

static int
by_window(const void *x, const void *y, void *arg)
{
	const struct ss_matcher *m = arg;
	int a = *(const int *) x, b = *(const int *) y;
	if (m->wc0[a] != m->wc0[b])
		return m->wc0[a] < m->wc0[b] ? -1 : 1;
	if (m->wc1[a] != m->wc1[b])
		return m->wc1[a] < m->wc1[b] ? -1 : 1;
	return a < b ? -1 : a > b;
}

/* Channel windows (the nonzero rows of each template's U), the matcher
 * order and the groups; U columns and V rows in matcher order. */
static int
matcher_layout(struct ss_matcher *m, float *U, float *Vt)
{
	const struct ss_templates *t = m->tp;
	int K = m->K, C = m->C, R = m->R, nt = m->nt;

	for (int k = 0; k < K; k++) {
		int c0 = C, c1 = 0;
		for (int c = 0; c < C; c++)
			for (int r = 0; r < R; r++)
				if (t->U[c + (size_t) C * (k * R + r)] != 0) {
					c0 = c < c0 ? c : c0;
					c1 = c + 1;
				}
		if (c1 <= c0) {
			c0 = 0;
			c1 = 1;
		}
		m->wc0[k] = c0;
		m->wc1[k] = c1;
		m->ord[k] = k;
	}
	qsort_r(m->ord, (size_t) K, sizeof(int), by_window, m);
	m->ngrp = 0;
	for (int i = 0; i < K;) {
		int k = m->ord[i], lo = m->wc0[k], hi = m->wc1[k];
		int lim = 2 * (hi - lo) > 32 ? 2 * (hi - lo) : 32, i1 = i + 1;
		/* a wider window costs less than another thin gemm, up to
		 * twice the first template's width */
		while (i1 < K) {
			int k1 = m->ord[i1];
			int h = m->wc1[k1] > hi ? m->wc1[k1] : hi;
			if (h - lo > lim)
				break;
			hi = h;
			i1++;
		}
		m->grp[m->ngrp++] = (struct ss_mgroup){i, i1, lo, hi};
		i = i1;
	}
	for (int i = 0; i < K; i++) {
		int k = m->ord[i];
		for (int r = 0; r < R; r++) {
			memcpy(U + (size_t) C * (i * R + r),
			       t->U + (size_t) C * (k * R + r),
			       sizeof(float) * (size_t) C);
			for (int a = 0; a < nt; a++)
				Vt[(size_t) nt * (i * R + r) + a] =
				        t->V[(size_t) k * nt * R + a * R + r];
		}
	}
	return 0;
}

int
ss_matcher_new(const struct kern_backend *kb, const struct ss_templates *t,
               int64_t Tmax, struct ss_matcher **out)
{
	struct ss_matcher *m = calloc(1, sizeof(*m));
	float *U = NULL, *Vt = NULL;
	int rc = NQ_ENOMEM;

	*out = NULL;
	if (m == NULL)
		return NQ_ENOMEM;
	m->kb = kb;
	m->tp = t;
	m->K = t->K;
	m->C = t->C;
	m->nt = t->nt;
	m->R = t->rank;
	m->RK = t->rank * t->K;
	m->Tmax = Tmax;
	size_t rk = m->RK ? (size_t) m->RK : 1, k1 = m->K ? (size_t) m->K : 1;
	m->ord = malloc(sizeof(int) * k1);
	m->wc0 = malloc(sizeof(int) * k1);
	m->wc1 = malloc(sizeof(int) * k1);
	m->grp = malloc(sizeof(struct ss_mgroup) * k1);
	m->S = malloc(sizeof(float) * k1 * (size_t) Tmax);
	m->Sc = malloc(sizeof(float) * k1 * (size_t) Tmax);
	m->Sb = malloc(sizeof(float) * (size_t) Tmax);
	m->Ab = malloc(sizeof(float) * (size_t) Tmax);
	m->Kb = malloc(sizeof(int32_t) * (size_t) Tmax);
	m->dirty = malloc((size_t) Tmax);
	m->sdirty = malloc((size_t) Tmax);
	m->peaks = malloc(sizeof(int64_t) * (size_t) Tmax);
	U = calloc(rk * (size_t) m->C, sizeof(float));
	Vt = calloc(rk * (size_t) m->nt, sizeof(float));
	if (!m->ord || !m->wc0 || !m->wc1 || !m->grp || !m->S || !m->Sc ||
	    !m->Sb || !m->Ab || !m->Kb || !m->dirty || !m->sdirty ||
	    !m->peaks || !U || !Vt)
		goto fail;
	matcher_layout(m, U, Vt);
	if ((rc = ss_kbuf_ensure(kb, &m->dU,
	                         sizeof(float) * (size_t) m->C * rk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dVt,
	                         sizeof(float) * (size_t) m->nt * rk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dR,
	                         sizeof(float) * (size_t) m->C * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dP, sizeof(float) * rk * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dS, sizeof(float) * k1 * Tmax)))
		goto fail;
	if (m->RK > 0 &&
	    ((rc = KOP(kb, upload, m->dU.p, U,
	               sizeof(float) * (size_t) m->C * m->RK)) != 0 ||
	     (rc = KOP(kb, upload, m->dVt.p, Vt,
	               sizeof(float) * (size_t) m->nt * m->RK)) != 0))
		goto fail;
	free(U);
	free(Vt);
	*out = m;
	return 0;
fail:
	free(U);
	free(Vt);
	ss_matcher_free(m);
	return rc;
}

/* P[a:b, :] = R[:, a:b)ᵀ U on the device (P is Tmax × RK, matcher order):
 * one gemm per group over its channel window. */
static int
project(struct ss_matcher *m, const float *R, int64_t a, int64_t b)
{
	const struct kern_backend *kb = m->kb;
	size_t C = (size_t) m->C, n = (size_t) (b - a);
	int rc;

	if (b <= a)
		return 0;
	if ((rc = KOP(kb, upload, (float *) m->dR.p + C * a, R + C * a,
	              sizeof(float) * C * n)) != 0)
		return rc;
	for (int g = 0; g < m->ngrp; g++) {
		const struct ss_mgroup *q = m->grp + g;
		size_t col = (size_t) m->R * q->i0;
		if ((rc = KOP(kb, gemm, KERN_F32, KERN_T, KERN_N, (int64_t) n,
		              (int64_t) m->R * (q->i1 - q->i0), q->c1 - q->c0,
		              1.0, (float *) m->dR.p + C * a + q->c0, m->C,
		              (float *) m->dU.p + q->c0 + C * col, m->C, 0.0,
		              (float *) m->dP.p + a + (size_t) m->Tmax * col,
		              m->Tmax)) != 0)
			return rc;
	}
	return 0;
}

/* Scores s_k(t) = Σ_r Σ_τ V_k[τ,r] P[t+τ, kR+r] for start samples [a, b)
 * (kern conv_rows on the device, downloaded compact), then the best k by
 * the drop in squared residual. With Kilosort 2's amplitude prior (weight
 * λ, typical amplitude μ_k) the MAP amplitude is x = (s + λμ)/(1 + λ) and
 * the gain (s + λμ)²/(1 + λ) − λμ², which turns away small fits of a big
 * unit's template to leftovers; without a prior it is s². */
static int
score(struct ss_matcher *m, int64_t a, int64_t b)
{
	const struct kern_backend *kb = m->kb;
	int64_t n = b - a;
	int rc;

	if (n <= 0)
		return 0;
	if ((rc = KOP(kb, conv_rows, KERN_F32, m->K, m->R, n, m->nt,
	              (float *) m->dP.p + a, m->Tmax, m->dVt.p, m->dS.p, n)) !=
	            0 ||
	    (rc = KOP(kb, download, m->Sc, m->dS.p,
	              sizeof(float) * (size_t) m->K * (size_t) n)) != 0)
		return rc;
	for (int i = 0; i < m->K; i++)
		memcpy(m->S + (size_t) m->Tmax * m->ord[i] + a,
		       m->Sc + (size_t) n * i, sizeof(float) * (size_t) n);
	for (int64_t t = a; t < b; t++) {
		m->Sb[t] = -INFINITY;
		m->Ab[t] = 0;
		m->Kb[t] = -1;
	}
	for (int k = 0; k < m->K; k++) {
		const float *S = m->S + (size_t) m->Tmax * k;
		float mu = m->tp->mu ? m->tp->mu[k] : 0;
		if (mu > 0 && m->lam > 0) {
			float l = (float) m->lam, lm = l * mu, c0 = lm * mu;
			float inv = 1 / (1 + l);
			for (int64_t t = a; t < b; t++) {
				float x = S[t] + lm;
				float g = x > 0 ? x * x * inv - c0 : -INFINITY;
				if (g > m->Sb[t]) {
					m->Sb[t] = g;
					m->Ab[t] = x * inv;
					m->Kb[t] = k;
				}
			}
		} else {
			for (int64_t t = a; t < b; t++) {
				float x = S[t];
				float g = x > 0 ? x * x : -INFINITY;
				if (g > m->Sb[t]) {
					m->Sb[t] = g;
					m->Ab[t] = x;
					m->Kb[t] = k;
				}
			}
		}
	}
	return 0;
}

/* The next run of set flags at or after *a into [*a, *b), runs less than
 * gap samples apart merged: recomputing a few clean samples costs less
 * than another round trip to the device. 0 when there is none. */
static int
next_run(const uint8_t *f, int64_t n, int64_t gap, int64_t *a, int64_t *b)
{
	int64_t i = *a, last;

	while (i < n && !f[i])
		i++;
	if (i >= n)
		return 0;
	last = i;
	for (int64_t j = i; j < n && j - last <= gap; j++)
		if (f[j])
			last = j;
	*a = i;
	*b = last + 1;
	return 1;
}

int
ss_match_batch(struct ss_matcher *m, const struct ss_config *cfg, float *R,
               int64_t T, int64_t lo, int64_t hi, int64_t t_abs0,
               struct ss_match_out *out, double *acc, int64_t *cnt)
{
	int C = m->C, nt = m->nt, rc;
	int64_t Ts = T - nt + 1, first = out->n;
	float th = (float) (cfg->th_match * cfg->th_match);

	if (m->K == 0 || Ts <= 0)
		return 0;
	if (T > m->Tmax)
		return NQ_EINTERNAL;
	m->lam = cfg->lam;
	if ((rc = project(m, R, 0, T)) != 0)
		return rc;
	if ((rc = score(m, 0, Ts)) != 0)
		return rc;
	memset(m->sdirty, 1, (size_t) Ts);
	for (int round = 0; round < cfg->max_peels; round++) {
		int64_t np = 0;
		/* local maxima above threshold among recomputed scores */
		for (int64_t t = 0; t < Ts; t++) {
			if (!m->sdirty[t] || !(m->Sb[t] > th))
				continue;
			int ok = 1;
			int64_t u0 = t - nt + 1 < 0 ? 0 : t - nt + 1;
			int64_t u1 = t + nt > Ts ? Ts : t + nt;
			for (int64_t u = u0; u < u1 && ok; u++)
				if (m->Sb[u] > m->Sb[t] ||
				    (m->Sb[u] == m->Sb[t] && u < t))
					ok = 0;
			if (ok)
				m->peaks[np++] = t;
		}
		if (np == 0)
			break;
		memset(m->dirty, 0, (size_t) T);
		memset(m->sdirty, 0, (size_t) Ts);
		for (int64_t i = 0; i < np; i++) {
			int64_t t = m->peaks[i];
			int k = m->Kb[t];
			float a = m->Ab[t];
			const float *W = m->tp->W + (size_t) k * C * nt;
			float *Rt = R + (size_t) C * t;
			for (int tau = 0; tau < nt; tau++)
				for (int c = m->wc0[k]; c < m->wc1[k]; c++)
					Rt[c + C * tau] -= a * W[c + C * tau];
			memset(m->dirty + t, 1, (size_t) nt);
			int64_t s0 = t - nt + 1 < 0 ? 0 : t - nt + 1;
			int64_t s1 = t + nt > Ts ? Ts : t + nt;
			memset(m->sdirty + s0, 1, (size_t) (s1 - s0));
			if ((rc = ss_match_out_push(out, t, k, a)) != 0)
				return rc;
		}
		for (int64_t a = 0, b; next_run(m->dirty, T, nt, &a, &b); a = b)
			if ((rc = project(m, R, a, b)) != 0)
				return rc;
		for (int64_t a = 0, b; next_run(m->sdirty, Ts, nt, &a, &b);
		     a = b)
			if ((rc = score(m, a, b)) != 0)
				return rc;
	}
	/* keep the spikes whose trough is in [lo, hi); learn from them */
	int64_t w = first;
	for (int64_t i = first; i < out->n; i++) {
		int64_t t = out->t[i], tr = t + cfg->nt0min;
		int k = out->k[i];
		if (tr < lo || tr >= hi)
			continue;
		if (acc != NULL) {
			const float *W = m->tp->W + (size_t) k * C * nt;
			const float *Rt = R + (size_t) C * t;
			double *A = acc + (size_t) k * C * nt;
			for (int j = 0; j < C * nt; j++)
				A[j] += Rt[j] + out->a[i] * W[j];
			cnt[k]++;
		}
		out->t[w] = t_abs0 + tr;
		out->k[w] = k;
		out->a[w] = out->a[i];
		w++;
	}
	out->n = w;
	return 0;
}
