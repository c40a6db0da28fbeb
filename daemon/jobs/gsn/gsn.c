/*
 * gsn.c — perform_gsn (cvnlab/GSN 1.2, numpy path): checks, estimate and
 * the order of operations of spec §2.1. The pieces live in gsn_est.c
 * (estimators), gsn_nll.c (level choice), gsn_psd.c (PSD, biconvex, eigen),
 * gsn_missing.c (per-unit missing data) and gsn_split.c (held-out split).
 */
#include "gsn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gsn_internal.h"
#include "nq_clock.h"
#include "nq_error.h"

static const struct gsn_opts default_opts = {
        .levels = NULL,
        .nlevels = 0,
        .wantshrinkage = 1,
        .returns = GSN_RET_DEFAULT,
        .uneven = GSN_UNEVEN_FAST,
        .precision = KERN_F64,
        .nll = GSN_NLL_SPECTRAL,
        .biconvex = GSN_BICONVEX_LOOP,
};

#define GSN_RET_ALL                                            \
	(GSN_RET_CN | GSN_RET_CS | GSN_RET_CNB | GSN_RET_CSB | \
	 GSN_RET_EIG_SIGNAL | GSN_RET_EIG_DIFFERENCE)

static int
check_opts(const struct gsn_opts *o, char *msg, size_t msglen)
{
	if (o->levels != NULL) {
		if (o->nlevels < 1) {
			snprintf(msg, msglen,
			         "shrinklevels is empty: give at "
			         "least one level in [0, 1]");
			return NQ_EBADPARAM;
		}
		for (int i = 0; i < o->nlevels; i++)
			if (!(o->levels[i] >= 0 && o->levels[i] <= 1)) {
				snprintf(msg, msglen,
				         "shrinklevels[%d] = %g is not in [0, "
				         "1]",
				         i, o->levels[i]);
				return NQ_EBADPARAM;
			}
	}
	if (o->returns & ~(unsigned) GSN_RET_ALL) {
		snprintf(msg, msglen, "returns has unknown bits 0x%x",
		         o->returns & ~(unsigned) GSN_RET_ALL);
		return NQ_EBADPARAM;
	}
	if (o->uneven != GSN_UNEVEN_FAST && o->uneven != GSN_UNEVEN_MISSING) {
		snprintf(msg, msglen, "uneven must be 'fast' or 'missing'");
		return NQ_EBADPARAM;
	}
	if (o->precision != KERN_F64 && o->precision != KERN_F32) {
		snprintf(msg, msglen, "precision must be float64 or float32");
		return NQ_EBADPARAM;
	}
	if (o->nll != GSN_NLL_SPECTRAL && o->nll != GSN_NLL_CHOLESKY &&
	    o->nll != GSN_NLL_EIGH) {
		snprintf(msg, msglen,
		         "nll must be 'spectral', 'cholesky' or 'eigh'");
		return NQ_EBADPARAM;
	}
	if (o->biconvex != GSN_BICONVEX_LOOP &&
	    o->biconvex != GSN_BICONVEX_CLOSED) {
		snprintf(msg, msglen, "biconvex must be 'loop' or 'closed'");
		return NQ_EBADPARAM;
	}
	return 0;
}

/* The whole-trial split needs a condition with >= 2 valid trials among
 * the training and among the held-out conditions (§1.1, §2.10). */
static int
check_split(const struct gsn_valid *v, char *msg, size_t msglen)
{
	int64_t C = v->c, nv = gsn_holdout_count(C), *perm;
	int tr_ok = 0, ho_ok = 0;

	perm = malloc((size_t) C * sizeof(int64_t));
	if (perm == NULL || gsn_perm(C, perm) != 0) {
		free(perm);
		snprintf(msg, msglen, "out of host memory");
		return NQ_ENOMEM;
	}
	for (int64_t p = 0; p < C; p++) {
		if (v->kc[perm[p]] < 2)
			continue;
		if (p < nv)
			ho_ok = 1;
		else
			tr_ok = 1;
	}
	free(perm);
	/* GSN 1.2's AssertionError texts first (the client keys on them) */
	if (!tr_ok) {
		snprintf(msg, msglen,
		         "no condition with at least two valid observations "
		         "among the training conditions (the fixed split "
		         "holds out %lld of %lld conditions; the noise "
		         "covariance needs one with >= 2 valid trials in each "
		         "part)",
		         (long long) nv, (long long) C);
		return NQ_EBADDATA;
	}
	if (nv == 0) {
		snprintf(msg, msglen,
		         "validation data did not have any conditions with at "
		         "least two observations (data with missing trials "
		         "(NaN) needs at least 3 conditions: with C = %lld the "
		         "held-out split is empty)",
		         (long long) C);
		return NQ_EBADDATA;
	}
	if (!ho_ok) {
		snprintf(msg, msglen,
		         "validation data did not have any conditions with at "
		         "least two observations (the fixed split holds out "
		         "%lld of %lld conditions; the noise covariance needs "
		         "one with >= 2 valid trials in each part)",
		         (long long) nv, (long long) C);
		return NQ_EBADDATA;
	}
	return 0;
}

int
gsn_check(const double *data, int64_t n, int64_t c, int64_t t,
          const struct gsn_opts *o, char *msg, size_t msglen)
{
	struct gsn_valid v;
	int rc;

	if (o == NULL)
		o = &default_opts;
	rc = check_opts(o, msg, msglen);
	if (rc != 0)
		return rc;
	if (n < 1 || c < 1 || t < 1) {
		snprintf(msg, msglen,
		         "data must be units x conditions x trials with no "
		         "empty dimension (got %lld x %lld x %lld)",
		         (long long) n, (long long) c, (long long) t);
		return NQ_EBADDATA;
	}
	if (t < 2) {
		snprintf(msg, msglen,
		         "Number of trials must be at least 2 (data has %lld "
		         "trial per condition)",
		         (long long) t);
		return NQ_EBADDATA;
	}
	if (c < 2) {
		snprintf(msg, msglen,
		         "GSN needs at least 2 conditions (data has %lld)",
		         (long long) c);
		return NQ_EBADDATA;
	}
	if (data == NULL) {
		snprintf(msg, msglen, "no data");
		return NQ_EBADDATA;
	}
	for (int64_t i = 0; i < n * c * t; i++)
		if (isinf(data[i])) {
			int64_t u = i / (c * t), k = i / t % c, j = i % t;

			snprintf(msg, msglen,
			         "data[%lld, %lld, %lld] is %sinf: only finite "
			         "values and NaN (missing) are allowed",
			         (long long) u, (long long) k, (long long) j,
			         data[i] < 0 ? "-" : "");
			return NQ_EBADDATA;
		}
	rc = gsn_valid_init(&v, data, n, c, t);
	if (rc != 0) {
		snprintf(msg, msglen, "out of host memory");
		return rc;
	}
	if (!v.has_nan) {
		gsn_valid_fini(&v);
		return 0;
	}
	if (o->uneven == GSN_UNEVEN_FAST) {
		for (int64_t k = 0; k < c; k++)
			if (v.kc[k] == 0) {
				snprintf(msg, msglen,
				         "all conditions must have at least 1 "
				         "valid trial: condition %lld has none "
				         "(every trial has a NaN; with "
				         "uneven='fast' a trial is valid only "
				         "when no unit is NaN)",
				         (long long) k);
				gsn_valid_fini(&v);
				return NQ_EBADDATA;
			}
		rc = check_split(&v, msg, msglen);
	} else {
		for (int64_t i = 0; i < n && rc == 0; i++) {
			int64_t k;

			for (k = 0; k < c * t; k++)
				if (!isnan(data[i * c * t + k]))
					break;
			if (k == c * t) {
				snprintf(
				        msg, msglen,
				        "unit %lld has no data (every value is "
				        "NaN)",
				        (long long) i);
				rc = NQ_EBADDATA;
			}
		}
	}
	gsn_valid_fini(&v);
	return rc;
}

void
gsn_estimate(int64_t n, int64_t c, int64_t t, const struct gsn_opts *o,
             uint64_t *host_bytes, uint64_t *device_bytes, double *flops)
{
	double N = (double) n, C = (double) c, T = (double) t;
	double V = (double) gsn_holdout_count(c), es, nn = N * N;
	double S, dev_noise, dev_data, dev_bic, dev_sel, host, f, nret = 0;

	if (o == NULL)
		o = &default_opts;
	es = o->precision == KERN_F32 ? 4 : 8;
	S = o->levels != NULL ? o->nlevels : o->wantshrinkage ? 51 : 1;
	/* selection work: spectral holds R, P (and float64 copies of H);
	 * cholesky holds L and Y */
	if (o->nll == GSN_NLL_CHOLESKY)
		dev_sel = es * (nn + N * V * T);
	else
		dev_sel = 8 * (nn + 2 * N * V * T) +
		          (es == 4 ? 8 * N * V * T : 0);
	/* spectral with fewer training samples r than N/2: a float64 copy
	 * of the samples, the r×r Gram and two r×m products */
	if (o->nll == GSN_NLL_SPECTRAL) {
		double r = (C - V) * T, rmax = fmin(r, N / 2);

		if (2 * r <= N)
			dev_sel += 8 * (N * rmax + rmax * rmax +
			                2 * rmax * V * T + 2 * rmax);
	}
	/* noise: E + H + c_tr + c_all (+ cN kept); E lives on through the
	 * selection */
	dev_noise = es * (N * C * T + N * V * T + 3 * nn);
	dev_noise = fmax(dev_noise,
	                 es * (N * C * T + N * V * T + 3 * nn) + dev_sel);
	/* data: cN + D + c_tr + c_all */
	dev_data = es * (nn + N * (2 * C) + 3 * nn) + dev_sel;
	/* biconvex: cN cD S_old cSb cNb N_old tmp, the n × n/2 vectors of
	 * the smaller side of a projection, the Krylov basis of
	 * gsn_negeig.c (+ 1/alpha) */
	dev_bic = es * (8 * nn + nn / 2) + 8 * (nn + N);
	dev_bic += gsn_negeig_bytes(n, es); /* the Krylov path's basis */
	if ((o->returns & GSN_RET_EIG_SIGNAL) && es == 8)
		dev_bic += 8 * nn; /* cSb's eigenvectors kept (gsn_psd.c) */
	if (o->uneven == GSN_UNEVEN_MISSING) {
		dev_noise = fmax(dev_noise, es * (2 * N * C * T + 8 * nn));
		dev_bic += es * nn;
	}
	/* + a few n-vectors (diagonals, weights, eigenvalues) */
	*device_bytes = (uint64_t) (fmax(fmax(dev_noise, dev_data), dev_bic) +
	                            16 * 8 * N + (1 << 20));
	for (unsigned b = GSN_RET_CN; b <= GSN_RET_CSB; b <<= 1)
		nret += (o->returns & b) != 0;
	nret += 2.0 * ((o->returns & GSN_RET_EIG_SIGNAL) != 0);
	nret += 2.0 * ((o->returns & GSN_RET_EIG_DIFFERENCE) != 0);
	/* input + residuals (+ mask in missing mode) + means + results;
	 * on the cpu backend the device bytes are host bytes too */
	host = 8 * N * C * T * (o->uneven == GSN_UNEVEN_MISSING ? 3 : 2) +
	       8 * N * C * 3 + 8 * nret * nn + es * nn;
	*host_bytes = (uint64_t) (host + (1 << 20));
	/* Grams, selection (×2), biconvex (about two passes), eigen */
	f = 2 * nn * C * T * 2 + 4 * nn * C;
	if (o->nll == GSN_NLL_CHOLESKY)
		f += 2 * S * (nn * N / 3 + 2 * nn * V * T);
	else
		f += 2 * (9 * nn * N + 2 * nn * V * T);
	f += 2 * 2 * (2 * nn * N / 3 + 9 * nn * N + nn * N);
	f += 9 * nn * N *
	     (((o->returns & GSN_RET_EIG_SIGNAL) != 0) +
	      ((o->returns & GSN_RET_EIG_DIFFERENCE) != 0));
	*flops = f;
}

void
gsn_result_free(struct gsn_result *r)
{
	if (r == NULL)
		return;
	free(r->mnN);
	free(r->mnS);
	free(r->ncsnr);
	free(r->cN);
	free(r->cS);
	free(r->cNb);
	free(r->cSb);
	free(r->eigvals_signal);
	free(r->eigvecs_signal);
	free(r->eigvals_difference);
	free(r->eigvecs_difference);
	free(r->nllN);
	free(r->nllD);
	memset(r, 0, sizeof(*r));
}

static int
alloc_result(struct gsn_result *r, int64_t n, int nlevels, unsigned ret)
{
	size_t nn = (size_t) (n * n) * sizeof(double);
	size_t nb = (size_t) n * sizeof(double);
	int bad = 0;

#define ALLOC(p, sz, want)                  \
	do {                                \
		if (want) {                 \
			(p) = malloc(sz);   \
			bad |= (p) == NULL; \
		}                           \
	} while (0)
	ALLOC(r->mnN, nb, 1);
	ALLOC(r->mnS, nb, 1);
	ALLOC(r->ncsnr, nb, 1);
	ALLOC(r->nllN, (size_t) nlevels * sizeof(double), 1);
	ALLOC(r->nllD, (size_t) nlevels * sizeof(double), 1);
	ALLOC(r->cN, nn, ret & GSN_RET_CN);
	ALLOC(r->cS, nn, ret & GSN_RET_CS);
	ALLOC(r->cNb, nn, ret & GSN_RET_CNB);
	ALLOC(r->cSb, nn, ret & GSN_RET_CSB);
	ALLOC(r->eigvals_signal, nb, ret & GSN_RET_EIG_SIGNAL);
	ALLOC(r->eigvecs_signal, nn, ret & GSN_RET_EIG_SIGNAL);
	ALLOC(r->eigvals_difference, nb, ret & GSN_RET_EIG_DIFFERENCE);
	ALLOC(r->eigvecs_difference, nn, ret & GSN_RET_EIG_DIFFERENCE);
#undef ALLOC
	return bad ? NQ_ENOMEM : 0;
}

static int
fail(int rc, const char *what, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "backend op %s failed", what);
	return rc == NQ_ENOMEM ? NQ_ENOMEM : (rc ? rc : NQ_EDEVICE);
}

/* dst = A − B/div, or A − B∘alpha when inv_alpha is given (tmp: work). */
static int
sub_scaled(struct gsn_dev *g, int64_t n, const void *A, const void *B,
           double div, const void *inv_alpha, void *tmp, void *dst)
{
	int rc = gsn_dcopy(g, dst, A, n * n);

	if (rc != 0)
		return rc;
	if (inv_alpha == NULL)
		return KOP(g->kb, axpby, g->dt, n * n, -1.0 / div, B, 1.0, dst);
	rc = gsn_dcopy(g, tmp, B, n * n);
	if (rc == 0)
		rc = KOP(g->kb, div_pos, g->dt, n * n, tmp, inv_alpha);
	if (rc == 0)
		rc = KOP(g->kb, axpby, g->dt, n * n, -1.0, tmp, 1.0, dst);
	return rc;
}

/* r->ncsnr from the diagonals of the raw cN and cS (§2.6). */
static int
compute_ncsnr(struct gsn_dev *g, int64_t n, const void *cN, const void *cS,
              struct gsn_work *wk, double *ncsnr)
{
	double *dN = malloc((size_t) n * sizeof(double));
	int rc = dN == NULL ? NQ_ENOMEM : 0;

	if (rc == 0)
		rc = KOP(g->kb, get_diag, g->dt, n, cN, wk->w);
	if (rc == 0)
		rc = gsn_down(g, dN, wk->w, n);
	if (rc == 0)
		rc = KOP(g->kb, get_diag, g->dt, n, cS, wk->w);
	if (rc == 0)
		rc = gsn_down(g, wk->hw, wk->w, n);
	for (int64_t i = 0; rc == 0 && i < n; i++) {
		double sn = sqrt(fmax(dN[i], 0)), ss = sqrt(fmax(wk->hw[i], 0));

		ncsnr[i] = sn != 0 ? ss / sn : 0.0;
	}
	free(dN);
	return rc;
}

/* V (column-major, ascending asc) in vecs' buffer → descending, signed
 * vals/vecs (gsn_eig_desc_host needs V and vecs apart). */
static int
eig_from_host(int64_t n, const double *asc, double *vecs, double *vals)
{
	double *V = malloc((size_t) (n * n) * sizeof(double));

	if (V == NULL)
		return NQ_ENOMEM;
	memcpy(V, vecs, (size_t) (n * n) * sizeof(double));
	gsn_eig_desc_host(n, asc, V, vals, vecs);
	free(V);
	return 0;
}

/*
 * Progress fractions of the four stages from a cost model in flops (level-2
 * bound steps weighted ×3): the noise and data stages are a Gram of the
 * residuals plus the level selection (a Gram of the samples when there are
 * fewer samples than units, otherwise a tridiagonal reduction); the
 * biconvex refinement is about two PSD projections (reduction + the
 * negative half of the eigenvectors); eigen only when it needs its own
 * decomposition. Without this the bar sat at 80 % for 95 % of a large
 * job's time (N = 2000: noise 0.25 s, data 0.12 s, biconvex 7.4 s, and the
 * model says 2.6 / 0.9 / 96.5 %), and the ETA with it.
 */
static void
stage_bounds(int64_t n, int64_t c, int64_t t, const struct gsn_opts *o,
             struct gsn_stage *stN, struct gsn_stage *stD,
             struct gsn_stage *stB, struct gsn_stage *stE)
{
	double N = (double) n, nn = N * N, n3 = nn * N, m = (double) (c * t);
	double sel = m < N ? 2 * N * m * m : 4 * n3, w[4], sum = 0, f = 0;
	struct gsn_stage *st[4] = {stN, stD, stB, stE};

	if (o->nll == GSN_NLL_CHOLESKY)
		sel = (o->levels != NULL  ? o->nlevels
		       : o->wantshrinkage ? 51
		                          : 1) *
		      n3 / 3;
	w[0] = 2 * nn * m + sel;
	w[1] = 2 * nn * (double) c + sel;
	w[2] = 2 * 5 * n3;
	w[3] = 5 * n3 *
	       (((o->returns & GSN_RET_EIG_DIFFERENCE) != 0) +
	        ((o->returns & GSN_RET_EIG_SIGNAL) != 0 &&
	         o->precision != KERN_F64));
	for (int i = 0; i < 4; i++)
		sum += w[i];
	for (int i = 0; i < 4; i++) {
		/* at least 1 % each, so every stage name shows */
		double d = 0.01 + 0.96 * w[i] / sum;
		st[i]->f0 = f;
		f = i == 3 ? 1.0 : f + d;
		st[i]->f1 = f;
	}
}

int
gsn_run_ex(const struct kern_backend *kb, const double *data, int64_t n,
           int64_t c, int64_t t, const struct gsn_opts *o,
           const struct gsn_progress *prog, unsigned flags,
           struct gsn_result *r, char *msg, size_t msglen)
{
	struct gsn_dev g = {kb, KERN_F64, 8};
	struct gsn_stage stN = {prog, "noise", 0, 0};
	struct gsn_stage stD = {prog, "data", 0, 0};
	struct gsn_stage stB = {prog, "biconvex", 0, 0};
	struct gsn_stage stE = {prog, "eigen", 0, 0};
	struct gsn_valid v = {0};
	struct gsn_work wk = {0};
	struct gsn_missing_out mo = {0};
	struct gsn_sel selN = {0}, selD = {0};
	struct gsn_bicon b = {0};
	double *levels = NULL, *means = NULL, n_diff;
	void *cN = NULL, *cD = NULL, *S = NULL, *cSb = NULL, *cNb = NULL;
	int rc, nlevels;
	double t0 = nq_mono_s(), t1;

	memset(r, 0, sizeof(*r));
	if (o == NULL)
		o = &default_opts;
	if (msglen > 0)
		msg[0] = '\0';
	rc = gsn_check(data, n, c, t, o, msg, msglen);
	if (rc != 0)
		return rc;
	stage_bounds(n, c, t, o, &stN, &stD, &stB, &stE);
	g.dt = o->precision;
	g.es = kern_dtype_size(g.dt);
	nlevels = gsn_levels(o, NULL);
	levels = malloc((size_t) nlevels * sizeof(double));
	if (levels == NULL)
		goto nomem;
	gsn_levels(o, levels);
	r->n = n;
	r->nlevels = nlevels;
	if (alloc_result(r, n, nlevels, o->returns) != 0)
		goto nomem;
	memset(r->mnN, 0, (size_t) n * sizeof(double));
	rc = gsn_valid_init(&v, data, n, c, t);
	if (rc != 0)
		goto nomem;
	rc = gsn_work_init(&g, n, &wk);
	if (rc != 0) {
		rc = fail(rc, "alloc", msg, msglen);
		goto out;
	}
	b.ncond = c;
	selN.nll = r->nllN;
	selD.nll = r->nllD;
	if (o->uneven == GSN_UNEVEN_MISSING &&
	    (v.has_nan || (flags & GSN_FLAG_FORCE_UNEVEN))) {
		mo.mnS = r->mnS;
		mo.selN.nll = r->nllN;
		mo.selD.nll = r->nllD;
		for (int i = 0; i < nlevels; i++)
			r->nllN[i] = r->nllD[i] = NAN;
		rc = gsn_missing_est(&g, data, n, c, t, o, levels, nlevels,
		                     &stN, &stD, &mo, msg, msglen);
		if (rc != 0)
			goto out;
		t1 = nq_mono_s();
		r->time_noise_s = t1 - t0; /* both levels: one estimator */
		t0 = t1;
		cN = mo.cN;
		cD = mo.cD;
		mo.cN = mo.cD = NULL;
		b.inv_alpha = mo.inv_alpha;
		b.n_sig = b.n_bc = n_diff = mo.n_eff;
		r->shrinklevelN = mo.lvlN;
		r->shrinklevelD = mo.lvlD;
		selN = mo.selN;
		selD = mo.selD;
		/* the reference selects (and warns) only with several levels */
		if (nlevels > 1)
			r->warnings |=
			        (!mo.selN_ran        ? GSN_WARN_FALLBACK_N
			         : selN.all_singular ? GSN_WARN_SINGULAR_N
			                             : 0) |
			        (!mo.selD_ran        ? GSN_WARN_FALLBACK_D
			         : selD.all_singular ? GSN_WARN_SINGULAR_D
			                             : 0);
		r->ntrial_used = mo.n_eff;
	} else {
		double sum_k = 0, sum_k2 = 0;

		/* the whole-trial path; complete data is its k_c = T case */
		rc = gsn_noise_est(&g, data, n, &v, levels, nlevels, o->nll, 1,
		                   &stN, &cN, &selN, msg, msglen);
		if (rc != 0)
			goto out;
		r->shrinklevelN = levels[selN.best];
		rc = KOP(kb, shrink, g.dt, n, cN, cN, r->shrinklevelN, 1);
		if (rc != 0) {
			rc = fail(rc, "shrink", msg, msglen);
			goto out;
		}
		if ((rc = gsn_stage_canceled(&stN, msg, msglen)) != 0)
			goto out;
		t1 = nq_mono_s();
		r->time_noise_s = t1 - t0;
		t0 = t1;
		means = malloc((size_t) (n * c) * sizeof(double));
		if (means == NULL || gsn_balanced_means(data, n, &v, means))
			goto nomem;
		rc = gsn_data_est(&g, means, n, c, levels, nlevels, o->nll, 1,
		                  &stD, &cD, r->mnS, &selD, msg, msglen);
		if (rc != 0)
			goto out;
		r->shrinklevelD = levels[selD.best];
		rc = KOP(kb, shrink, g.dt, n, cD, cD, r->shrinklevelD, 1);
		if (rc != 0) {
			rc = fail(rc, "shrink", msg, msglen);
			goto out;
		}
		for (int64_t k = 0; k < c; k++) {
			sum_k += (double) v.kc[k];
			sum_k2 += v.kc[k] > 1 ? (double) v.kc[k] : 0.0;
		}
		b.n_sig = (double) v.kmin;
		/* ntrialBC; below 1 the reference warns and uses 1 */
		b.n_bc = fmax(sum_k2 / (double) c, 1.0);
		r->warnings |=
		        (sum_k2 / (double) c < 1.0 ? GSN_WARN_NTRIALBC : 0) |
		        (selN.all_singular ? GSN_WARN_SINGULAR_N : 0) |
		        (selD.all_singular ? GSN_WARN_SINGULAR_D : 0);
		n_diff = sum_k / (double) c;
		r->ntrial_used = b.n_sig;
		t1 = nq_mono_s();
		r->time_data_s = t1 - t0;
		t0 = t1;
	}
	r->singularN = selN.rule;
	r->singularD = selD.rule;
	r->all_singularN = selN.all_singular;
	r->all_singularD = selD.all_singular;
	if ((rc = gsn_stage_canceled(&stD, msg, msglen)) != 0)
		goto out;

	/* cS = cD − cN/T (or − cN∘alpha), kept in S (the biconvex S_old) */
	rc = gsn_dalloc(&g, n * n, &S);
	if (rc == 0)
		rc = sub_scaled(&g, n, cD, cN, b.n_sig, b.inv_alpha, wk.tmp, S);
	if (rc == 0)
		rc = compute_ncsnr(&g, n, cN, S, &wk, r->ncsnr);
	if (rc == 0 && r->cN != NULL)
		rc = gsn_down_matrix(&g, r->cN, cN, n);
	if (rc == 0 && r->cS != NULL)
		rc = gsn_down_matrix(&g, r->cS, S, n);
	/* host memory, float64: cSb and cNb are made in the result's own
	 * buffers (exactly symmetric: column-major is C order), no download
	 * copy, and the memory is touched once */
	if (rc == 0 && kern_mem_is_host(kb) && g.dt == KERN_F64) {
		cSb = r->cSb;
		cNb = r->cNb;
	}
	if (rc == 0 && cSb == NULL)
		rc = gsn_dalloc(&g, n * n, &cSb);
	if (rc == 0 && cNb == NULL)
		rc = gsn_dalloc(&g, n * n, &cNb);
	if (rc != 0) {
		rc = fail(rc, "cS", msg, msglen);
		goto out;
	}
	b.cN = cN;
	b.cD = cD;
	if ((o->returns & GSN_RET_EIG_SIGNAL) && g.dt == KERN_F64) {
		/* float64: the eigen returns of cSb come from its projection */
		wk.eig_vals = malloc((size_t) n * sizeof(double));
		rc = wk.eig_vals == NULL ? NQ_ENOMEM : 0;
		if (rc == 0)
			rc = gsn_dalloc(&g, n * n, &wk.eig_vecs);
		if (rc != 0) {
			rc = fail(rc, "alloc", msg, msglen);
			goto out;
		}
	}
	rc = gsn_biconvex(&g, n, &b, o->biconvex, S, cSb, cNb, &wk, &stB,
	                  &r->numiters, msg, msglen);
	if (rc != 0)
		goto out;
	if (r->cNb != NULL && r->cNb != cNb)
		rc = gsn_down_matrix(&g, r->cNb, cNb, n);
	if (rc == 0 && r->cSb != NULL && r->cSb != cSb)
		rc = gsn_down_matrix(&g, r->cSb, cSb, n);
	if (rc != 0) {
		rc = fail(rc, "download", msg, msglen);
		goto out;
	}
	t1 = nq_mono_s();
	r->time_biconvex_s = t1 - t0;
	t0 = t1;
	gsn_stage_report(&stE, 0.0);
	if ((rc = gsn_stage_canceled(&stE, msg, msglen)) != 0)
		goto out;
	if ((o->returns & GSN_RET_EIG_SIGNAL) && wk.eig_valid) {
		/* cSb = V (D₊ + shift·I) Vᵀ: no second eigh; the vectors
		 * land in r->eigvecs_signal's buffer first */
		rc = gsn_down(&g, r->eigvecs_signal, wk.eig_vecs, n * n);
		if (rc != 0) {
			rc = fail(rc, "download", msg, msglen);
			goto out;
		}
		gsn_dfree(&g, &wk.eig_vecs);
		for (int64_t i = 0; i < n; i++)
			wk.eig_vals[i] += wk.eig_shift;
		rc = eig_from_host(n, wk.eig_vals, r->eigvecs_signal,
		                   r->eigvals_signal);
		if (rc != 0)
			goto nomem;
		gsn_stage_report(&stE, 0.5);
	} else if (o->returns & GSN_RET_EIG_SIGNAL) {
		rc = gsn_eigh_desc(&g, n, cSb, r->eigvals_signal,
		                   r->eigvecs_signal, msg, msglen);
		if (rc != 0)
			goto out;
		gsn_stage_report(&stE, 0.5);
	}
	if (o->returns & GSN_RET_EIG_DIFFERENCE) {
		if ((rc = gsn_stage_canceled(&stE, msg, msglen)) != 0)
			goto out;
		/* §2.9/§2.10: cSb − cNb/mean(k_c) (missing: − cNb∘alpha) */
		rc = sub_scaled(&g, n, cSb, cNb, n_diff, b.inv_alpha, wk.tmp,
		                S);
		if (rc != 0) {
			rc = fail(rc, "difference", msg, msglen);
			goto out;
		}
		gsn_dfree(&g, &cN);
		gsn_dfree(&g, &cD);
		rc = gsn_eigh_desc(&g, n, S, r->eigvals_difference,
		                   r->eigvecs_difference, msg, msglen);
		if (rc != 0)
			goto out;
	}
	gsn_stage_report(&stE, 1.0);
	r->time_eigen_s = nq_mono_s() - t0;
	rc = 0;
	goto out;
nomem:
	rc = NQ_ENOMEM;
	snprintf(msg, msglen,
	         "out of host memory (N = %lld, C = %lld, T = %lld)",
	         (long long) n, (long long) c, (long long) t);
out:
	gsn_dfree(&g, &cN);
	gsn_dfree(&g, &cD);
	gsn_dfree(&g, &S);
	if (cSb != r->cSb)
		gsn_dfree(&g, &cSb);
	if (cNb != r->cNb)
		gsn_dfree(&g, &cNb);
	gsn_dfree(&g, &mo.inv_alpha);
	gsn_work_fini(&g, &wk);
	gsn_valid_fini(&v);
	free(levels);
	free(means);
	if (rc != 0)
		gsn_result_free(r);
	return rc;
}

int
gsn_run(const struct kern_backend *kb, const double *data, int64_t n, int64_t c,
        int64_t t, const struct gsn_opts *o, const struct gsn_progress *prog,
        struct gsn_result *r, char *msg, size_t msglen)
{
	return gsn_run_ex(kb, data, n, c, t, o, prog, 0, r, msg, msglen);
}
