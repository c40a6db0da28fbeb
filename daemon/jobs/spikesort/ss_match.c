/*
 * ss_match.c — template matching by greedy matching pursuit with low-rank
 * templates (the seed lab's fast MAP step, Kilosort's peeling):
 *   P = Uᵀ R           one (rank·K × C) by (C × T) kern gemm per batch
 *   s_k(t) = Σ_r Σ_τ V_k[τ,r] P[rk, t+τ]     projection score, unit-norm W_k
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

struct ss_matcher {
	const struct kern_backend *kb;
	const struct ss_templates *tp;
	int K, C, nt, R, RK;
	int64_t Tmax;
	struct ss_kbuf dU, dR, dP;
	float *PT; /* Tmax × RK column-major: PT[t + Tmax*(k R + r)] */
	float *Ps; /* download scratch, n × RK */
	float *S;  /* K × Tmax scores */
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
	ss_kbuf_free(m->kb, &m->dR);
	ss_kbuf_free(m->kb, &m->dP);
	free(m->PT);
	free(m->Ps);
	free(m->S);
	free(m->Sb);
	free(m->Ab);
	free(m->Kb);
	free(m->dirty);
	free(m->sdirty);
	free(m->peaks);
	free(m);
}

int
ss_matcher_new(const struct kern_backend *kb, const struct ss_templates *t,
               int64_t Tmax, struct ss_matcher **out)
{
	struct ss_matcher *m = calloc(1, sizeof(*m));
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
	m->PT = malloc(sizeof(float) * rk * (size_t) Tmax);
	m->Ps = malloc(sizeof(float) * rk * (size_t) Tmax);
	m->S = malloc(sizeof(float) * k1 * (size_t) Tmax);
	m->Sb = malloc(sizeof(float) * (size_t) Tmax);
	m->Ab = malloc(sizeof(float) * (size_t) Tmax);
	m->Kb = malloc(sizeof(int32_t) * (size_t) Tmax);
	m->dirty = malloc((size_t) Tmax);
	m->sdirty = malloc((size_t) Tmax);
	m->peaks = malloc(sizeof(int64_t) * (size_t) Tmax);
	if (!m->PT || !m->Ps || !m->S || !m->Sb || !m->Ab || !m->Kb ||
	    !m->dirty || !m->sdirty || !m->peaks)
		goto fail;
	if ((rc = ss_kbuf_ensure(kb, &m->dU,
	                         sizeof(float) * (size_t) m->C * rk)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dR,
	                         sizeof(float) * (size_t) m->C * Tmax)) ||
	    (rc = ss_kbuf_ensure(kb, &m->dP, sizeof(float) * rk * Tmax)))
		goto fail;
	if (m->RK > 0 && (rc = KOP(kb, upload, m->dU.p, t->U,
	                           sizeof(float) * (size_t) m->C * m->RK)) != 0)
		goto fail;
	*out = m;
	return 0;
fail:
	ss_matcher_free(m);
	return rc;
}

/* PT[a:b, :] = R[:, a:b)ᵀ U: one kern gemm into a contiguous (b-a) × RK
 * block, downloaded once and scattered into the time-major rows. */
static int
project(struct ss_matcher *m, const float *R, int64_t a, int64_t b)
{
	const struct kern_backend *kb = m->kb;
	size_t C = (size_t) m->C, RK = (size_t) m->RK, n = (size_t) (b - a);
	int rc;

	if (b <= a)
		return 0;
	if ((rc = KOP(kb, upload, (float *) m->dR.p + C * a, R + C * a,
	              sizeof(float) * C * n)) != 0 ||
	    (rc = KOP(kb, gemm, KERN_F32, KERN_T, KERN_N, (int64_t) n, m->RK,
	              m->C, 1.0, (float *) m->dR.p + C * a, m->C, m->dU.p, m->C,
	              0.0, m->dP.p, (int64_t) n)) != 0 ||
	    (rc = KOP(kb, download, m->Ps, m->dP.p, sizeof(float) * RK * n)) !=
	            0)
		return rc;
	for (size_t i = 0; i < RK; i++)
		memcpy(m->PT + (size_t) m->Tmax * i + a, m->Ps + n * i,
		       sizeof(float) * n);
	return 0;
}

/* Scores s_k(t) = Σ_r Σ_τ V_k[τ,r] PT[t+τ, kR+r] for start samples [a, b)
 * (K·R·nt axpys over contiguous time, which vectorise), then the best k by
 * the drop in squared residual. With Kilosort 2's amplitude prior (weight
 * λ, typical amplitude μ_k) the MAP amplitude is x = (s + λμ)/(1 + λ) and
 * the gain (s + λμ)²/(1 + λ) − λμ², which turns away small fits of a big
 * unit's template to leftovers; without a prior it is s². */
/* One template's score over [a, b). Built for AVX2 and plain x86-64 alike
 * (picked at load time), so the binary stays portable. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
        !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
static void
score_one(float *restrict S, const float *PT, const float *Vk, int64_t Tmax,
          int R, int nt, int64_t a, int64_t b)
{
	memset(S + a, 0, sizeof(float) * (size_t) (b - a));
	for (int r = 0; r < R; r++) {
		const float *P = PT + (size_t) Tmax * r;
		for (int tau = 0; tau < nt; tau++) {
			float v = Vk[tau * R + r];
			const float *restrict p = P + tau;
			for (int64_t t = a; t < b; t++)
				S[t] += v * p[t];
		}
	}
}

static void
score(struct ss_matcher *m, int64_t a, int64_t b)
{
	int R = m->R, nt = m->nt;
	const float *V = m->tp->V;

	/* templates are independent: threads split them, results do not
	 * depend on the thread count */
#pragma omp parallel for schedule(static) if (m->K > 1 && b - a > 4096)
	for (int k = 0; k < m->K; k++)
		score_one(m->S + (size_t) m->Tmax * k,
		          m->PT + (size_t) m->Tmax * k * R,
		          V + (size_t) k * nt * R, m->Tmax, R, nt, a, b);
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
	score(m, 0, Ts);
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
			for (int j = 0; j < C * nt; j++)
				Rt[j] -= a * W[j];
			memset(m->dirty + t, 1, (size_t) nt);
			int64_t s0 = t - nt + 1 < 0 ? 0 : t - nt + 1;
			int64_t s1 = t + nt > Ts ? Ts : t + nt;
			memset(m->sdirty + s0, 1, (size_t) (s1 - s0));
			if ((rc = ss_match_out_push(out, t, k, a)) != 0)
				return rc;
		}
		for (int64_t a = 0, b; a < T; a = b) {
			if (!m->dirty[a]) {
				b = a + 1;
				continue;
			}
			for (b = a; b < T && m->dirty[b]; b++)
				;
			if ((rc = project(m, R, a, b)) != 0)
				return rc;
		}
		for (int64_t a = 0, b; a < Ts; a = b) {
			if (!m->sdirty[a]) {
				b = a + 1;
				continue;
			}
			for (b = a; b < Ts && m->sdirty[b]; b++)
				;
			score(m, a, b);
		}
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
