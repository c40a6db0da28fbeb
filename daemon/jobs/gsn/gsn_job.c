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

extern const struct job_type gsn_job_type;

static const char *const allowed_keys[] = {
        "wantshrinkage", "shrinklevels", "returns",  "uneven",
        "precision",     "nll",          "biconvex", "wantverbose",
};
#define NKEYS (sizeof(allowed_keys) / sizeof(allowed_keys[0]))

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
#define RET_NAMES_TEXT                                       \
	"cN, cS, cNb, cSb, eigvecs_signal, eigvals_signal, " \
	"eigvecs_difference, eigvals_difference"

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

static int
parse_levels(const struct nq_value *v, struct gsn_job_opts *jo, char *msg,
             size_t msglen)
{
	int64_t n;

	if (v->kind == NQ_LIST) {
		n = (int64_t) v->u.list.n;
	} else if (v->kind == NQ_ARRAY && v->u.arr.ndim == 1 &&
	           (v->u.arr.dtype == NQ_DT_F64 ||
	            v->u.arr.dtype == NQ_DT_F32)) {
		n = v->u.arr.shape[0];
	} else {
		snprintf(msg, msglen,
		         "parameter 'shrinklevels' must be a list of numbers "
		         "in [0, 1] or a 1-D float array");
		return NQ_EBADPARAM;
	}
	if (n < 1 || n > 100000) {
		snprintf(msg, msglen,
		         "parameter 'shrinklevels' must have 1 to 100000 "
		         "levels (got %lld)",
		         (long long) n);
		return NQ_EBADPARAM;
	}
	jo->levels = malloc((size_t) n * sizeof(double));
	if (jo->levels == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	for (int64_t i = 0; i < n; i++) {
		double x;

		if (v->kind == NQ_ARRAY) {
			x = v->u.arr.dtype == NQ_DT_F64
			            ? ((const double *) v->u.arr.data)[i]
			            : ((const float *) v->u.arr.data)[i];
		} else {
			const struct nq_value *e = &v->u.list.items[i];

			if (e->kind == NQ_FLOAT) {
				x = e->u.f;
			} else if (e->kind == NQ_INT) {
				x = (double) e->u.i;
			} else {
				snprintf(
				        msg, msglen,
				        "parameter 'shrinklevels' item %lld is "
				        "not a number",
				        (long long) i);
				return NQ_EBADPARAM;
			}
		}
		if (!(x >= 0 && x <= 1)) {
			snprintf(msg, msglen,
			         "parameter 'shrinklevels' item %lld = %g is "
			         "not "
			         "in [0, 1]",
			         (long long) i, x);
			return NQ_EBADPARAM;
		}
		jo->levels[i] = x;
	}
	jo->o.levels = jo->levels;
	jo->o.nlevels = (int) n;
	return 0;
}

static int
add_return(const char *s, struct gsn_job_opts *jo, char *msg, size_t msglen)
{
	for (size_t i = 0; i < NRET; i++)
		if (strcmp(s, ret_names[i].name) == 0) {
			jo->want |= 1u << i;
			jo->o.returns |= ret_names[i].bit;
			return 0;
		}
	snprintf(msg, msglen,
	         "parameter 'returns' has unknown item '%s'; valid names "
	         "are " RET_NAMES_TEXT,
	         s);
	return NQ_EBADPARAM;
}

static int
parse_returns(const struct nq_value *v, struct gsn_job_opts *jo, char *msg,
              size_t msglen)
{
	jo->o.returns = 0;
	jo->want = 0;
	if (v->kind == NQ_STR)
		return add_return(v->u.str.s, jo, msg, msglen);
	if (v->kind != NQ_LIST) {
		snprintf(msg, msglen,
		         "parameter 'returns' must be a string or a list of "
		         "strings from: " RET_NAMES_TEXT);
		return NQ_EBADPARAM;
	}
	for (size_t i = 0; i < v->u.list.n; i++) {
		const struct nq_value *e = &v->u.list.items[i];
		int rc;

		if (e->kind != NQ_STR) {
			snprintf(msg, msglen,
			         "parameter 'returns' item %zu is not a string",
			         i);
			return NQ_EBADPARAM;
		}
		rc = add_return(e->u.str.s, jo, msg, msglen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* One of the words in names (NULL-terminated) → its index in *out. */
static int
parse_choice(const struct nq_map *p, const char *key, const char *const *names,
             const int *vals, int *out, const char *allowed, char *msg,
             size_t msglen)
{
	const struct nq_value *v = nq_map_get(p, key);
	const char *s = NULL;
	int rc;

	if (v == NULL || v->kind == NQ_NIL)
		return 0; /* absent or None: the default */
	rc = nq_get_str(p, key, &s, msg, msglen);
	if (rc != 0)
		return rc;
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = vals[i];
			return 0;
		}
	snprintf(msg, msglen, "parameter '%s' must be one of %s (got '%s')",
	         key, allowed, s);
	return NQ_EBADPARAM;
}

static int
parse_params(const struct nq_map *p, enum nq_dtype data_dt,
             struct gsn_job_opts *jo, char *msg, size_t msglen)
{
	static const char *const uneven_n[] = {"fast", "missing", "reference",
	                                       NULL};
	static const int uneven_v[] = {GSN_UNEVEN_FAST, GSN_UNEVEN_MISSING,
	                               GSN_UNEVEN_FAST};
	static const char *const prec_n[] = {"float64", "float32", "f64", "f32",
	                                     "<f8",     "<f4",     NULL};
	static const int prec_v[] = {KERN_F64, KERN_F32, KERN_F64,
	                             KERN_F32, KERN_F64, KERN_F32};
	static const char *const nll_n[] = {"spectral", "cholesky", "eigh",
	                                    NULL};
	static const int nll_v[] = {GSN_NLL_SPECTRAL, GSN_NLL_CHOLESKY,
	                            GSN_NLL_EIGH};
	static const char *const bic_n[] = {"loop", "closed", NULL};
	static const int bic_v[] = {GSN_BICONVEX_LOOP, GSN_BICONVEX_CLOSED};
	const struct nq_value *v;
	int rc, x, b;

	memset(jo, 0, sizeof(*jo));
	jo->o.wantshrinkage = 1;
	jo->o.returns = GSN_RET_DEFAULT;
	jo->want = 0xf; /* cN cS cNb cSb */
	jo->o.precision = data_dt == NQ_DT_F32 ? KERN_F32 : KERN_F64;
	for (size_t i = 0; p != NULL && i < p->n; i++) {
		size_t k;

		for (k = 0; k < NKEYS; k++)
			if (strcmp(p->keys[i], allowed_keys[k]) == 0)
				break;
		if (k == NKEYS) {
			snprintf(
			        msg, msglen,
			        "unknown parameter '%s'; gsn accepts "
			        "wantshrinkage, shrinklevels, returns, uneven, "
			        "precision, nll, biconvex, wantverbose",
			        p->keys[i]);
			return NQ_EBADPARAM;
		}
	}
	v = nq_map_get(p, "wantshrinkage");
	if (v != NULL && v->kind != NQ_NIL) {
		rc = nq_get_bool(p, "wantshrinkage", &b, msg, msglen);
		if (rc != 0)
			return rc;
		jo->o.wantshrinkage = b;
	}
	/* wantverbose: accepted and ignored (the fast paths print nothing) */
	v = nq_map_get(p, "shrinklevels");
	if (v != NULL && v->kind != NQ_NIL) {
		rc = parse_levels(v, jo, msg, msglen);
		if (rc != 0)
			return rc;
	}
	v = nq_map_get(p, "returns");
	if (v != NULL && v->kind != NQ_NIL) {
		rc = parse_returns(v, jo, msg, msglen);
		if (rc != 0)
			return rc;
	}
	x = GSN_UNEVEN_FAST;
	rc = parse_choice(p, "uneven", uneven_n, uneven_v, &x,
	                  "'fast', 'missing'", msg, msglen);
	if (rc != 0)
		return rc;
	jo->o.uneven = (enum gsn_uneven) x;
	x = jo->o.precision;
	rc = parse_choice(p, "precision", prec_n, prec_v, &x,
	                  "'float64', 'float32'", msg, msglen);
	if (rc != 0)
		return rc;
	jo->o.precision = (enum kern_dtype) x;
	x = GSN_NLL_SPECTRAL;
	rc = parse_choice(p, "nll", nll_n, nll_v, &x,
	                  "'spectral', 'cholesky', 'eigh'", msg, msglen);
	if (rc != 0)
		return rc;
	jo->o.nll = (enum gsn_nll) x;
	x = GSN_BICONVEX_LOOP;
	rc = parse_choice(p, "biconvex", bic_n, bic_v, &x, "'loop', 'closed'",
	                  msg, msglen);
	if (rc != 0)
		return rc;
	jo->o.biconvex = (enum gsn_biconvex) x;
	return 0;
}

static int
get_data(const struct nq_map *inputs, const struct nq_array **a, char *msg,
         size_t msglen)
{
	int rc;

	*a = NULL;
	rc = nq_get_array(inputs, "data", a, msg, msglen);
	if (rc == 0 && *a == NULL) {
		snprintf(msg, msglen,
		         "input 'data' is required: a units x conditions x "
		         "trials float64 or float32 array");
		return NQ_EBADARRAY;
	}
	if (rc != 0)
		return NQ_EBADARRAY;
	if ((*a)->ndim != 3) {
		snprintf(msg, msglen,
		         "input 'data' must be 3-D (units x conditions x "
		         "trials), got %d-D",
		         (*a)->ndim);
		return NQ_EBADARRAY;
	}
	if ((*a)->dtype != NQ_DT_F64 && (*a)->dtype != NQ_DT_F32) {
		snprintf(msg, msglen,
		         "input 'data' must be float64 or float32, got %s",
		         nq_dtype_str((*a)->dtype));
		return NQ_EBADARRAY;
	}
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

	rc = get_data(inputs, &a, msg, msglen);
	if (rc != 0)
		return rc;
	rc = parse_params(params, a->dtype, &jo, msg, msglen);
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
	rc = get_data(inputs, &a, msg, sizeof(msg));
	if (rc != 0)
		return rc;
	rc = parse_params(params, a->dtype, &jo, msg, sizeof(msg));
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

/* Moves a host double array into out[key] in dtype dt with the shape. */
static int
put_array(struct nq_map *out, const char *key, const double *h,
          enum nq_dtype dt, int ndim, const int64_t *shape)
{
	struct nq_array a;
	int64_t cnt;
	int rc = nq_array_init(&a, dt, ndim, shape);

	if (rc != 0)
		return rc;
	cnt = nq_array_count(&a);
	for (int64_t i = 0; i < cnt; i++) {
		if (dt == NQ_DT_F64)
			((double *) a.data)[i] = h[i];
		else
			((float *) a.data)[i] = (float) h[i];
	}
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
	struct nq_value list = {.kind = NQ_LIST};
	int rc;

	list.u.list.items = calloc(NWARN, sizeof(struct nq_value));
	if (list.u.list.items == NULL)
		return NQ_ENOMEM;
	for (size_t i = 0; i < NWARN; i++) {
		struct nq_value *it = &list.u.list.items[list.u.list.n];

		if (!(w & warn_texts[i].bit))
			continue;
		it->kind = NQ_STR;
		it->u.str.s = strdup(warn_texts[i].text);
		if (it->u.str.s == NULL) {
			it->kind = NQ_NIL;
			nq_value_free(&list);
			return NQ_ENOMEM;
		}
		it->u.str.len = strlen(it->u.str.s);
		list.u.list.n++;
	}
	rc = nq_map_set(out, "warnings", &list);
	nq_value_free(&list);
	return rc;
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
fill_output(const struct gsn_result *r, const struct gsn_job_opts *jo,
            struct nq_map *out, char *msg, size_t msglen)
{
	enum nq_dtype dt = jo->o.precision == KERN_F32 ? NQ_DT_F32 : NQ_DT_F64;
	int64_t row[2] = {1, r->n}, vec[1] = {r->n}, mat[2] = {r->n, r->n};
	int64_t lv[1] = {r->nlevels};
	const double *mats[NRET] = {
	        r->cN,
	        r->cS,
	        r->cNb,
	        r->cSb,
	        r->eigvecs_signal,
	        r->eigvals_signal,
	        r->eigvecs_difference,
	        r->eigvals_difference,
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
	if ((rc = put_array(out, key = "mnN", r->mnN, dt, 2, row)) ||
	    (rc = put_array(out, key = "mnS", r->mnS, dt, 2, row)) ||
	    (rc = put_array(out, key = "ncsnr", r->ncsnr, dt, 1, vec)))
		goto fail;
	for (size_t i = 0; i < NRET; i++) {
		int is_vals = strncmp(ret_names[i].name, "eigvals", 7) == 0;

		if (!(jo->want & (1u << i)) || mats[i] == NULL)
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
	    (rc = put_array(out, key = "shrinklevels", levels, NQ_DT_F64, 1,
	                    lv)) ||
	    (rc = put_array(out, key = "nllN", r->nllN, NQ_DT_F64, 1, lv)) ||
	    (rc = put_array(out, key = "nllD", r->nllD, NQ_DT_F64, 1, lv)) ||
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
	rc = get_data(inputs, &a, msg, msglen);
	if (rc != 0)
		return rc;
	rc = parse_params(params, a->dtype, &jo, msg, msglen);
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
        .validate = gsn_job_validate,
        .estimate = gsn_job_estimate,
        .run = gsn_job_run,
};
