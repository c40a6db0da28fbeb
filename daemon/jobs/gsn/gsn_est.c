/*
 * gsn_est.c — the two cross-validated estimators (spec §2.4, §2.5, §2.10).
 *
 * Host side, O(N·C·T): validity of (condition, trial) cells, residuals and
 * condition means, ordered training conditions first (in permutation order)
 * then held-out ones, so each split is a contiguous column block. Device
 * side: the Grams (syrk) and the level selection.
 *
 * Even data is the special case k_c = T of the whole-trial uneven path;
 * the Gram is then scaled once by 1/((T−1)·|K|) instead of per column, so
 * complete data gives the even path's numbers whichever uneven mode was
 * asked for.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gsn_internal.h"
#include "nq_error.h"

int
gsn_valid_init(struct gsn_valid *v, const double *data, int64_t n, int64_t c,
               int64_t t)
{
	memset(v, 0, sizeof(*v));
	v->c = c;
	v->t = t;
	v->valid = malloc((size_t) (c * t));
	v->kc = calloc((size_t) c, sizeof(int64_t));
	if (v->valid == NULL || v->kc == NULL) {
		gsn_valid_fini(v);
		return NQ_ENOMEM;
	}
	memset(v->valid, 1, (size_t) (c * t));
	for (int64_t i = 0; i < n; i++)
		for (int64_t k = 0; k < c * t; k++)
			if (isnan(data[i * c * t + k])) {
				v->valid[k] = 0;
				v->has_nan = 1;
			}
	v->kmin = t;
	for (int64_t k = 0; k < c; k++) {
		for (int64_t j = 0; j < t; j++)
			v->kc[k] += v->valid[k * t + j];
		if (v->kc[k] < v->kmin)
			v->kmin = v->kc[k];
	}
	return 0;
}

void
gsn_valid_fini(struct gsn_valid *v)
{
	free(v->valid);
	free(v->kc);
	v->valid = NULL;
	v->kc = NULL;
}

static int
even(const struct gsn_valid *v)
{
	for (int64_t k = 0; k < v->c; k++)
		if (v->kc[k] != v->t)
			return 0;
	return 1;
}

/* Residuals of condition cond's valid trials into columns of E (n rows),
 * starting at column *col. */
static void
put_residuals(const double *data, int64_t n, const struct gsn_valid *v,
              int64_t cond, double *E, int64_t *col, double *mean)
{
	int64_t c = v->c, t = v->t, k = v->kc[cond];

	for (int64_t i = 0; i < n; i++) {
		const double *x = data + (i * c + cond) * t;
		double s = 0;

		for (int64_t j = 0; j < t; j++)
			if (v->valid[cond * t + j])
				s += x[j];
		mean[i] = s / (double) k;
	}
	for (int64_t j = 0; j < t; j++) {
		if (!v->valid[cond * t + j])
			continue;
		for (int64_t i = 0; i < n; i++)
			E[i + *col * n] =
			        data[(i * c + cond) * t + j] - mean[i];
		(*col)++;
	}
}

static int
dev_fail(int rc, const char *what, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "backend op %s failed in the %s", what,
	         "covariance estimate");
	return rc == NQ_ENOMEM ? NQ_ENOMEM : (rc ? rc : NQ_EDEVICE);
}

int
gsn_noise_est(struct gsn_dev *g, const double *data, int64_t n,
              const struct gsn_valid *v, const double *levels, int nlevels,
              enum gsn_nll mode, int want_full, const struct gsn_stage *st,
              void **c_all, struct gsn_sel *sel, char *msg, size_t msglen)
{
	int64_t C = v->c, nv = gsn_holdout_count(C), *perm = NULL;
	int64_t cols = 0, cols_tr = 0, nk_tr = 0, nk_all = 0, rank_cap = 0;
	double *E = NULL, *w = NULL, *mean = NULL, s_tr, s_all;
	void *dE = NULL, *dH = NULL, *dw = NULL, *c_tr = NULL;
	struct gsn_samples sm;
	struct gsn_stage sub;
	int rc, is_even = even(v);

	*c_all = NULL;
	perm = malloc((size_t) C * sizeof(int64_t));
	mean = malloc((size_t) n * sizeof(double));
	if (perm == NULL || mean == NULL || gsn_perm(C, perm) != 0) {
		rc = NQ_ENOMEM;
		goto nomem;
	}
	for (int64_t k = 0; k < C; k++)
		if (v->kc[k] >= 2)
			cols += v->kc[k];
	E = malloc((size_t) (n * (cols > 0 ? cols : 1)) * sizeof(double));
	w = malloc((size_t) (cols > 0 ? cols : 1) * sizeof(double));
	if (E == NULL || w == NULL) {
		rc = NQ_ENOMEM;
		goto nomem;
	}
	/* training conditions perm[nv..C) first, then held-out perm[0..nv) */
	cols = 0;
	for (int pass = 0; pass < 2; pass++) {
		int64_t lo = pass == 0 ? nv : 0, hi = pass == 0 ? C : nv;

		for (int64_t p = lo; p < hi; p++) {
			int64_t k = perm[p], c0 = cols;

			if (v->kc[k] < 2)
				continue; /* no within-condition variance */
			put_residuals(data, n, v, k, E, &cols, mean);
			for (int64_t j = c0; j < cols; j++)
				w[j] = 1.0 / sqrt((double) (v->kc[k] - 1));
			nk_all++;
			if (pass == 0) {
				nk_tr++;
				rank_cap += v->kc[k] - 1;
			}
		}
		if (pass == 0)
			cols_tr = cols;
	}
	if (nk_tr == 0) {
		snprintf(msg, msglen,
		         "no training condition has at least 2 valid trials "
		         "(the noise covariance needs one)");
		rc = NQ_EBADDATA;
		goto out;
	}
	if (v->has_nan && cols == cols_tr) {
		snprintf(
		        msg, msglen,
		        "no held-out condition has at least 2 valid trials "
		        "(held-out conditions are chosen by the fixed split of "
		        "%lld conditions)",
		        (long long) C);
		rc = NQ_EBADDATA;
		goto out;
	}
	rc = gsn_dalloc(g, n * cols, &dE);
	if (rc == 0)
		rc = gsn_dalloc(g, n * (cols - cols_tr), &dH);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &c_tr);
	if (rc == 0 && want_full)
		rc = gsn_dalloc(g, n * n, c_all);
	if (rc == 0)
		rc = gsn_up(g, dE, E, n * cols);
	if (rc == 0)
		rc = gsn_dcopy(g, dH,
		               (char *) dE + (size_t) (n * cols_tr) * g->es,
		               n * (cols - cols_tr));
	if (rc != 0) {
		rc = dev_fail(rc, "alloc/upload", msg, msglen);
		goto out;
	}
	free(E);
	E = NULL;
	if (!is_even) {
		/* per-condition 1/(k_c − 1) as sqrt weights on the columns */
		rc = gsn_dalloc(g, cols, &dw);
		if (rc == 0)
			rc = gsn_up(g, dw, w, cols);
		if (rc == 0)
			rc = KOP(g->kb, scale_rc, g->dt, n, cols, dE, n, NULL,
			         dw);
		if (rc != 0) {
			rc = dev_fail(rc, "scale_rc", msg, msglen);
			goto out;
		}
	}
	s_tr = is_even ? 1.0 / ((double) (v->t - 1) * (double) nk_tr)
	               : 1.0 / (double) nk_tr;
	s_all = is_even ? 1.0 / ((double) (v->t - 1) * (double) nk_all)
	                : 1.0 / (double) nk_all;
	rc = KOP(g->kb, syrk, g->dt, KERN_N, n, cols_tr, s_tr, dE, n, 0.0, c_tr,
	         n);
	/* c_all = s_all (E_tr E_trᵀ + E_ho E_hoᵀ): the training Gram
	 * rescaled plus the held-out columns' (n² · cols_tr flops saved) */
	if (rc == 0 && want_full)
		rc = gsn_dcopy(g, *c_all, c_tr, n * n);
	if (rc == 0 && want_full && cols > cols_tr)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, cols - cols_tr, s_all,
		         (char *) dE + (size_t) (n * cols_tr) * g->es, n,
		         s_all / s_tr, *c_all, n);
	if (rc != 0) {
		rc = dev_fail(rc, "syrk", msg, msglen);
		goto out;
	}
	gsn_stage_report(st, 0.1);
	sub = gsn_substage(st, 0.1, 1.0);
	sm.S = dE;
	sm.r = cols_tr;
	sm.s2 = s_tr;
	rc = gsn_select_samples(g, n, c_tr, &sm, dH, cols - cols_tr, levels,
	                        nlevels, rank_cap < n, mode, &sub, sel, msg,
	                        msglen);
	goto out;
nomem:
	snprintf(msg, msglen, "out of host memory (noise residuals, N = %lld)",
	         (long long) n);
out:
	if (rc != 0 && *c_all != NULL)
		gsn_dfree(g, c_all);
	gsn_dfree(g, &dE);
	gsn_dfree(g, &dH);
	gsn_dfree(g, &dw);
	gsn_dfree(g, &c_tr);
	free(perm);
	free(mean);
	free(E);
	free(w);
	return rc;
}

int
gsn_balanced_means(const double *data, int64_t n, const struct gsn_valid *v,
                   double *means)
{
	int64_t c = v->c, t = v->t, nmin = v->kmin;
	int64_t *idx = malloc((size_t) t * sizeof(int64_t));
	int64_t *perm = malloc((size_t) t * sizeof(int64_t));

	if (idx == NULL || perm == NULL) {
		free(idx);
		free(perm);
		return NQ_ENOMEM;
	}
	for (int64_t k = 0; k < c; k++) {
		int64_t kc = 0;

		for (int64_t j = 0; j < t; j++)
			if (v->valid[k * t + j])
				idx[kc++] = j;
		if (kc == nmin) {
			/* every valid trial is kept: ascending order, so that
			 * complete data sums like the even path */
			for (int64_t j = 0; j < kc; j++)
				perm[j] = j;
		} else if (gsn_perm(kc, perm) != 0) {
			free(idx);
			free(perm);
			return NQ_ENOMEM;
		}
		for (int64_t i = 0; i < n; i++) {
			const double *x = data + (i * c + k) * t;
			double s = 0;

			for (int64_t j = 0; j < nmin; j++)
				s += x[idx[perm[j]]];
			means[i + k * n] = s / (double) nmin;
		}
	}
	free(idx);
	free(perm);
	return 0;
}

int
gsn_data_est(struct gsn_dev *g, const double *means, int64_t n, int64_t ncond,
             const double *levels, int nlevels, enum gsn_nll mode,
             int want_full, const struct gsn_stage *st, void **c_all,
             double *mu_all, struct gsn_sel *sel, char *msg, size_t msglen)
{
	int64_t nv = gsn_holdout_count(ncond), ntr = ncond - nv, *perm = NULL;
	int64_t cols = ntr + nv + (want_full ? ncond : 0);
	double *D = NULL, *mu_tr = NULL;
	void *dD = NULL, *c_tr = NULL;
	struct gsn_samples sm;
	struct gsn_stage sub;
	int rc;

	*c_all = NULL;
	perm = malloc((size_t) ncond * sizeof(int64_t));
	mu_tr = calloc((size_t) n, sizeof(double));
	D = malloc((size_t) (n * cols) * sizeof(double));
	if (perm == NULL || mu_tr == NULL || D == NULL ||
	    gsn_perm(ncond, perm) != 0) {
		snprintf(msg, msglen,
		         "out of host memory (condition means, N = %lld)",
		         (long long) n);
		rc = NQ_ENOMEM;
		goto out;
	}
	if (ntr < 2) {
		snprintf(msg, msglen,
		         "the data covariance needs at least 2 training "
		         "conditions (have %lld)",
		         (long long) ntr);
		rc = NQ_EBADDATA;
		goto out;
	}
	for (int64_t i = 0; i < n; i++) {
		double s = 0;

		for (int64_t p = nv; p < ncond; p++)
			s += means[i + perm[p] * n];
		mu_tr[i] = s / (double) ntr;
		s = 0;
		for (int64_t k = 0; k < ncond; k++)
			s += means[i + k * n];
		mu_all[i] = s / (double) ncond;
	}
	/* columns: training (centred on mu_tr), held-out (centred on mu_tr),
	 * then all conditions (centred on mu_all) */
	for (int64_t p = 0; p < ntr + nv; p++) {
		int64_t k = p < ntr ? perm[nv + p] : perm[p - ntr];

		for (int64_t i = 0; i < n; i++)
			D[i + p * n] = means[i + k * n] - mu_tr[i];
	}
	for (int64_t k = 0; want_full && k < ncond; k++)
		for (int64_t i = 0; i < n; i++)
			D[i + (ntr + nv + k) * n] =
			        means[i + k * n] - mu_all[i];
	rc = gsn_dalloc(g, n * cols, &dD);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &c_tr);
	if (rc == 0 && want_full)
		rc = gsn_dalloc(g, n * n, c_all);
	if (rc == 0)
		rc = gsn_up(g, dD, D, n * cols);
	if (rc == 0)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, ntr,
		         1.0 / (double) (ntr - 1), dD, n, 0.0, c_tr, n);
	if (rc == 0 && want_full)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, ncond,
		         1.0 / (double) (ncond - 1),
		         (char *) dD + (size_t) (n * (ntr + nv)) * g->es, n,
		         0.0, *c_all, n);
	if (rc != 0) {
		rc = dev_fail(rc, "alloc/upload/syrk", msg, msglen);
		goto out;
	}
	free(D);
	D = NULL;
	gsn_stage_report(st, 0.1);
	sub = gsn_substage(st, 0.1, 1.0);
	sm.S = dD;
	sm.r = ntr;
	sm.s2 = 1.0 / (double) (ntr - 1);
	rc = gsn_select_samples(
	        g, n, c_tr, &sm, (char *) dD + (size_t) (n * ntr) * g->es, nv,
	        levels, nlevels, ntr - 1 < n, mode, &sub, sel, msg, msglen);
out:
	if (rc != 0 && *c_all != NULL)
		gsn_dfree(g, c_all);
	gsn_dfree(g, &dD);
	gsn_dfree(g, &c_tr);
	free(perm);
	free(mu_tr);
	free(D);
	return rc;
}
