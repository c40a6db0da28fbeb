/*
 * gsn_job.c — the "gsn" job type: params → gsn_opts, input "data" (N×C×T,
 * float64 or float32, NaN = missing), result → output map with GSN's names
 * and shapes (spec §1.3) plus diagnostics (NLL curves, which alpha = 1 rule
 * fired).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gsn.h"
#include "job_type.h"
#include "nq_error.h"
#include "params.h"

extern const struct job_type gsn_job_type;

/* returns names in GSN's spelling, and the gsn.h bit each needs */
static const struct {
	const char *name;
	unsigned bit;
} ret_names[] = {
        {"cN", GSN_RET_CN},
        {"cS", GSN_RET_CS},
        {"cNb", GSN_RET_CNB},
        {"cSb", GSN_RET_CSB},
        {"eigvecs_signal", GSN_RET_EIG_SIGNAL},
        {"eigvals_signal", GSN_RET_EIG_SIGNAL},
        {"eigvecs_difference", GSN_RET_EIG_DIFFERENCE},
        {"eigvals_difference", GSN_RET_EIG_DIFFERENCE},
};
#define NRET (sizeof(ret_names) / sizeof(ret_names[0]))

/* ---- the table (params.h): what a submit may say, and what comes back */

static const char *const ret_choices[] = {
        "cN",
        "cS",
        "cNb",
        "cSb",
        "eigvecs_signal",
        "eigvals_signal",
        "eigvecs_difference",
        "eigvals_difference",
        NULL,
};
/* "reference": GSN 1.2's own name for its fast path */
static const char *const uneven_n[] = {"fast", "missing", "reference", NULL};
static const int uneven_v[] = {GSN_UNEVEN_FAST, GSN_UNEVEN_MISSING,
                               GSN_UNEVEN_FAST};
static const char *const prec_n[] = {"float64", "float32", "f64", "f32",
                                     "<f8",     "<f4",     NULL};
static const int prec_v[] = {KERN_F64, KERN_F32, KERN_F64,
                             KERN_F32, KERN_F64, KERN_F32};
static const char *const nll_n[] = {"spectral", "cholesky", "eigh", NULL};
static const int nll_v[] = {GSN_NLL_SPECTRAL, GSN_NLL_CHOLESKY, GSN_NLL_EIGH};
static const char *const bic_n[] = {"loop", "closed", NULL};
static const int bic_v[] = {GSN_BICONVEX_LOOP, GSN_BICONVEX_CLOSED};

static const struct param_def gsn_params[] = {
        {.name = "wantshrinkage",
         .type = PARAM_BOOL,
         .has_def = 1,
         .def_num = 1,
         .doc = "pick the shrinkage of the noise and data covariances by "
                "cross-validated likelihood; false: no shrinkage (the one "
                "level 1.0) unless shrinklevels is given"},
        {.name = "shrinklevels",
         .type = PARAM_FLOATS,
         .lo = 0,
         .hi = 1,
         .ilo = 1,
         .ihi = 100000,
         .def_text = "numpy.linspace(0, 1, 51); [1.0] when wantshrinkage "
                     "is false",
         .doc = "the shrinkage levels tried (1 = no shrinkage); a list of "
                "numbers or a 1-D float array"},
        {.name = "returns",
         .type = PARAM_STRS,
         .choices = ret_choices,
         .has_def = 1,
         .def_str = "cN cS cNb cSb",
         .doc = "the covariance and eigen outputs to return (a name or a "
                "list); mnN, mnS, ncsnr and the scalars always come back"},
        {.name = "uneven",
         .type = PARAM_STR,
         .choices = uneven_n,
         .has_def = 1,
         .def_str = "fast",
         .doc = "uneven trial counts: 'fast' (= 'reference'), NaN marks a "
                "whole missing trial; 'missing', NaN per unit and trial"},
        {.name = "precision",
         .type = PARAM_STR,
         .choices = prec_n,
         .def_text = "the dtype of data",
         .doc = "compute and return in float64 or float32"},
        {.name = "nll",
         .type = PARAM_STR,
         .choices = nll_n,
         .has_def = 1,
         .def_str = "spectral",
         .doc = "how held-out likelihoods are computed: 'spectral' (one "
                "tridiagonal reduction), 'cholesky' or 'eigh' (per level; "
                "the oracles)"},
        {.name = "biconvex",
         .type = PARAM_STR,
         .choices = bic_n,
         .has_def = 1,
         .def_str = "loop",
         .doc = "the biconvex step: 'loop' (GSN's iteration) or 'closed' "
                "(closed form; an oracle)"},
        {.name = "wantverbose",
         .type = PARAM_BOOL,
         .has_def = 1,
         .def_num = 1,
         .doc = "accepted and ignored (GSN's printing switch; progress "
                "comes as job progress)"},
};

static const struct input_def gsn_inputs[] = {
        {.name = "data",
         .dtypes = PARAMS_DT(NQ_DT_F64) | PARAMS_DT(NQ_DT_F32),
         .shape = "N C T",
         .required = 1,
         .doc = "responses, units x conditions x trials, float64 or float32 "
                "(float32 computes in float32), NaN = missing"},
};

#define PREC  (PARAMS_DT(NQ_DT_F64) | PARAMS_DT(NQ_DT_F32))
#define F64   PARAMS_DT(NQ_DT_F64)
#define ASKED "named in returns"
static const struct output_def gsn_outputs[] = {
        {"mnN", OUT_ARRAY, PREC, "1 N", NULL,
         "mean of the noise distribution (zeros)"},
        {"mnS", OUT_ARRAY, PREC, "1 N", NULL,
         "mean of the signal distribution"},
        {"ncsnr", OUT_ARRAY, PREC, "N", NULL,
         "noise-ceiling signal-to-noise ratio per unit"},
        {"cN", OUT_ARRAY, PREC, "N N", ASKED, "noise covariance (raw)"},
        {"cS", OUT_ARRAY, PREC, "N N", ASKED, "signal covariance (raw)"},
        {"cNb", OUT_ARRAY, PREC, "N N", ASKED,
         "noise covariance, shrunk and made PSD"},
        {"cSb", OUT_ARRAY, PREC, "N N", ASKED,
         "signal covariance, shrunk and made PSD"},
        {"eigvecs_signal", OUT_ARRAY, PREC, "N N", ASKED,
         "eigenvectors of cSb (column i is vector i)"},
        {"eigvals_signal", OUT_ARRAY, PREC, "N", ASKED,
         "eigenvalues of cSb, descending"},
        {"eigvecs_difference", OUT_ARRAY, PREC, "N N", ASKED,
         "eigenvectors of cSb - cNb"},
        {"eigvals_difference", OUT_ARRAY, PREC, "N", ASKED,
         "eigenvalues of cSb - cNb, descending"},
        {"shrinklevelN", OUT_FLOAT, 0, NULL, NULL,
         "shrinkage level chosen for the noise covariance"},
        {"shrinklevelD", OUT_FLOAT, 0, NULL, NULL,
         "shrinkage level chosen for the data covariance"},
        {"numiters", OUT_INT, 0, NULL, NULL, "biconvex iterations"},
        {"warnings", OUT_STRS, 0, NULL, NULL,
         "GSN 1.2's warnings.warn texts and what neuroq did ([] when "
         "none)"},
        {"shrinklevels", OUT_ARRAY, F64, "L", NULL,
         "the shrinkage levels evaluated"},
        {"nllN", OUT_ARRAY, F64, "L", NULL,
         "held-out negative log-likelihood per level, noise (NaN: "
         "singular)"},
        {"nllD", OUT_ARRAY, F64, "L", NULL,
         "held-out negative log-likelihood per level, data (NaN: "
         "singular)"},
        {"singularN", OUT_STR, 0, NULL, NULL,
         "which rule made level 1 singular, noise: 'rank', 'factor' or "
         "'none'"},
        {"singularD", OUT_STR, 0, NULL, NULL,
         "which rule made level 1 singular, data: 'rank', 'factor' or "
         "'none'"},
        {"all_singularN", OUT_BOOL, 0, NULL, NULL,
         "every noise level was singular"},
        {"all_singularD", OUT_BOOL, 0, NULL, NULL,
         "every data level was singular"},
        {"ntrial_used", OUT_FLOAT, 0, NULL, NULL,
         "trials per condition used (T, or the minimum for uneven data)"},
        {"time_noise_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds in the noise level search"},
        {"time_data_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds in the data level search"},
        {"time_biconvex_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds in the biconvex step"},
        {"time_eigen_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds in the eigen returns"},
};
#undef PREC
#undef F64
#undef ASKED

static const struct shape_symbol gsn_symbols[] = {
        {"N", "units (data's first dimension)"},
        {"C", "conditions (data's second dimension)"},
        {"T", "trials (data's third dimension)"},
        {"L", "shrinkage levels evaluated (shrinklevels' length)"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
static const struct job_desc gsn_desc = {
        .summary = "GSN (generative modeling of signal and noise, cvnlab "
                   "GSN 1.2 perform_gsn): signal and noise covariances of "
                   "units x conditions x trials responses",
        .nil_is_default = 1,
        .params = gsn_params,
        .nparams = COUNT(gsn_params),
        .inputs = gsn_inputs,
        .ninputs = COUNT(gsn_inputs),
        .outputs = gsn_outputs,
        .noutputs = COUNT(gsn_outputs),
        .symbols = gsn_symbols,
        .nsymbols = COUNT(gsn_symbols),
};

struct gsn_job_opts {
	struct gsn_opts o;
	double *levels; /* owned */
	unsigned want;  /* bit i = ret_names[i] requested */
};

static void
job_opts_fini(struct gsn_job_opts *jo)
{
	free(jo->levels);
	jo->levels = NULL;
}

/* shrinklevels (checked by params_check) into jo. */
static int
parse_levels(const struct nq_value *v, struct gsn_job_opts *jo, char *msg,
             size_t msglen)
{
	int64_t n =
	        v->kind == NQ_LIST ? (int64_t) v->u.list.n : v->u.arr.shape[0];

	jo->levels = malloc((size_t) n * sizeof(double));
	if (jo->levels == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	for (int64_t i = 0; i < n; i++) {
		const struct nq_value *e =
		        v->kind == NQ_LIST ? &v->u.list.items[i] : NULL;

		if (e == NULL)
			jo->levels[i] =
			        v->u.arr.dtype == NQ_DT_F64
			                ? ((const double *) v->u.arr.data)[i]
			                : ((const float *) v->u.arr.data)[i];
		else
			jo->levels[i] =
			        e->kind == NQ_FLOAT ? e->u.f : (double) e->u.i;
	}
	jo->o.levels = jo->levels;
	jo->o.nlevels = (int) n;
	return 0;
}

static void
add_return(const char *s, struct gsn_job_opts *jo)
{
	for (size_t i = 0; i < NRET; i++)
		if (strcmp(s, ret_names[i].name) == 0) {
			jo->want |= 1u << i;
			jo->o.returns |= ret_names[i].bit;
		}
}

/* returns (checked by params_check) into jo. */
static void
parse_returns(const struct nq_value *v, struct gsn_job_opts *jo)
{
	jo->o.returns = 0;
	jo->want = 0;
	if (v->kind == NQ_STR) {
		add_return(v->u.str.s, jo);
		return;
	}
	for (size_t i = 0; i < v->u.list.n; i++)
		add_return(v->u.list.items[i].u.str.s, jo);
}

/* The value of a choice parameter: vals[its index]. */
static int
choice_val(const struct nq_map *p, const char *key, const int *vals, int dflt)
{
	int i = params_choice(&gsn_desc, p, key);

	return i >= 0 ? vals[i] : dflt;
}

/* params and inputs, checked against the table, into *a and jo. */
static int
parse(const struct nq_map *p, const struct nq_map *inputs,
      const struct nq_array **a, struct gsn_job_opts *jo, char *msg,
      size_t msglen)
{
	const struct nq_value *v;
	int rc;

	memset(jo, 0, sizeof(*jo));
	rc = params_check(&gsn_desc, "gsn", p, inputs, msg, msglen);
	if (rc != 0)
		return rc;
	*a = &nq_map_get(inputs, "data")->u.arr;
	jo->o.wantshrinkage = params_bool(&gsn_desc, p, "wantshrinkage");
	/* wantverbose: accepted and ignored (the fast paths print nothing) */
	jo->o.returns = GSN_RET_DEFAULT;
	jo->want = 0xf; /* cN cS cNb cSb */
	if ((v = params_given(&gsn_desc, p, "returns")) != NULL)
		parse_returns(v, jo);
	if ((v = params_given(&gsn_desc, p, "shrinklevels")) != NULL &&
	    (rc = parse_levels(v, jo, msg, msglen)) != 0)
		return rc;
	jo->o.uneven = (enum gsn_uneven) choice_val(p, "uneven", uneven_v,
	                                            GSN_UNEVEN_FAST);
	jo->o.precision = (enum kern_dtype) choice_val(
	        p, "precision", prec_v,
	        (*a)->dtype == NQ_DT_F32 ? KERN_F32 : KERN_F64);
	jo->o.nll =
	        (enum gsn_nll) choice_val(p, "nll", nll_v, GSN_NLL_SPECTRAL);
	jo->o.biconvex = (enum gsn_biconvex) choice_val(p, "biconvex", bic_v,
	                                                GSN_BICONVEX_LOOP);
	return 0;
}

/* float64 view of the data: the array itself, or a converted copy. */
static int
data_f64(const struct nq_array *a, const double **d, double **owned)
{
	int64_t cnt = nq_array_count(a);

	*owned = NULL;
	if (a->dtype == NQ_DT_F64) {
		*d = a->data;
		return 0;
	}
	*owned = malloc((size_t) (cnt > 0 ? cnt : 1) * sizeof(double));
	if (*owned == NULL)
		return NQ_ENOMEM;
	for (int64_t i = 0; i < cnt; i++)
		(*owned)[i] = ((const float *) a->data)[i];
	*d = *owned;
	return 0;
}

static int
gsn_job_validate(const struct nq_map *params, const struct nq_map *inputs,
                 char *msg, size_t msglen)
{
	const struct nq_array *a;
	struct gsn_job_opts jo;
	const double *d;
	double *owned = NULL;
	int rc;

	rc = parse(params, inputs, &a, &jo, msg, msglen);
	if (rc == 0)
		rc = data_f64(a, &d, &owned);
	if (rc == 0)
		rc = gsn_check(d, a->shape[0], a->shape[1], a->shape[2], &jo.o,
		               msg, msglen);
	free(owned);
	job_opts_fini(&jo);
	return rc;
}

static int
gsn_job_estimate(const struct nq_map *params, const struct nq_map *inputs,
                 struct job_estimate *est)
{
	const struct nq_array *a;
	struct gsn_job_opts jo;
	char msg[256];
	int rc;

	memset(est, 0, sizeof(*est));
	rc = parse(params, inputs, &a, &jo, msg, sizeof(msg));
	if (rc == 0)
		gsn_estimate(a->shape[0], a->shape[1], a->shape[2], &jo.o,
		             &est->host_bytes, &est->device_bytes, &est->flops);
	/* the float32 → float64 staging copy of run() */
	if (rc == 0 && a->dtype == NQ_DT_F32)
		est->host_bytes += (uint64_t) nq_array_count(a) * 8;
	job_opts_fini(&jo);
	return rc;
}

struct prog_bridge {
	struct job_ctx *ctx;
};

static void
bridge_fn(void *arg, double frac, const char *stage)
{
	struct prog_bridge *pb = arg;

	if (pb->ctx->progress != NULL)
		pb->ctx->progress(pb->ctx, frac, stage);
}

static int
bridge_canceled(void *arg)
{
	struct prog_bridge *pb = arg;

	return pb->ctx->canceled != NULL && pb->ctx->canceled(pb->ctx);
}

/* Moves the host double array *h (malloc'd) into out[key] in dtype dt with
 * the shape: float64 takes the block itself (*h = NULL after: an n×n result
 * is neither copied nor touched again), float32 converts a copy. */
static int
put_array(struct nq_map *out, const char *key, double **h, enum nq_dtype dt,
          int ndim, const int64_t *shape)
{
	struct nq_array a;
	int64_t cnt;
	int rc;

	if (dt == NQ_DT_F64) {
		rc = nq_array_adopt(&a, dt, ndim, shape, *h);
		if (rc == 0)
			*h = NULL;
	} else {
		rc = nq_array_init(&a, dt, ndim, shape);
		cnt = rc == 0 ? nq_array_count(&a) : 0;
		for (int64_t i = 0; i < cnt; i++)
			((float *) a.data)[i] = (float) (*h)[i];
	}
	if (rc == 0)
		rc = nq_map_set_array(out, key, &a);
	nq_array_fini(&a);
	return rc;
}

/* GSN 1.2's warnings.warn texts (the same words first, so that a Python
 * filter on the reference's message matches), with what neuroq did. */
static const struct {
	unsigned bit;
	const char *text;
} warn_texts[] = {
        {GSN_WARN_SINGULAR_N,
         "All covariance matrices were singular. (noise covariance: no "
         "shrink level gave a finite held-out likelihood; the first level "
         "is used)"},
        {GSN_WARN_SINGULAR_D,
         "All covariance matrices were singular. (data covariance: no "
         "shrink level gave a finite held-out likelihood; the first level "
         "is used)"},
        {GSN_WARN_NTRIALBC,
         "ntrialBC is lopsided! setting to 1 (the valid trials of the "
         "conditions with at least 2, summed and divided by the number of "
         "conditions, are fewer than 1 per condition)"},
        {GSN_WARN_FALLBACK_N,
         "missing-units: cN shrink level fell back to 1.0 (too few "
         "complete trials)"},
        {GSN_WARN_FALLBACK_D,
         "missing-units: cD shrink level fell back to 1.0 (too few "
         "complete conditions)"},
};
#define NWARN (sizeof(warn_texts) / sizeof(warn_texts[0]))

/* out["warnings"] = the texts of the bits in w (an empty list when none). */
static int
put_warnings(struct nq_map *out, unsigned w)
{
	const char *texts[NWARN];
	size_t n = 0;

	for (size_t i = 0; i < NWARN; i++)
		if (w & warn_texts[i].bit)
			texts[n++] = warn_texts[i].text;
	return nq_map_set_strs(out, "warnings", texts, n);
}

static const char *
rule_name(enum gsn_singular_rule r)
{
	return r == GSN_SING_RANK     ? "rank"
	       : r == GSN_SING_FACTOR ? "factor"
	                              : "none";
}

/* The result into out. 0, or the first failure's nq_error code with msg
 * naming the output. */
static int
fill_output(struct gsn_result *r, const struct gsn_job_opts *jo,
            struct nq_map *out, char *msg, size_t msglen)
{
	enum nq_dtype dt = jo->o.precision == KERN_F32 ? NQ_DT_F32 : NQ_DT_F64;
	int64_t row[2] = {1, r->n}, vec[1] = {r->n}, mat[2] = {r->n, r->n};
	int64_t lv[1] = {r->nlevels};
	double **mats[NRET] = {
	        &r->cN,
	        &r->cS,
	        &r->cNb,
	        &r->cSb,
	        &r->eigvecs_signal,
	        &r->eigvals_signal,
	        &r->eigvecs_difference,
	        &r->eigvals_difference,
	};
	const char *key = "shrinklevels";
	double *levels = malloc((size_t) r->nlevels * sizeof(double));
	int rc;

	if (levels == NULL) {
		rc = NQ_ENOMEM;
		goto fail;
	}
	if (gsn_levels(&jo->o, NULL) != r->nlevels) {
		rc = NQ_EINTERNAL;
		goto fail;
	}
	gsn_levels(&jo->o, levels);
	if ((rc = put_array(out, key = "mnN", &r->mnN, dt, 2, row)) ||
	    (rc = put_array(out, key = "mnS", &r->mnS, dt, 2, row)) ||
	    (rc = put_array(out, key = "ncsnr", &r->ncsnr, dt, 1, vec)))
		goto fail;
	for (size_t i = 0; i < NRET; i++) {
		int is_vals = strncmp(ret_names[i].name, "eigvals", 7) == 0;

		if (!(jo->want & (1u << i)) || *mats[i] == NULL)
			continue;
		key = ret_names[i].name;
		rc = put_array(out, key, mats[i], dt, is_vals ? 1 : 2,
		               is_vals ? vec : mat);
		if (rc != 0)
			goto fail;
	}
	if ((rc = nq_map_set_float(out, key = "shrinklevelN",
	                           r->shrinklevelN)) ||
	    (rc = nq_map_set_float(out, key = "shrinklevelD",
	                           r->shrinklevelD)) ||
	    (rc = nq_map_set_int(out, key = "numiters", r->numiters)) ||
	    (rc = put_warnings(out, r->warnings)) ||
	    /* diagnostics */
	    (rc = put_array(out, key = "shrinklevels", &levels, NQ_DT_F64, 1,
	                    lv)) ||
	    (rc = put_array(out, key = "nllN", &r->nllN, NQ_DT_F64, 1, lv)) ||
	    (rc = put_array(out, key = "nllD", &r->nllD, NQ_DT_F64, 1, lv)) ||
	    (rc = nq_map_set_str(out, key = "singularN",
	                         rule_name(r->singularN))) ||
	    (rc = nq_map_set_str(out, key = "singularD",
	                         rule_name(r->singularD))) ||
	    (rc = nq_map_set_bool(out, key = "all_singularN",
	                          r->all_singularN)) ||
	    (rc = nq_map_set_bool(out, key = "all_singularD",
	                          r->all_singularD)) ||
	    (rc = nq_map_set_float(out, key = "ntrial_used", r->ntrial_used)) ||
	    (rc = nq_map_set_float(out, key = "time_noise_s",
	                           r->time_noise_s)) ||
	    (rc = nq_map_set_float(out, key = "time_data_s", r->time_data_s)) ||
	    (rc = nq_map_set_float(out, key = "time_biconvex_s",
	                           r->time_biconvex_s)) ||
	    (rc = nq_map_set_float(out, key = "time_eigen_s", r->time_eigen_s)))
		goto fail;
	free(levels);
	return 0;
fail:
	free(levels);
	if (rc == NQ_ENOMEM)
		snprintf(msg, msglen, "out of host memory (outputs: %s)", key);
	else
		snprintf(msg, msglen, "output %s: %s", key, nq_strerror(rc));
	return rc;
}

static int
gsn_job_run(struct job_ctx *ctx, const struct nq_map *params,
            const struct nq_map *inputs, struct nq_map *out, char *msg,
            size_t msglen)
{
	const struct nq_array *a;
	struct gsn_job_opts jo;
	struct gsn_result r;
	struct prog_bridge pb = {ctx};
	struct gsn_progress prog = {bridge_fn, bridge_canceled, &pb};
	const double *d;
	double *owned = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = parse(params, inputs, &a, &jo, msg, msglen);
	if (rc != 0)
		goto out;
	rc = data_f64(a, &d, &owned);
	if (rc != 0) {
		snprintf(msg, msglen, "out of host memory (data copy)");
		goto out;
	}
	rc = gsn_run(ctx->kb, d, a->shape[0], a->shape[1], a->shape[2], &jo.o,
	             &prog, &r, msg, msglen);
	free(owned);
	owned = NULL;
	if (rc != 0)
		goto out;
	rc = fill_output(&r, &jo, out, msg, msglen);
	if (rc != 0)
		goto out;
	if (ctx->log != NULL)
		ctx->log(ctx,
		         "gsn done n=%lld c=%lld t=%lld shrinklevelN=%g "
		         "shrinklevelD=%g numiters=%d singularN=%s "
		         "singularD=%s",
		         (long long) a->shape[0], (long long) a->shape[1],
		         (long long) a->shape[2], r.shrinklevelN,
		         r.shrinklevelD, r.numiters, rule_name(r.singularN),
		         rule_name(r.singularD));
out:
	free(owned);
	gsn_result_free(&r);
	job_opts_fini(&jo);
	return rc;
}

const struct job_type gsn_job_type = {
        .name = "gsn",
        .desc = &gsn_desc,
        .validate = gsn_job_validate,
        .estimate = gsn_job_estimate,
        .run = gsn_job_run,
};
