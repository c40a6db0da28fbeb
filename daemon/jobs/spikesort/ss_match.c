/*
 * ss_match.c — template matching by greedy matching pursuit with low-rank
 * templates (the seed lab's fast MAP step, Kilosort's peeling):
 *   P = Uᵀ R           kern gemms, each group of templates on its own
 *                      channel window (templates are local)
 *   s_k(t) = Σ_r Σ_τ V_k[τ,r] P[rk, t+τ]     projection score, unit-norm W_k
 *                      (kern conv_rows), so the device carries both
 * Every round accepts each candidate (template k at start t) whose gain
 * exceeds th_match² and is the largest of all candidates it interacts with
 * (less than one template width apart on templates that share channels),
 * subtracts s·W_k from the residual, and recomputes P and the scores only
 * where the residual changed and only for templates on those channels, so
 * spikes far apart on a long probe come out in the same round and
 * overlapping ones in later rounds. The residual, the scores, each group's
 * best template per sample (kern score_best), the acceptance (kern
 * accept_peaks) and the subtraction (kern sub_spikes) all live on the
 * backend: on a device only the accepted spikes cross the bus.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

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
		/* keep the channels where the footprint has energy (≥ 1e-3 of
		 * its peak channel, 3 % in amplitude) within t->radius of the
		 * peak channel: far channels hold only averaged noise, whose
		 * chance excursions made a learned template's window span the
		 * whole probe, and a bounded window lets matching project and
		 * peel each template on its own channels. The window is the
		 * channel range [c0, c1) of what is kept. */
		{
			double emax = 0, r2 = t->radius * t->radius;
			int c0 = C, c1 = 0, cm = 0;
			for (int c = 0; c < C; c++) {
				double e = 0;
				for (int r = 0; r < R; r++)
					e += u[c + C * r] * u[c + C * r];
				if (e > emax) {
					emax = e;
					cm = c;
				}
			}
			for (int c = 0; c < C; c++) {
				double e = 0;
				for (int r = 0; r < R; r++)
					e += u[c + C * r] * u[c + C * r];
				if (t->px != NULL && t->radius > 0) {
					double dx = t->px[c] - t->px[cm];
					double dy = t->py[c] - t->py[cm];
					if (dx * dx + dy * dy > r2)
						e = 0;
				}
				if (emax > 0 && e >= 1e-3 * emax) {
					c0 = c < c0 ? c : c0;
					c1 = c + 1;
				} else {
					for (int r = 0; r < R; r++)
						u[c + C * r] = 0;
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
				t->V[(size_t) k * nt * R + (size_t) a * R + r] =
				        (float) v[a];
		}
		/* W := U Vᵀ so that scores and subtraction agree */
		for (int a = 0; a < nt; a++)
			for (int c = 0; c < C; c++) {
				double s = 0;
				for (int r = 0; r < R; r++)
					s += t->U[c +
					          (size_t) C * (k * R + r)] *
					     t->V[(size_t) k * nt * R +
					          (size_t) a * R + r];
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
				double v = W[(size_t) k * C * nt + c +
				             (size_t) C * a];
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
 * one kern gemm per group instead of every template on every channel.
 * Groups are also the unit of locality in matching: a spike subtracted on
 * a template's channels changes the projections and scores of only the
 * groups whose channels overlap them, and two candidate spikes interact
 * only when their groups share channels (or are the same group). */
struct ss_mgroup {
	int i0, i1, c0, c1;
};

/* A run of samples [a, b) of group g to refresh. */
struct ss_mpiece {
	int g;
	int64_t a, b;
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
	int ngrp, gmax;         /* groups, most templates in one group */
	int nthr;               /* threads over refresh pieces (cpu only) */
	struct ss_mpiece *work; /* refresh_groups' pieces (nwork_cap) */
	int64_t nwork_cap;
	int *gnb0, *gnb; /* groups sharing channels with group g (g first) */
	int *tg0, *tg;   /* groups sharing channels with template k's window */
	struct ss_kbuf dU, dVt, dR, dP, dS;
	/* on the device (kern score_best, accept_peaks), ngrp × Tmax: the
	 * best gain of each group's templates, its least-squares amplitude
	 * and its template; per template in matcher order its prior
	 * amplitude (0: none) and id; the group overlaps (gnb0, gnb) */
	struct ss_kbuf dGb, dAb, dKb, dMu, dKid, dNb0, dNb;
	/* th_own: each template's squared gain threshold (matcher order,
	 * on the device) once measured on the first batch, their least */
	struct ss_kbuf dTh;
	int th_set;
	float th_min;
	int32_t *pk_k; /* a round's accepted: template, amplitude */
	float *pk_a;
	double lam;
	uint8_t *pdirty; /* ngrp × Tmax: projection needs recomputing */
	uint8_t *sdirty; /* ngrp × Tmax: scores need recomputing */
	int64_t *peaks;  /* accepted in a round: g Tmax + t */
	int64_t npk;     /* their most */
	/* subtraction on the device residual dR (kern sub_spikes): the
	 * templates (dW: tp->W itself on a host-memory backend), their
	 * channel windows, and a round's spikes (t, k) with amplitudes */
	const float *dW;
	struct ss_kbuf dWt, dWin, dTK, dA;
	int32_t *tk;
	float *ta;
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
	ss_kbuf_free(m->kb, &m->dWt);
	ss_kbuf_free(m->kb, &m->dWin);
	ss_kbuf_free(m->kb, &m->dTK);
	ss_kbuf_free(m->kb, &m->dA);
	free(m->tk);
	free(m->ta);
	free(m->ord);
	free(m->wc0);
	free(m->wc1);
	free(m->grp);
	free(m->gnb0);
	free(m->gnb);
	free(m->tg0);
	free(m->tg);
	free(m->work);
	ss_kbuf_free(m->kb, &m->dGb);
	ss_kbuf_free(m->kb, &m->dAb);
	ss_kbuf_free(m->kb, &m->dKb);
	ss_kbuf_free(m->kb, &m->dMu);
	ss_kbuf_free(m->kb, &m->dKid);
	ss_kbuf_free(m->kb, &m->dNb0);
	ss_kbuf_free(m->kb, &m->dNb);
	ss_kbuf_free(m->kb, &m->dTh);
	free(m->pk_k);
	free(m->pk_a);
	free(m->pdirty);
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
static void
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
	m->gmax = 1;
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
		m->gmax = i1 - i > m->gmax ? i1 - i : m->gmax;
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
				        t->V[(size_t) k * nt * R +
				             (size_t) a * R + r];
		}
	}
}

/* The two overlap lists (CSR); 0 or NQ_ENOMEM. */
static int
matcher_neighbours(struct ss_matcher *m)
{
	int G = m->ngrp, K = m->K, n = 0;

	m->gnb0 = malloc(sizeof(int) * (size_t) (G + 1));
	m->tg0 = malloc(sizeof(int) * (size_t) (K + 1));
	m->gnb = malloc(sizeof(int) * (size_t) G * G + 1);
	m->tg = malloc(sizeof(int) * (size_t) K * G + 1);
	if (!m->gnb0 || !m->tg0 || !m->gnb || !m->tg)
		return NQ_ENOMEM;
	for (int g = 0; g < G; g++) {
		const struct ss_mgroup *a = m->grp + g;
		m->gnb0[g] = n;
		m->gnb[n++] = g; /* its own group rejects most candidates */
		for (int h = 0; h < G; h++) {
			const struct ss_mgroup *b = m->grp + h;
			if (h != g && a->c0 < b->c1 && b->c0 < a->c1)
				m->gnb[n++] = h;
		}
	}
	m->gnb0[G] = n;
	n = 0;
	for (int k = 0; k < K; k++) {
		m->tg0[k] = n;
		for (int h = 0; h < G; h++)
			if (m->wc0[k] < m->grp[h].c1 &&
			    m->grp[h].c0 < m->wc1[k])
				m->tg[n++] = h;
	}
	m->tg0[K] = n;
	return 0;
}

/* The per-template prior amplitudes and ids (matcher order) and the group
 * overlaps, as the device ops read them. */
static int
matcher_upload_lists(struct ss_matcher *m)
{
	const struct kern_backend *kb = m->kb;
	size_t k1 = m->K ? (size_t) m->K : 1, g1 = (size_t) m->ngrp + 1;
	size_t ne;
	float *mu = NULL;
	int32_t *kid = NULL, *nb0 = NULL, *nb = NULL;
	int rc = NQ_ENOMEM;

	if (m->gnb0 == NULL || m->gnb == NULL) /* matcher_neighbours first */
		return NQ_EINTERNAL;
	ne = (size_t) m->gnb0[m->ngrp] + 1;
	mu = calloc(k1, sizeof(float));
	kid = calloc(k1, sizeof(int32_t));
	nb0 = calloc(g1, sizeof(int32_t));
	nb = calloc(ne, sizeof(int32_t));
	if (!mu || !kid || !nb0 || !nb)
		goto out;
	for (int i = 0; i < m->K; i++) {
		kid[i] = m->ord[i];
		mu[i] = m->tp->mu ? m->tp->mu[m->ord[i]] : 0;
	}
	for (size_t g = 0; g < g1; g++)
		nb0[g] = m->gnb0[g];
	for (size_t j = 0; j + 1 < ne; j++)
		nb[j] = m->gnb[j];
	if ((rc = ss_kbuf_ensure(kb, &m->dMu, sizeof(float) * k1)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dKid, sizeof(int32_t) * k1)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dNb0, sizeof(int32_t) * g1)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dNb, sizeof(int32_t) * ne)) ||
	    (rc = KOP(kb, upload, m->dMu.p, mu, sizeof(float) * k1)) ||
	    (rc = KOP(kb, upload, m->dKid.p, kid, sizeof(int32_t) * k1)) ||
	    (rc = KOP(kb, upload, m->dNb0.p, nb0, sizeof(int32_t) * g1)) ||
	    (rc = KOP(kb, upload, m->dNb.p, nb, sizeof(int32_t) * ne)))
		goto out;
out:
	free(mu);
	free(kid);
	free(nb0);
	free(nb);
	return rc;
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
	U = calloc(rk * (size_t) m->C, sizeof(float));
	Vt = calloc(rk * (size_t) m->nt, sizeof(float));
	if (!m->ord || !m->wc0 || !m->wc1 || !m->grp || !U || !Vt)
		goto fail;
	matcher_layout(m, U, Vt);
	if ((rc = matcher_neighbours(m)) != 0)
		goto fail;
	rc = NQ_ENOMEM;
	size_t g1 = m->ngrp ? (size_t) m->ngrp : 1, gm = (size_t) m->gmax;
	/* groups are independent (own projections, own scores), so a
	 * backend whose ops may run on several threads at once (the host's)
	 * refreshes them in parallel; a device backend keeps one stream */
	m->nthr = kern_ops_reentrant(kb) ? kern_host_threads(16) : 1;
	gm *= (size_t) m->nthr;
	m->pdirty = malloc(g1 * (size_t) Tmax);
	m->sdirty = malloc(g1 * (size_t) Tmax);
	/* a group's accepted spikes are ≥ nt apart */
	m->npk = (int64_t) g1 * (Tmax / (m->nt > 0 ? m->nt : 1) + 2);
	m->peaks = malloc(sizeof(int64_t) * (size_t) m->npk);
	m->tk = malloc(sizeof(int32_t) * 2 * (size_t) m->npk);
	m->ta = malloc(sizeof(float) * (size_t) m->npk);
	m->pk_k = malloc(sizeof(int32_t) * (size_t) m->npk);
	m->pk_a = malloc(sizeof(float) * (size_t) m->npk);
	if (!m->pdirty || !m->sdirty || !m->peaks || !m->tk || !m->ta ||
	    !m->pk_k || !m->pk_a)
		goto fail;
	if ((rc = ss_kbuf_ensure(kb, &m->dU,
	                         sizeof(float) * (size_t) m->C * rk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dVt,
	                         sizeof(float) * (size_t) m->nt * rk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dR,
	                         sizeof(float) * (size_t) m->C * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dP, sizeof(float) * rk * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dS, sizeof(float) * gm * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dWin, sizeof(int32_t) * 2 * k1)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dTK,
	                         sizeof(int32_t) * 2 * (size_t) m->npk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dA,
	                         sizeof(float) * (size_t) m->npk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dGb, sizeof(float) * g1 * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dAb, sizeof(float) * g1 * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dKb, sizeof(int32_t) * g1 * Tmax)) ||
	    (rc = matcher_upload_lists(m)))
		goto fail;
	{
		size_t wb = sizeof(float) * (size_t) m->K * m->C * m->nt;
		int32_t *win = malloc(sizeof(int32_t) * 2 * k1);
		if (win == NULL) {
			rc = NQ_ENOMEM;
			goto fail;
		}
		for (int k = 0; k < m->K; k++) {
			win[2 * k] = m->wc0[k];
			win[2 * k + 1] = m->wc1[k];
		}
		rc = KOP(kb, upload, m->dWin.p, win,
		         sizeof(int32_t) * 2 * (size_t) m->K);
		free(win);
		if (rc != 0)
			goto fail;
		if (kern_mem_is_host(kb)) {
			m->dW = t->W;
		} else {
			if ((rc = ss_kbuf_ensure(kb, &m->dWt, wb)) ||
			    (rc = KOP(kb, upload, m->dWt.p, t->W, wb)))
				goto fail;
			m->dW = m->dWt.p;
		}
	}
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

/* Residual samples [a, b) to the device. */
static int
upload(struct ss_matcher *m, const float *R, int64_t a, int64_t b)
{
	size_t C = (size_t) m->C;

	if (b <= a)
		return 0;
	return KOP(m->kb, upload, (float *) m->dR.p + C * a, R + C * a,
	           sizeof(float) * C * (size_t) (b - a));
}

/* P[a:b, group g's columns] = R[c0:c1, a:b)ᵀ U (P is Tmax × RK, matcher
 * order): one gemm over the group's channel window. */
static int
project(struct ss_matcher *m, int g, int64_t a, int64_t b)
{
	const struct ss_mgroup *q = m->grp + g;
	size_t C = (size_t) m->C, col = (size_t) m->R * q->i0;

	if (b <= a)
		return 0;
	return KOP(m->kb, gemm, KERN_F32, KERN_T, KERN_N, b - a,
	           (int64_t) m->R * (q->i1 - q->i0), q->c1 - q->c0, 1.0,
	           (float *) m->dR.p + C * a + q->c0, m->C,
	           (float *) m->dU.p + q->c0 + C * col, m->C, 0.0,
	           (float *) m->dP.p + a + (size_t) m->Tmax * col, m->Tmax);
}

/* Scores s_k(t) = Σ_r Σ_τ V_k[τ,r] P[t+τ, kR+r] of group g's templates for
 * start samples [a, b) (kern conv_rows on the device, downloaded compact),
 * then the group's best template per start by the drop in squared
 * residual. With Kilosort 2's amplitude prior (weight λ, typical amplitude
 * μ_k) the gain is (s + λμ)²/(1 + λ) − λμ² (the MAP fit), which turns away
 * small fits of a big unit's template to leftovers; without a prior it is
 * s². The spike is subtracted with its least-squares amplitude s, so no
 * part of it along its own template stays in the residual for a
 * neighbour's template to pick up. */
static int
score(struct ss_matcher *m, int g, int64_t a, int64_t b, int tid)
{
	const struct kern_backend *kb = m->kb;
	const struct ss_mgroup *q = m->grp + g;
	int64_t n = b - a, Tm = m->Tmax;
	int ng = q->i1 - q->i0, rc;
	size_t off = (size_t) tid * (size_t) m->gmax * (size_t) Tm;
	size_t at = (size_t) (Tm * g + a);
	void *dS = (float *) m->dS.p + off;

	if (n <= 0)
		return 0;
	if ((rc = KOP(kb, conv_rows, KERN_F32, ng, m->R, n, m->nt,
	              (float *) m->dP.p + a + (size_t) Tm * m->R * q->i0, Tm,
	              (float *) m->dVt.p + (size_t) m->nt * m->R * q->i0, dS,
	              n)) != 0)
		return rc;
	return KOP(kb, score_best, ng, n, dS, n, (float *) m->dMu.p + q->i0,
	           m->lam, m->th_set ? (float *) m->dTh.p + q->i0 : NULL,
	           (int32_t *) m->dKid.p + q->i0, (float *) m->dGb.p + at,
	           (float *) m->dAb.p + at, (int32_t *) m->dKb.p + at);
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

/* next_run, or the whole of [0, n) once when f is NULL. */
static int
full_or_run(const uint8_t *f, int64_t n, int64_t gap, int64_t *a, int64_t *b)
{
	if (f != NULL)
		return next_run(f, n, gap, a, b);
	if (*a >= n)
		return 0;
	*b = n;
	return 1;
}

/* Group g's pieces into m->work from *n on: [0, end) (flags NULL) or its
 * runs of flags (as next_run), each cut into pieces of at most
 * REFRESH_PIECE samples. 0 or NQ_ENOMEM. */
#define REFRESH_PIECE 8192
static int
add_pieces(struct ss_matcher *m, int g, const uint8_t *flags, int64_t end,
           int64_t *n)
{
	for (int64_t a = 0, b; full_or_run(flags, end, m->nt, &a, &b); a = b)
		for (int64_t p = a; p < b; p += REFRESH_PIECE) {
			if (*n == m->nwork_cap) {
				int64_t cap =
				        m->nwork_cap ? 2 * m->nwork_cap : 256;
				struct ss_mpiece *w = realloc(
				        m->work, sizeof(*w) * (size_t) cap);
				if (w == NULL)
					return NQ_ENOMEM;
				m->work = w;
				m->nwork_cap = cap;
			}
			m->work[(*n)++] = (struct ss_mpiece){
			        g, p,
			        p + REFRESH_PIECE < b ? p + REFRESH_PIECE : b};
		}
	return 0;
}

/* Every group's projections, then every group's scores (which read nt − 1
 * projections past their own starts), everywhere (full) or where flagged,
 * in pieces shared out one at a time over the host's threads: a batch has
 * a handful of groups of very different sizes, so whole groups kept one
 * thread waiting for the biggest. Each piece writes only its own samples
 * (scores: with its thread's scratch), and every sample is computed as in
 * one piece, so the result does not depend on the threads. The status of
 * the first failing piece is returned. */
static int
refresh_groups(struct ss_matcher *m, int64_t T, int64_t Ts, int full)
{
	int64_t Tm = m->Tmax;

	for (int phase = 0; phase < 2; phase++) {
		const uint8_t *flags = phase == 0 ? m->pdirty : m->sdirty;
		int64_t n = 0, bad = -1, end = phase == 0 ? T : Ts;
		int err = 0;
		for (int g = 0; g < m->ngrp && err == 0; g++)
			err = add_pieces(m, g, full ? NULL : flags + Tm * g,
			                 end, &n);
		if (err != 0)
			return err;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) \
        num_threads(m->nthr) if (m->nthr > 1 && n > 1)
#endif
		for (int64_t i = 0; i < n; i++) {
			const struct ss_mpiece *w = m->work + i;
			int tid = 0, rc;
#ifdef _OPENMP
			tid = omp_get_thread_num();
#endif
			rc = phase == 0 ? project(m, w->g, w->a, w->b)
			                : score(m, w->g, w->a, w->b, tid);
			if (rc != 0) {
#ifdef _OPENMP
#pragma omp critical(refresh_err)
#endif
				if (bad < 0 || i < bad) {
					bad = i;
					err = rc;
				}
			}
		}
		if (err != 0)
			return err;
	}
	return 0;
}

/* th_own: each template's projection noise on this batch — the robust
 * spread (MAD / 0.6745) of its score over every start, which its own and
 * its neighbours' spikes, a few percent of the starts, barely move — and
 * from it its own gain threshold (ss_match_thresholds), uploaded; then
 * each group's best template per start again (kern score_best) on the
 * same scores, which skips templates under their own. Once per matcher:
 * kern conv_rows on the projections refresh left, the scores downloaded
 * one group at a time. */
static int
matcher_own_thresholds(struct ss_matcher *m, const struct ss_config *cfg,
                       int64_t Ts)
{
	const struct kern_backend *kb = m->kb;
	size_t k1 = m->K ? (size_t) m->K : 1, ts = (size_t) Ts;
	size_t gm = (size_t) m->gmax, Tm = (size_t) m->Tmax;
	float *S = malloc(sizeof(float) * gm * ts);
	float *buf = malloc(sizeof(float) * ts);
	float *sig = malloc(sizeof(float) * gm);
	float *mu = malloc(sizeof(float) * gm);
	float *th2 = malloc(sizeof(float) * k1);
	int rc = NQ_ENOMEM;

	if (!S || !buf || !sig || !mu || !th2)
		goto out;
	if ((rc = ss_kbuf_ensure(kb, &m->dTh, sizeof(float) * k1)) != 0)
		goto out;
	m->th_min = INFINITY;
	for (int g = 0; g < m->ngrp; g++) {
		const struct ss_mgroup *q = m->grp + g;
		int ng = q->i1 - q->i0;
		size_t at = Tm * (size_t) g;
		float *dth = (float *) m->dTh.p + q->i0;
		if ((rc = KOP(kb, conv_rows, KERN_F32, ng, m->R, Ts, m->nt,
		              (float *) m->dP.p + Tm * m->R * q->i0, m->Tmax,
		              (float *) m->dVt.p +
		                      (size_t) m->nt * m->R * q->i0,
		              m->dS.p, Ts)) != 0 ||
		    (rc = KOP(kb, download, S, m->dS.p,
		              sizeof(float) * (size_t) ng * ts)) != 0)
			goto out;
		for (int i = 0; i < ng; i++) {
			const float *row = S + ts * (size_t) i;
			int k = m->ord[q->i0 + i];
			float med;
			memcpy(buf, row, sizeof(float) * ts);
			med = ss_median_inplace(buf, Ts);
			for (int64_t t = 0; t < Ts; t++)
				buf[t] = fabsf(row[t] - med);
			sig[i] = ss_median_inplace(buf, Ts) / 0.6745f;
			mu[i] = m->tp->mu ? m->tp->mu[k] : 0;
		}
		ss_match_thresholds(sig, m->tp->mu ? mu : NULL, ng,
		                    cfg->th_match, cfg->th_detect, th2);
		for (int i = 0; i < ng; i++)
			m->th_min = th2[i] < m->th_min ? th2[i] : m->th_min;
		if ((rc = KOP(kb, upload, dth, th2, sizeof(float) * ng)) != 0 ||
		    (rc = KOP(kb, score_best, ng, Ts, m->dS.p, Ts,
		              (float *) m->dMu.p + q->i0, m->lam, dth,
		              (int32_t *) m->dKid.p + q->i0,
		              (float *) m->dGb.p + at, (float *) m->dAb.p + at,
		              (int32_t *) m->dKb.p + at)) != 0)
			goto out;
	}
	m->th_set = 1;
out:
	free(S);
	free(buf);
	free(sig);
	free(mu);
	free(th2);
	return rc;
}

/* Matching pursuit on the residual dR (samples [0, T) set): spikes
 * appended to out; acc (learning) reads the residual, which is
 * downloaded into Rh first on a device backend. */
static int
match_dr(struct ss_matcher *m, const struct ss_config *cfg, int64_t T,
         int64_t lo, int64_t hi, int64_t t_abs0, struct ss_match_out *out,
         double *acc, int64_t *cnt, float *Rh)
{
	int C = m->C, nt = m->nt, rc;
	int64_t Ts = T - nt + 1, first = out->n, Tm = m->Tmax;
	float th = (float) (cfg->th_match * cfg->th_match);
	const float *R = m->dR.p;

	m->lam = cfg->lam;
	if ((rc = refresh_groups(m, T, Ts, 1)) != 0)
		return rc;
	if (cfg->th_own && !m->th_set &&
	    (rc = matcher_own_thresholds(m, cfg, Ts)) != 0)
		return rc;
	if (m->th_set) /* every candidate is over its own already */
		th = m->th_min;
	for (int round = 0; round < cfg->max_peels; round++) {
		int64_t np = 0;
		/* every candidate (also those held back last round by a
		 * neighbour that was itself held back) that is the largest of
		 * all it interacts with: starts less than nt apart in groups
		 * sharing channels, ties to the lower (group, start), so two
		 * accepted spikes never interact and the order of acceptance
		 * does not matter; found where the gains lie, only the list
		 * comes back */
		if ((rc = KOP(m->kb, accept_peaks, m->ngrp, Ts, Tm, m->dGb.p,
		              m->dKb.p, m->dAb.p, th, nt, m->dNb0.p, m->dNb.p,
		              m->npk, m->peaks, m->pk_k, m->pk_a, &np)) != 0)
			return rc;
		if (np > m->npk) /* a group's are >= nt apart: cannot be */
			return NQ_EINTERNAL;
		if (np == 0)
			break;
		memset(m->pdirty, 0, (size_t) (Tm * m->ngrp));
		memset(m->sdirty, 0, (size_t) (Tm * m->ngrp));
		for (int64_t i = 0; i < np; i++) {
			int64_t t = m->peaks[i] % Tm; /* g Tm + t */
			int k = m->pk_k[i];
			float a = m->pk_a[i];
			/* accepted spikes never interact: their footprints
			 * are disjoint, so one sub_spikes call takes all */
			m->tk[2 * i] = (int32_t) t;
			m->tk[2 * i + 1] = k;
			m->ta[i] = a;
			int64_t s0 = t - nt + 1 < 0 ? 0 : t - nt + 1;
			int64_t s1 = t + nt > Ts ? Ts : t + nt;
			for (int j = m->tg0[k]; j < m->tg0[k + 1]; j++) {
				int h = m->tg[j];
				memset(m->pdirty + Tm * h + t, 1, (size_t) nt);
				memset(m->sdirty + Tm * h + s0, 1,
				       (size_t) (s1 - s0));
			}
			if ((rc = ss_match_out_push(out, t, k, a)) != 0)
				return rc;
		}
		if ((rc = KOP(m->kb, upload, m->dTK.p, m->tk,
		              sizeof(int32_t) * 2 * (size_t) np)) != 0 ||
		    (rc = KOP(m->kb, upload, m->dA.p, m->ta,
		              sizeof(float) * (size_t) np)) != 0 ||
		    (rc = KOP(m->kb, sub_spikes, C, T, m->dR.p, nt, m->K, m->dW,
		              m->dWin.p, np, m->dTK.p, m->dA.p)) != 0)
			return rc;
		if ((rc = refresh_groups(m, T, Ts, 0)) != 0)
			return rc;
	}
	if (acc != NULL && !kern_mem_is_host(m->kb)) {
		if ((rc = KOP(m->kb, download, Rh, m->dR.p,
		              sizeof(float) * (size_t) C * (size_t) T)) != 0)
			return rc;
		R = Rh;
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

int
ss_match_batch(struct ss_matcher *m, const struct ss_config *cfg,
               const float *Y, float *R, int64_t T, int64_t lo, int64_t hi,
               int64_t t_abs0, struct ss_match_out *out, double *acc,
               int64_t *cnt)
{
	size_t bytes = sizeof(float) * (size_t) m->C * (size_t) T;
	int rc;

	if (m->K == 0 || T - m->nt + 1 <= 0) {
		/* nothing peeled: the residual is Y */
		if (R != NULL && R != Y)
			memcpy(R, Y, bytes);
		return 0;
	}
	if (T > m->Tmax ||
	    (R == NULL && acc != NULL && !kern_mem_is_host(m->kb)))
		return NQ_EINTERNAL;
	if ((rc = upload(m, Y, 0, T)) != 0 ||
	    (rc = match_dr(m, cfg, T, lo, hi, t_abs0, out, acc, cnt, R)) != 0)
		return rc;
	/* R becomes the residual (already there when acc fetched it) */
	if (R == NULL || (acc != NULL && !kern_mem_is_host(m->kb)))
		return 0;
	return KOP(m->kb, download, R, m->dR.p, bytes);
}

int
ss_match_batch_dev(struct ss_matcher *m, const struct ss_config *cfg,
                   const float *dY, int64_t T, int64_t lo, int64_t hi,
                   int64_t t_abs0, struct ss_match_out *out)
{
	int rc;

	if (m->K == 0 || T - m->nt + 1 <= 0)
		return 0;
	if (T > m->Tmax)
		return NQ_EINTERNAL;
	if ((rc = KOP(m->kb, copy, m->dR.p, dY,
	              sizeof(float) * (size_t) m->C * (size_t) T)) != 0)
		return rc;
	return match_dr(m, cfg, T, lo, hi, t_abs0, out, NULL, NULL, NULL);
}
