/*
 * gsn_nll.c — held-out Gaussian NLL over the shrink levels and the choice
 * of a level (spec §2.3, §3.3, §4.5).
 *
 * Three ways to the same curve:
 *  - spectral (default): Householder reduction of the correlation matrix
 *    R = Q T Qᵀ and Qᵀ of the held-out samples (no eigenvectors), the
 *    eigenvalues of T by sterf, then per level an O(N·m) LDLᵀ solve of
 *    the tridiagonal αT + (1−α)I. About a third of an eigh's flops.
 *  - eigh (oracle): one eigh of R, then every level costs O(N) on the
 *    host. Both run in float64 whatever the precision (§4.6 allows the
 *    upcast; float32 cannot resolve the 1e-12 singularity threshold).
 *  - cholesky (oracle): per level shrink, potrf, trsm of the held-out
 *    samples, sum of squares, log-determinant — the reference's loop.
 * Both apply the same alpha = 1 rule: NaN when the rank bound says the
 * training covariance is singular, or when the factorization fails
 * (spectral: min eigenvalue of the shrunk R <= 1e-12 * max).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "gsn_internal.h"
#include "nq_error.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static int
op_fail(int rc, const char *what, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "backend op %s failed during shrinkage selection",
	         what);
	return rc == NQ_ENOMEM ? NQ_ENOMEM : (rc ? rc : NQ_EDEVICE);
}

void
gsn_linspace(double start, double stop, int num, double *y)
{
	/* numpy.linspace(start, stop, num) (endpoint=True), step for step:
	 * y = arange(num) * step (or / div * delta when the step underflows
	 * to 0) + start, the last point set to stop. i/50 is not the same:
	 * 35/50, 41/50 and 47/50 are 1 ulp below 35*0.02, 41*0.02, 47*0.02 */
	double delta = stop - start, div = (double) (num - 1), step;

	if (num <= 0)
		return;
	if (num > 1) {
		step = delta / div;
		for (int i = 0; i < num; i++) {
			double t = (double) i;

			y[i] = step == 0 ? t / div * delta : t * step;
		}
	} else {
		y[0] = 0.0 * delta;
	}
	for (int i = 0; i < num; i++)
		y[i] += start;
	if (num > 1)
		y[num - 1] = stop;
}

int
gsn_levels(const struct gsn_opts *o, double *levels)
{
	int n = o->levels != NULL  ? o->nlevels
	        : o->wantshrinkage ? GSN_NLEVELS_DEF
	                           : 1;

	if (levels == NULL)
		return n;
	if (o->levels != NULL) {
		for (int i = 0; i < n; i++)
			levels[i] = o->levels[i];
	} else if (o->wantshrinkage) {
		gsn_linspace(0.0, 1.0, n, levels);
	} else {
		levels[0] = 1.0;
	}
	return n;
}

static void
pick_best(const double *levels, int nlevels, struct gsn_sel *sel)
{
	int best = -1;

	for (int i = 0; i < nlevels; i++)
		if (!isnan(sel->nll[i]) &&
		    (best < 0 || sel->nll[i] < sel->nll[best]))
			best = i;
	sel->all_singular = best < 0;
	sel->best = best < 0 ? 0 : best;
	(void) levels;
}

static void
all_nan(struct gsn_sel *sel, int nlevels)
{
	for (int i = 0; i < nlevels; i++)
		sel->nll[i] = NAN;
}

static int
has_level_one(const double *levels, int nlevels)
{
	for (int i = 0; i < nlevels; i++)
		if (levels[i] == 1.0)
			return 1;
	return 0;
}

/* The rule reported for alpha = 1 when no factorization was attempted. */
static enum gsn_singular_rule
rule_without_factor(int rank_def, const double *levels, int nlevels)
{
	return rank_def && has_level_one(levels, nlevels) ? GSN_SING_RANK
	                                                  : GSN_SING_NONE;
}

/* The tridiagonal T = Qᵀ R Q (diagonal td, subdiagonal te) and the rotated
 * held-out samples B = Qᵀ D^-½ H (n×m, column-major), host. */
struct tri {
	double *td, *te, *B;
};

static void
tri_fini(struct tri *t)
{
	free(t->td);
	free(t->te);
	free(t->B);
}

/* nll = eigh: R = U Λ Uᵀ (syevd); q_i = Σ_m (Uᵀ r_m)_i². W, s: device
 * n-vectors (work). */
static int
curve_eigh(struct gsn_dev *g64, int64_t n, void *R, const void *H64, int64_t m,
           void *W, void *s, double *lam, double *q, const struct gsn_stage *st,
           char *msg, size_t msglen)
{
	void *P = NULL;
	int rc, info = 0;

	rc = KOP(g64->kb, syevd, KERN_F64, n, R, n, W, &info);
	if (rc != 0)
		return op_fail(rc, "syevd", msg, msglen);
	if (info != 0) {
		snprintf(msg, msglen,
		         "eigendecomposition of the correlation matrix did not "
		         "converge (info %d); try nll='cholesky'",
		         info);
		return NQ_EDEVICE;
	}
	rc = gsn_stage_canceled(st, msg, msglen);
	if (rc != 0)
		return rc;
	rc = gsn_dalloc(g64, n * m, &P);
	if (rc == 0)
		rc = KOP(g64->kb, gemm, KERN_F64, KERN_T, KERN_N, n, m, n, 1.0,
		         R, n, H64, n, 0.0, P, n);
	if (rc == 0)
		rc = KOP(g64->kb, row_sumsq, KERN_F64, n, m, P, n, s);
	if (rc == 0)
		rc = gsn_down(g64, q, s, n);
	if (rc == 0)
		rc = gsn_down(g64, lam, W, n);
	gsn_dfree(g64, &P);
	return rc != 0 ? op_fail(rc, "gemm/row_sumsq", msg, msglen) : 0;
}

/* nll = spectral: R = Q T Qᵀ (sytrd), B = Qᵀ r; the eigenvalues of T by
 * sterf (no vectors). O(N³) once, then O(N·m) per level. W, s: device
 * n-vectors (work: T's diagonal and subdiagonal, then its eigenvalues). */
static int
curve_tridiag(struct gsn_dev *g64, int64_t n, void *R, void *H64, int64_t m,
              void *W, void *s, double *lam, struct tri *t,
              const struct gsn_stage *st, char *msg, size_t msglen)
{
	int rc, info = 0;

	t->td = malloc((size_t) n * sizeof(double));
	/* e (n−1), then the pivots (n) and multipliers (n−1) of
	 * tridiag_quad */
	t->te = malloc((size_t) (3 * n + 2) * sizeof(double));
	t->B = malloc((size_t) (n * m) * sizeof(double));
	if (t->td == NULL || t->te == NULL || t->B == NULL) {
		snprintf(msg, msglen, "out of host memory (NLL, N = %lld)",
		         (long long) n);
		return NQ_ENOMEM;
	}
	rc = KOP(g64->kb, tridiag_qt, KERN_F64, n, R, n, W, s, m, H64, n);
	if (rc == 0)
		rc = gsn_down(g64, t->td, W, n);
	if (rc == 0 && n > 1)
		rc = gsn_down(g64, t->te, s, n - 1);
	if (rc == 0)
		rc = gsn_down(g64, t->B, H64, n * m);
	if (rc != 0)
		return op_fail(rc, "tridiag_qt", msg, msglen);
	rc = gsn_stage_canceled(st, msg, msglen);
	if (rc != 0)
		return rc;
	/* sterf destroys d and e: the host has its copies of both */
	rc = KOP(g64->kb, sterf, KERN_F64, n, W, s, &info);
	if (rc == 0 && info == 0)
		rc = gsn_down(g64, lam, W, n);
	if (rc != 0)
		return op_fail(rc, "sterf", msg, msglen);
	if (info != 0) {
		snprintf(
		        msg, msglen,
		        "eigenvalues of the tridiagonal correlation matrix did "
		        "not converge (info %d); try nll='cholesky'",
		        info);
		return NQ_EDEVICE;
	}
	return 0;
}

/* Σ_m bᵀ (αT + (1−α)I)⁻¹ b over the columns of t->B, by LDLᵀ of the
 * tridiagonal (no pivoting: the matrix is positive definite here, the
 * caller has checked its eigenvalues). */
static double
tridiag_quad(const struct tri *t, int64_t n, int64_t m, double a)
{
	double *piv = t->te + (n > 1 ? n - 1 : 1), sum = 0;
	double *l = piv + n;

	/* pivots D_i and multipliers l_i, in the scratch tail of te */
	piv[0] = a * t->td[0] + 1.0 - a;
	for (int64_t i = 1; i < n; i++) {
		double b = a * t->te[i - 1];

		l[i - 1] = b / piv[i - 1];
		piv[i] = a * t->td[i] + 1.0 - a - l[i - 1] * b;
	}
	for (int64_t j = 0; j < m; j++) {
		const double *x = t->B + j * n;
		double y = x[0], acc = y * y / piv[0];

		for (int64_t i = 1; i < n; i++) {
			y = x[i] - l[i - 1] * y;
			acc += y * y / piv[i];
		}
		sum += acc;
	}
	return sum;
}

/* The training covariance given as c = s2·S Sᵀ with S n×r, 2r ≤ n (fewer
 * training samples than units: singular at α = 1 by the rank rule).
 * With S' = √s2·D^-½ S, R = S'S'ᵀ has the eigenvalues of the r×r Gram
 * G = S'ᵀS' = W Λ Wᵀ and n − r zeros, and by Woodbury
 *   hᵀ(αR + βI)⁻¹h = (‖h‖² − α Σ_i u_i² / (β + αλ_i)) / β,  u = WᵀS'ᵀh,
 * (β = 1 − α) so the curve costs O(N r²) instead of an O(N³) reduction. */
struct gram {
	int64_t r;
	double *lamg, *u2, hh;
};

static void
gram_fini(struct gram *gr)
{
	free(gr->lamg);
	free(gr->u2);
}

static int
curve_gram(struct gsn_dev *g, struct gsn_dev *g64, int64_t n,
           const struct gsn_samples *sm, const void *sinv, const void *H64,
           int64_t m, double *lam, struct gram *gr, const struct gsn_stage *st,
           char *msg, size_t msglen)
{
	int64_t r = sm->r;
	void *S64 = NULL, *G = NULL, *X = NULL, *U = NULL, *wl = NULL;
	void *w = NULL;
	int rc, info = 0;

	gr->r = r;
	gr->lamg = malloc((size_t) r * sizeof(double));
	gr->u2 = malloc((size_t) r * sizeof(double));
	if (gr->lamg == NULL || gr->u2 == NULL) {
		snprintf(msg, msglen, "out of host memory (NLL)");
		return NQ_ENOMEM;
	}
	rc = gsn_dalloc(g64, n * r, &S64);
	if (rc == 0)
		rc = gsn_dalloc(g64, r * r, &G);
	if (rc == 0)
		rc = gsn_dalloc(g64, r * m, &X);
	if (rc == 0)
		rc = gsn_dalloc(g64, r * m, &U);
	if (rc == 0)
		rc = gsn_dalloc(g64, r, &wl);
	if (rc == 0)
		rc = gsn_dalloc(g64, r, &w);
	if (rc == 0)
		rc = g->dt == KERN_F64 ? KOP(g->kb, copy, S64, sm->S,
		                             (size_t) (n * r) * 8)
		                       : KOP(g->kb, convert, KERN_F64, S64,
		                             KERN_F32, sm->S, n * r);
	if (rc == 0)
		rc = KOP(g->kb, scale_rc, KERN_F64, n, r, S64, n, sinv, NULL);
	if (rc == 0)
		rc = KOP(g->kb, syrk, KERN_F64, KERN_T, r, n, sm->s2, S64, n,
		         0.0, G, r);
	if (rc == 0)
		rc = KOP(g->kb, syevd, KERN_F64, r, G, r, wl, &info);
	if (rc != 0) {
		rc = op_fail(rc, "syrk/syevd (gram)", msg, msglen);
		goto out;
	}
	if (info != 0) {
		snprintf(msg, msglen,
		         "eigendecomposition of the sample Gram matrix did not "
		         "converge (info %d); try nll='cholesky'",
		         info);
		rc = NQ_EDEVICE;
		goto out;
	}
	rc = gsn_stage_canceled(st, msg, msglen);
	if (rc != 0)
		goto out;
	/* u = Wᵀ (√s2 S'ᵀ h) for every held-out column */
	rc = KOP(g->kb, gemm, KERN_F64, KERN_T, KERN_N, r, m, n, sqrt(sm->s2),
	         S64, n, H64, n, 0.0, X, r);
	if (rc == 0)
		rc = KOP(g->kb, gemm, KERN_F64, KERN_T, KERN_N, r, m, r, 1.0, G,
		         r, X, r, 0.0, U, r);
	if (rc == 0)
		rc = KOP(g->kb, row_sumsq, KERN_F64, r, m, U, r, w);
	if (rc == 0)
		rc = gsn_down(g64, gr->u2, w, r);
	if (rc == 0)
		rc = gsn_down(g64, gr->lamg, wl, r);
	if (rc == 0)
		rc = KOP(g->kb, sumsq, KERN_F64, n * m, H64, &gr->hh);
	if (rc != 0) {
		rc = op_fail(rc, "gemm (gram)", msg, msglen);
		goto out;
	}
	/* R's spectrum: the Gram's, then n − r exact zeros */
	for (int64_t i = 0; i < n; i++)
		lam[i] = i < r ? gr->lamg[i] : 0.0;
out:
	gsn_dfree(g64, &S64);
	gsn_dfree(g64, &G);
	gsn_dfree(g64, &X);
	gsn_dfree(g64, &U);
	gsn_dfree(g64, &wl);
	gsn_dfree(g64, &w);
	return rc;
}

static double
gram_quad(const struct gram *gr, double a)
{
	double b = 1.0 - a, t = 0;

	for (int64_t i = 0; i < gr->r; i++)
		t += gr->u2[i] / (b + a * gr->lamg[i]);
	return (gr->hh - a * t) / b;
}

static int
select_spectral(struct gsn_dev *g, int64_t n, const void *c, void *H, int64_t m,
                const struct gsn_samples *sm, const double *levels, int nlevels,
                int rank_def, enum gsn_nll mode, const struct gsn_stage *st,
                struct gsn_sel *sel, char *msg, size_t msglen)
{
	struct gsn_dev g64 = {g->kb, KERN_F64, 8};
	struct tri T = {0};
	struct gram gr = {0};
	/* the Gram form needs β > 0 at every level it computes: α = 1 must
	 * be NaN by the rank rule, which 2r ≤ n implies for the callers */
	int use_gram = mode == GSN_NLL_SPECTRAL && sm != NULL &&
	               sm->S != NULL && 2 * sm->r <= n && rank_def;
	void *R = NULL, *H64 = NULL, *W = NULL, *s = NULL;
	double *d = NULL, *lam = NULL, *q = NULL, *sh = NULL;
	double sum_log_d = 0;
	int rc, zero_var = 0;

	d = malloc((size_t) n * sizeof(double));
	lam = malloc((size_t) n * sizeof(double));
	q = malloc((size_t) n * sizeof(double));
	sh = malloc((size_t) n * sizeof(double));
	if (d == NULL || lam == NULL || q == NULL || sh == NULL) {
		rc = NQ_ENOMEM;
		snprintf(msg, msglen, "out of host memory (NLL, N = %lld)",
		         (long long) n);
		goto out;
	}
	/* R = c in float64 (the Gram form needs only c's diagonal) */
	rc = use_gram ? 0 : gsn_dalloc(&g64, n * n, &R);
	if (rc == 0)
		rc = gsn_dalloc(&g64, n, &W);
	if (rc == 0)
		rc = gsn_dalloc(&g64, n, &s);
	if (rc != 0) {
		rc = op_fail(rc, "alloc", msg, msglen);
		goto out;
	}
	if (use_gram) /* W holds n doubles: room for n of g->dt */
		rc = KOP(g->kb, get_diag, g->dt, n, c, W);
	else if (g->dt == KERN_F64)
		rc = KOP(g->kb, copy, R, c, (size_t) (n * n) * 8);
	else
		rc = KOP(g->kb, convert, KERN_F64, R, KERN_F32, c, n * n);
	if (rc == 0 && !use_gram)
		rc = KOP(g->kb, get_diag, KERN_F64, n, R, W);
	if (rc == 0)
		rc = use_gram ? gsn_down(g, d, W, n) : gsn_down(&g64, d, W, n);
	if (rc != 0) {
		rc = op_fail(rc, "copy/get_diag", msg, msglen);
		goto out;
	}
	for (int64_t i = 0; i < n; i++) {
		if (!(d[i] > 0) || !isfinite(d[i])) {
			zero_var = 1;
			break;
		}
		sh[i] = 1.0 / sqrt(d[i]);
		sum_log_d += log(d[i]);
	}
	if (zero_var || m == 0) {
		/* a zero-variance unit makes every shrunk matrix singular;
		 * no held-out sample makes every mean undefined */
		all_nan(sel, nlevels);
		sel->rule = rule_without_factor(rank_def, levels, nlevels);
		if (zero_var && m > 0 && sel->rule == GSN_SING_NONE &&
		    has_level_one(levels, nlevels))
			sel->rule = GSN_SING_FACTOR;
		rc = 0;
		goto out;
	}
	rc = gsn_up(&g64, s, sh, n);
	if (rc == 0 && !use_gram)
		rc = KOP(g->kb, scale_rc, KERN_F64, n, n, R, n, s, s);
	if (rc != 0) {
		rc = op_fail(rc, "scale", msg, msglen);
		goto out;
	}
	/* the held-out samples in float64, scaled: r_m = D^-½ h_m */
	if (g->dt == KERN_F64) {
		H64 = H;
	} else {
		rc = gsn_dalloc(&g64, n * m, &H64);
		if (rc == 0)
			rc = KOP(g->kb, convert, KERN_F64, H64, KERN_F32, H,
			         n * m);
		if (rc != 0) {
			rc = op_fail(rc, "convert", msg, msglen);
			goto out;
		}
	}
	rc = KOP(g->kb, scale_rc, KERN_F64, n, m, H64, n, s, NULL);
	if (rc != 0) {
		rc = op_fail(rc, "scale", msg, msglen);
		goto out;
	}
	if (n == 1) {
		/* N = 1: c(alpha) = c at every level (the diagonal is kept,
		 * spec Decisions), so the curve is flat. One value for all
		 * levels, bit for bit, so that the first level wins as with
		 * the Cholesky path (MATLAB, GSN's torch path): a "spectrum"
		 * alpha*lambda + 1 - alpha with lambda = c/c only rounds to 1
		 * and picked a level by rounding noise. */
		double ss = 0;

		rc = KOP(g->kb, sumsq, KERN_F64, m, H64, &ss);
		if (rc != 0) {
			rc = op_fail(rc, "sumsq", msg, msglen);
			goto out;
		}
		sel->rule = GSN_SING_NONE;
		for (int k = 0; k < nlevels; k++) {
			if (levels[k] == 1.0 && rank_def) {
				sel->nll[k] = NAN;
				sel->rule = GSN_SING_RANK;
				continue;
			}
			sel->nll[k] = 0.5 * ss / (double) m + 0.5 * sum_log_d +
			              0.5 * log(2 * M_PI);
		}
		goto out;
	}
	if (use_gram)
		rc = curve_gram(g, &g64, n, sm, s, H64, m, lam, &gr, st, msg,
		                msglen);
	else if (mode == GSN_NLL_EIGH)
		rc = curve_eigh(&g64, n, R, H64, m, W, s, lam, q, st, msg,
		                msglen);
	else
		rc = curve_tridiag(&g64, n, R, H64, m, W, s, lam, &T, st, msg,
		                   msglen);
	if (rc != 0)
		goto out;
	sel->rule = GSN_SING_NONE;
	for (int k = 0; k < nlevels; k++) {
		double a = levels[k], mx = -INFINITY, mn = INFINITY;
		double quad = 0, logmu = 0;

		if (a == 1.0 && rank_def) {
			sel->nll[k] = NAN;
			sel->rule = GSN_SING_RANK;
			continue;
		}
		for (int64_t i = 0; i < n; i++) {
			double mu = a * lam[i] + 1.0 - a;

			mx = mu > mx ? mu : mx;
			mn = mu < mn ? mu : mn;
		}
		if (!(mn > GSN_SPECTRAL_TOL * mx)) {
			sel->nll[k] = NAN;
			if (a == 1.0)
				sel->rule = GSN_SING_FACTOR;
			continue;
		}
		for (int64_t i = 0; i < n; i++)
			logmu += log(a * lam[i] + 1.0 - a);
		if (use_gram)
			quad = gram_quad(&gr, a);
		else if (mode == GSN_NLL_EIGH)
			for (int64_t i = 0; i < n; i++)
				quad += q[i] / (a * lam[i] + 1.0 - a);
		else
			quad = tridiag_quad(&T, n, m, a);
		sel->nll[k] = 0.5 * quad / (double) m + 0.5 * sum_log_d +
		              0.5 * logmu + 0.5 * (double) n * log(2 * M_PI);
	}
	rc = 0;
out:
	if (H64 != H)
		gsn_dfree(&g64, &H64);
	gsn_dfree(&g64, &R);
	gsn_dfree(&g64, &W);
	gsn_dfree(&g64, &s);
	free(d);
	free(lam);
	free(q);
	free(sh);
	tri_fini(&T);
	gram_fini(&gr);
	return rc;
}

static int
select_cholesky(struct gsn_dev *g, int64_t n, const void *c, void *H, int64_t m,
                const double *levels, int nlevels, int rank_def,
                const struct gsn_stage *st, struct gsn_sel *sel, char *msg,
                size_t msglen)
{
	void *L = NULL, *Y = NULL;
	int rc;

	sel->rule = rule_without_factor(rank_def, levels, nlevels);
	if (m == 0) {
		all_nan(sel, nlevels);
		return 0;
	}
	rc = gsn_dalloc(g, n * n, &L);
	if (rc == 0)
		rc = gsn_dalloc(g, n * m, &Y);
	if (rc != 0) {
		rc = op_fail(rc, "alloc", msg, msglen);
		goto out;
	}
	for (int k = 0; k < nlevels; k++) {
		double a = levels[k], ss = 0, ld = 0;
		int info = 0;

		gsn_stage_report(st, (double) k / nlevels);
		if ((rc = gsn_stage_canceled(st, msg, msglen)) != 0)
			goto out;
		sel->nll[k] = NAN;
		if (a == 1.0 && rank_def)
			continue; /* rule already RANK */
		/* keep_diag also for N = 1 (spec Decisions) */
		rc = KOP(g->kb, shrink, g->dt, n, c, L, a, 1);
		if (rc == 0)
			rc = KOP(g->kb, potrf, g->dt, n, L, n, &info);
		if (rc != 0) {
			rc = op_fail(rc, "shrink/potrf", msg, msglen);
			goto out;
		}
		if (info != 0) {
			if (a == 1.0)
				sel->rule = GSN_SING_FACTOR;
			continue;
		}
		rc = gsn_dcopy(g, Y, H, n * m);
		if (rc == 0)
			rc = KOP(g->kb, trsm_lower, g->dt, n, m, L, n, Y, n);
		if (rc == 0)
			rc = KOP(g->kb, sumsq, g->dt, n * m, Y, &ss);
		if (rc == 0)
			rc = KOP(g->kb, sum_log_diag, g->dt, n, L, &ld);
		if (rc != 0) {
			rc = op_fail(rc, "trsm/sumsq", msg, msglen);
			goto out;
		}
		sel->nll[k] = 0.5 * ss / (double) m + ld +
		              0.5 * (double) n * log(2 * M_PI);
	}
	rc = 0;
out:
	gsn_dfree(g, &L);
	gsn_dfree(g, &Y);
	return rc;
}

int
gsn_select(struct gsn_dev *g, int64_t n, const void *c, void *H, int64_t m,
           const double *levels, int nlevels, int rank_def, enum gsn_nll mode,
           const struct gsn_stage *st, struct gsn_sel *sel, char *msg,
           size_t msglen)
{
	return gsn_select_samples(g, n, c, NULL, H, m, levels, nlevels,
	                          rank_def, mode, st, sel, msg, msglen);
}

int
gsn_select_samples(struct gsn_dev *g, int64_t n, const void *c,
                   const struct gsn_samples *sm, void *H, int64_t m,
                   const double *levels, int nlevels, int rank_def,
                   enum gsn_nll mode, const struct gsn_stage *st,
                   struct gsn_sel *sel, char *msg, size_t msglen)
{
	int rc;

	sel->rule = GSN_SING_NONE;
	if (mode == GSN_NLL_CHOLESKY)
		rc = select_cholesky(g, n, c, H, m, levels, nlevels, rank_def,
		                     st, sel, msg, msglen);
	else
		rc = select_spectral(g, n, c, H, m, sm, levels, nlevels,
		                     rank_def, mode, st, sel, msg, msglen);
	if (rc != 0)
		return rc;
	pick_best(levels, nlevels, sel);
	gsn_stage_report(st, 1.0);
	return 0;
}
