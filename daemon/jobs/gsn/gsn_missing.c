/*
 * gsn_missing.c — per-unit missing data (spec §2.11, uneven='missing').
 *
 * Pairwise-complete covariances: per condition three Grams of the
 * zero-filled data X and the presence mask M (X Xᵀ, X Mᵀ, M Mᵀ) feed
 * pair_cov_acc; the bias factor alpha[i,j] averages n_ij,c/(n_i,c n_j,c)
 * over conditions where both units are defined. Shrink levels are chosen
 * on the complete subsets with the ordinary selectors (fallback 1.0).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gsn_internal.h"
#include "nq_error.h"

static int
fail(int rc, const char *what, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "backend op %s failed (missing-units estimate)",
	         what);
	return rc == NQ_ENOMEM ? NQ_ENOMEM : (rc ? rc : NQ_EDEVICE);
}

/* Noise level on the trials where every unit is present (§2.11). */
static int
level_complete_trials(struct gsn_dev *g, const double *data, int64_t n,
                      int64_t c, int64_t t, const struct gsn_opts *o,
                      const double *levels, int nlevels,
                      const struct gsn_stage *st, struct gsn_missing_out *mo,
                      char *msg, size_t msglen)
{
	struct gsn_valid v;
	void *dummy = NULL;
	int rc = gsn_valid_init(&v, data, n, c, t);

	if (rc != 0)
		return rc;
	v.has_nan = 1; /* a held-out split without samples is a failure */
	rc = gsn_noise_est(g, data, n, &v, levels, nlevels, o->nll, 0, st,
	                   &dummy, &mo->selN, msg, msglen);
	gsn_valid_fini(&v);
	if (rc == NQ_EBADDATA) {
		/* too few complete trials: the reference falls back to 1.0 */
		mo->lvlN = 1.0;
		return 0;
	}
	if (rc == 0) {
		mo->selN_ran = 1;
		mo->lvlN = levels[mo->selN.best];
	}
	return rc;
}

/* Data level on the conditions where every unit is defined. */
static int
level_complete_conds(struct gsn_dev *g, const double *CM,
                     const unsigned char *def, int64_t n, int64_t c,
                     const struct gsn_opts *o, const double *levels,
                     int nlevels, const struct gsn_stage *st,
                     struct gsn_missing_out *mo, char *msg, size_t msglen)
{
	double *sub = NULL, *mu = NULL;
	void *dummy = NULL;
	int64_t ncomp = 0;
	int rc;

	mo->lvlD = 1.0;
	sub = malloc((size_t) (n * c) * sizeof(double));
	mu = malloc((size_t) n * sizeof(double));
	if (sub == NULL || mu == NULL) {
		rc = NQ_ENOMEM;
		snprintf(msg, msglen, "out of host memory (missing units)");
		goto out;
	}
	for (int64_t k = 0; k < c; k++) {
		int all = 1;

		for (int64_t i = 0; i < n; i++)
			all &= def[i + k * n];
		if (!all)
			continue;
		memcpy(sub + ncomp * n, CM + k * n,
		       (size_t) n * sizeof(double));
		ncomp++;
	}
	rc = 0;
	if (ncomp < 5)
		goto out; /* fallback 1.0, as the reference */
	rc = gsn_data_est(g, sub, n, ncomp, levels, nlevels, o->nll, 0, st,
	                  &dummy, mu, &mo->selD, msg, msglen);
	if (rc == NQ_EBADDATA) {
		rc = 0;
		goto out;
	}
	if (rc == 0) {
		mo->selD_ran = 1;
		mo->lvlD = levels[mo->selD.best];
	}
out:
	free(sub);
	free(mu);
	return rc;
}

int
gsn_missing_est(struct gsn_dev *g, const double *data, int64_t n, int64_t c,
                int64_t t, const struct gsn_opts *o, const double *levels,
                int nlevels, const struct gsn_stage *stN,
                const struct gsn_stage *stD, struct gsn_missing_out *mo,
                char *msg, size_t msglen)
{
	int64_t ct = c * t, ndef = 0;
	double *X = NULL, *Mk = NULL, *CM = NULL, *inv = NULL, *hdef = NULL;
	double *alpha = NULL, sum_n = 0;
	unsigned char *def = NULL;
	void *dX = NULL, *dM = NULL, *Sxx = NULL, *Sx = NULL, *Sm = NULL;
	void *cnt = NULL, *anum = NULL, *acnt = NULL, *dinv = NULL,
	     *ddef = NULL;
	int rc;

	mo->cN = mo->cD = mo->inv_alpha = NULL;
	X = malloc((size_t) (n * ct) * sizeof(double));
	Mk = malloc((size_t) (n * ct) * sizeof(double));
	CM = malloc((size_t) (n * c) * sizeof(double));
	def = calloc((size_t) (n * c), 1); /* (analyzer: all set below) */
	inv = malloc((size_t) n * sizeof(double));
	hdef = malloc((size_t) n * sizeof(double));
	if (X == NULL || Mk == NULL || CM == NULL || def == NULL ||
	    inv == NULL || hdef == NULL) {
		rc = NQ_ENOMEM;
		snprintf(msg, msglen, "out of host memory (missing units)");
		goto out;
	}
	/* zero-filled data and mask, column (c, t) = c*T + t; per-unit
	 * condition means over present trials */
	for (int64_t i = 0; i < n; i++) {
		double s_all = 0;
		int64_t n_all = 0;

		for (int64_t k = 0; k < c; k++) {
			double s = 0;
			int64_t cntk = 0;

			for (int64_t j = 0; j < t; j++) {
				double x = data[(i * c + k) * t + j];
				int64_t col = k * t + j;
				int p = !isnan(x);

				X[i + col * n] = p ? x : 0.0;
				Mk[i + col * n] = p;
				s += p ? x : 0.0;
				cntk += p;
			}
			def[i + k * n] = cntk > 0;
			CM[i + k * n] = cntk > 0 ? s / (double) cntk : 0.0;
			if (cntk > 0) {
				s_all += CM[i + k * n];
				n_all++;
				sum_n += (double) cntk;
				ndef++;
			}
		}
		mo->mnS[i] = n_all > 0 ? s_all / (double) n_all : NAN;
	}
	mo->n_eff = ndef > 0 ? sum_n / (double) ndef : 1.0;

	rc = gsn_dalloc(g, n * ct, &dX);
	if (rc == 0)
		rc = gsn_dalloc(g, n * ct, &dM);
	if (rc == 0)
		rc = gsn_up(g, dX, X, n * ct);
	if (rc == 0)
		rc = gsn_up(g, dM, Mk, n * ct);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &Sxx);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &Sx);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &Sm);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &mo->cN);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &cnt);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &anum);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &acnt);
	if (rc == 0)
		rc = gsn_dalloc(g, n, &dinv);
	if (rc == 0)
		rc = gsn_dalloc(g, n, &ddef);
	if (rc != 0) {
		rc = fail(rc, "alloc/upload", msg, msglen);
		goto out;
	}
	free(X);
	free(Mk);
	X = Mk = NULL;
	for (int64_t k = 0; k < c; k++) {
		const char *Xc =
		        (const char *) dX + (size_t) (k * t * n) * g->es;
		const char *Mc =
		        (const char *) dM + (size_t) (k * t * n) * g->es;

		if (k % 16 == 0) {
			gsn_stage_report(stN, 0.5 * (double) k / (double) c);
			if ((rc = gsn_stage_canceled(stN, msg, msglen)) != 0)
				goto out;
		}
		for (int64_t i = 0; i < n; i++) {
			int64_t nic = 0;

			for (int64_t j = 0; j < t; j++)
				nic += !isnan(data[(i * c + k) * t + j]);
			inv[i] = nic > 0 ? 1.0 / (double) nic : 0.0;
			hdef[i] = nic > 0;
		}
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, t, 1.0, Xc, n, 0.0, Sxx,
		         n);
		if (rc == 0)
			rc = KOP(g->kb, gemm, g->dt, KERN_N, KERN_T, n, n, t,
			         1.0, Xc, n, Mc, n, 0.0, Sx, n);
		if (rc == 0)
			rc = KOP(g->kb, syrk, g->dt, KERN_N, n, t, 1.0, Mc, n,
			         0.0, Sm, n);
		if (rc == 0)
			rc = KOP(g->kb, pair_cov_acc, g->dt, n, Sxx, Sx, Sm,
			         mo->cN, cnt);
		/* alpha: n_ij,c / (n_i,c n_j,c) where both are defined */
		if (rc == 0)
			rc = gsn_up(g, dinv, inv, n);
		if (rc == 0)
			rc = gsn_up(g, ddef, hdef, n);
		if (rc == 0)
			rc = KOP(g->kb, scale_rc, g->dt, n, n, Sm, n, dinv,
			         dinv);
		if (rc == 0)
			rc = KOP(g->kb, axpby, g->dt, n * n, 1.0, Sm, 1.0,
			         anum);
		if (rc == 0)
			rc = KOP(g->kb, syrk, g->dt, KERN_N, n, 1, 1.0, ddef, n,
			         1.0, acnt, n);
		if (rc != 0) {
			rc = fail(rc, "pairwise noise covariance", msg, msglen);
			goto out;
		}
	}
	rc = KOP(g->kb, div_pos, g->dt, n * n, mo->cN, cnt);
	if (rc == 0)
		rc = KOP(g->kb, div_pos, g->dt, n * n, anum, acnt);
	gsn_dfree(g, &dX);
	gsn_dfree(g, &dM);
	/* data covariance across conditions, pairwise over defined ones */
	if (rc == 0)
		rc = gsn_dalloc(g, n * c, &dX);
	if (rc == 0)
		rc = gsn_dalloc(g, n * c, &dM);
	if (rc == 0)
		rc = gsn_dalloc(g, n * n, &mo->cD);
	if (rc == 0)
		rc = gsn_up(g, dX, CM, n * c);
	if (rc != 0) {
		rc = fail(rc, "alloc/upload", msg, msglen);
		goto out;
	}
	{
		double *dm = malloc((size_t) (n * c) * sizeof(double));

		if (dm == NULL) {
			rc = NQ_ENOMEM;
			snprintf(msg, msglen, "out of host memory");
			goto out;
		}
		for (int64_t k = 0; k < n * c; k++)
			dm[k] = def[k];
		rc = gsn_up(g, dM, dm, n * c);
		free(dm);
	}
	if (rc == 0)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, c, 1.0, dX, n, 0.0, Sxx,
		         n);
	if (rc == 0)
		rc = KOP(g->kb, gemm, g->dt, KERN_N, KERN_T, n, n, c, 1.0, dX,
		         n, dM, n, 0.0, Sx, n);
	if (rc == 0)
		rc = KOP(g->kb, syrk, g->dt, KERN_N, n, c, 1.0, dM, n, 0.0, Sm,
		         n);
	if (rc == 0)
		rc = KOP(g->kb, pair_cov_acc, g->dt, n, Sxx, Sx, Sm, mo->cD,
		         cnt);
	if (rc != 0) {
		rc = fail(rc, "pairwise data covariance", msg, msglen);
		goto out;
	}
	gsn_dfree(g, &dX);
	gsn_dfree(g, &dM);
	gsn_dfree(g, &Sxx);
	gsn_dfree(g, &Sx);
	gsn_dfree(g, &Sm);
	gsn_dfree(g, &cnt);
	gsn_dfree(g, &acnt);

	/* levels on the complete subsets */
	if (nlevels == 1) {
		mo->lvlN = mo->lvlD = levels[0];
	} else {
		struct gsn_stage subN = gsn_substage(stN, 0.5, 1.0);
		struct gsn_stage subD = gsn_substage(stD, 0.0, 0.9);

		rc = level_complete_trials(g, data, n, c, t, o, levels, nlevels,
		                           &subN, mo, msg, msglen);
		if (rc == 0)
			rc = level_complete_conds(g, CM, def, n, c, o, levels,
			                          nlevels, &subD, mo, msg,
			                          msglen);
		if (rc != 0)
			goto out;
	}
	rc = KOP(g->kb, shrink, g->dt, n, mo->cN, mo->cN, mo->lvlN, 1);
	if (rc == 0)
		rc = KOP(g->kb, shrink, g->dt, n, mo->cD, mo->cD, mo->lvlD, 1);
	if (rc != 0) {
		rc = fail(rc, "shrink", msg, msglen);
		goto out;
	}
	/* 1/alpha (0 where alpha = 0) so that div_pos multiplies by alpha */
	alpha = malloc((size_t) (n * n) * sizeof(double));
	if (alpha == NULL) {
		rc = NQ_ENOMEM;
		snprintf(msg, msglen, "out of host memory (alpha)");
		goto out;
	}
	rc = gsn_down(g, alpha, anum, n * n);
	for (int64_t k = 0; rc == 0 && k < n * n; k++)
		alpha[k] = alpha[k] > 0 ? 1.0 / alpha[k] : 0.0;
	if (rc == 0)
		rc = gsn_up(g, anum, alpha, n * n);
	if (rc != 0) {
		rc = fail(rc, "alpha", msg, msglen);
		goto out;
	}
	mo->inv_alpha = anum;
	anum = NULL;
	gsn_stage_report(stD, 1.0);
out:
	if (rc != 0) {
		gsn_dfree(g, &mo->cN);
		gsn_dfree(g, &mo->cD);
		gsn_dfree(g, &mo->inv_alpha);
	}
	gsn_dfree(g, &dX);
	gsn_dfree(g, &dM);
	gsn_dfree(g, &Sxx);
	gsn_dfree(g, &Sx);
	gsn_dfree(g, &Sm);
	gsn_dfree(g, &cnt);
	gsn_dfree(g, &anum);
	gsn_dfree(g, &acnt);
	gsn_dfree(g, &dinv);
	gsn_dfree(g, &ddef);
	free(X);
	free(Mk);
	free(CM);
	free(def);
	free(inv);
	free(hdef);
	free(alpha);
	return rc;
}
