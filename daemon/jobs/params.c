/*
 * params.c — the table-driven checks and getters of params.h.
 */
#include "params.h"

#include <stdio.h>
#include <string.h>

#include "nq_error.h"

static const char *const dtype_names[NQ_DT_COUNT] = {
        "float64", "float32", "int16", "int32", "int64", "uint8", "bool",
};

const struct param_def *
params_find(const struct job_desc *d, const char *name)
{
	for (size_t i = 0; i < d->nparams; i++)
		if (strcmp(d->params[i].name, name) == 0)
			return &d->params[i];
	return NULL;
}

static const struct input_def *
input_find(const struct job_desc *d, const char *name)
{
	for (size_t i = 0; i < d->ninputs; i++)
		if (strcmp(d->inputs[i].name, name) == 0)
			return &d->inputs[i];
	return NULL;
}

/* Appends s to buf (of n bytes, NUL-terminated), truncating. */
static void
cat(char *buf, size_t n, const char *s)
{
	size_t l = strlen(buf);

	if (l + 1 < n)
		snprintf(buf + l, n - l, "%s", s);
}

/* "'a', 'b', 'c'" of a NULL-terminated list. */
static void
choices_text(const char *const *c, char *buf, size_t n)
{
	buf[0] = '\0';
	for (size_t i = 0; c[i] != NULL; i++) {
		if (i > 0)
			cat(buf, n, ", ");
		cat(buf, n, "'");
		cat(buf, n, c[i]);
		cat(buf, n, "'");
	}
}

static int
choice_index(const char *const *c, const char *s)
{
	for (int i = 0; c != NULL && c[i] != NULL; i++)
		if (strcmp(c[i], s) == 0)
			return i;
	return -1;
}

static int
check_floats(const struct param_def *p, const struct nq_value *v, char *msg,
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
		         "parameter '%s' must be a list of numbers in [%g, %g] "
		         "or a 1-D float array",
		         p->name, p->lo, p->hi);
		return NQ_EBADPARAM;
	}
	if (n < p->ilo || n > p->ihi) {
		snprintf(msg, msglen,
		         "parameter '%s' must have %lld to %lld items (got "
		         "%lld)",
		         p->name, (long long) p->ilo, (long long) p->ihi,
		         (long long) n);
		return NQ_EBADPARAM;
	}
	for (int64_t i = 0; i < n; i++) {
		double x;

		if (v->kind == NQ_ARRAY) {
			x = v->u.arr.dtype == NQ_DT_F64
			            ? ((const double *) v->u.arr.data)[i]
			            : ((const float *) v->u.arr.data)[i];
		} else if (v->u.list.items[i].kind == NQ_FLOAT) {
			x = v->u.list.items[i].u.f;
		} else if (v->u.list.items[i].kind == NQ_INT) {
			x = (double) v->u.list.items[i].u.i;
		} else {
			snprintf(msg, msglen,
			         "parameter '%s' item %lld is not a number",
			         p->name, (long long) i);
			return NQ_EBADPARAM;
		}
		if (!(x >= p->lo && x <= p->hi)) {
			snprintf(msg, msglen,
			         "parameter '%s' item %lld = %g is not in [%g, "
			         "%g]",
			         p->name, (long long) i, x, p->lo, p->hi);
			return NQ_EBADPARAM;
		}
	}
	return 0;
}

static int
check_strs(const struct param_def *p, const struct nq_value *v, char *msg,
           size_t msglen)
{
	const struct nq_value *items = v;
	size_t n = 1;
	char all[512];

	choices_text(p->choices, all, sizeof(all));
	if (v->kind == NQ_LIST) {
		items = v->u.list.items;
		n = v->u.list.n;
	} else if (v->kind != NQ_STR) {
		snprintf(msg, msglen,
		         "parameter '%s' must be a string or a list of strings "
		         "from: %s",
		         p->name, all);
		return NQ_EBADPARAM;
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i].kind != NQ_STR) {
			snprintf(msg, msglen,
			         "parameter '%s' item %zu is not a string",
			         p->name, i);
			return NQ_EBADPARAM;
		}
		if (choice_index(p->choices, items[i].u.str.s) < 0) {
			snprintf(msg, msglen,
			         "parameter '%s' has unknown item '%s'; valid "
			         "names are %s",
			         p->name, items[i].u.str.s, all);
			return NQ_EBADPARAM;
		}
	}
	return 0;
}

/* One given parameter against its row. */
static int
check_param(const struct param_def *p, const struct nq_map *params,
            const struct nq_value *v, char *msg, size_t msglen)
{
	char all[512];
	const char *s;
	int64_t i;
	double f;
	int b, rc;

	switch (p->type) {
	case PARAM_BOOL:
		return nq_get_bool(params, p->name, &b, msg, msglen);
	case PARAM_INT:
		if ((rc = nq_get_int(params, p->name, &i, msg, msglen)) != 0)
			return rc;
		if (i < p->ilo || i > p->ihi) {
			snprintf(msg, msglen,
			         "parameter '%s' = %lld is out of range "
			         "[%lld, %lld]",
			         p->name, (long long) i, (long long) p->ilo,
			         (long long) p->ihi);
			return NQ_EBADPARAM;
		}
		return 0;
	case PARAM_FLOAT:
		if ((rc = nq_get_float(params, p->name, &f, msg, msglen)) != 0)
			return rc;
		if (!(f >= p->lo && f <= p->hi)) {
			snprintf(msg, msglen,
			         "parameter '%s' = %g is out of range [%g, %g]",
			         p->name, f, p->lo, p->hi);
			return NQ_EBADPARAM;
		}
		return 0;
	case PARAM_STR:
	case PARAM_PATH:
		if ((rc = nq_get_str(params, p->name, &s, msg, msglen)) != 0)
			return rc;
		if (p->choices != NULL && choice_index(p->choices, s) < 0) {
			choices_text(p->choices, all, sizeof(all));
			snprintf(msg, msglen,
			         "parameter '%s' must be one of %s (got '%s')",
			         p->name, all, s);
			return NQ_EBADPARAM;
		}
		return 0;
	case PARAM_FLOATS:
		return check_floats(p, v, msg, msglen);
	case PARAM_STRS:
		return check_strs(p, v, msg, msglen);
	}
	snprintf(msg, msglen, "parameter '%s': no such type", p->name);
	return NQ_EINTERNAL;
}

static int
unknown_param(const struct job_desc *d, const char *type_name, const char *key,
              char *msg, size_t msglen)
{
	snprintf(msg, msglen, "unknown parameter '%s'; %s accepts ", key,
	         type_name);
	for (size_t i = 0; i < d->nparams; i++) {
		if (i > 0)
			cat(msg, msglen, ", ");
		cat(msg, msglen, d->params[i].name);
	}
	if (d->nparams == 0)
		cat(msg, msglen, "none");
	return NQ_EBADPARAM;
}

static int
unknown_input(const struct job_desc *d, const char *type_name, const char *key,
              char *msg, size_t msglen)
{
	snprintf(msg, msglen, "unknown input '%s'; %s takes ", key, type_name);
	if (d->ninputs == 0)
		cat(msg, msglen, "no inputs");
	for (size_t i = 0; i < d->ninputs; i++) {
		if (i > 0)
			cat(msg, msglen, ", ");
		cat(msg, msglen, "'");
		cat(msg, msglen, d->inputs[i].name);
		cat(msg, msglen, "'");
	}
	return NQ_EBADPARAM;
}

/* "N × C × T" and the count of symbols of an input's shape. */
static int
shape_text(const char *shape, char *buf, size_t n)
{
	int nd = 0;

	buf[0] = '\0';
	for (const char *s = shape; *s != '\0';) {
		size_t l = strcspn(s, " ");
		char tok[32];

		if (l > 0 && l < sizeof(tok)) {
			memcpy(tok, s, l);
			tok[l] = '\0';
			if (nd++ > 0)
				cat(buf, n, " × ");
			cat(buf, n, tok);
		}
		s += l;
		s += strspn(s, " ");
	}
	return nd;
}

static int
check_input(const struct input_def *in, const struct nq_map *inputs, char *msg,
            size_t msglen)
{
	const struct nq_array *a = NULL;
	char shape[128], dts[256];
	int nd = shape_text(in->shape, shape, sizeof(shape));

	if (nq_map_get(inputs, in->name) == NULL) {
		if (!in->required)
			return 0;
		snprintf(msg, msglen, "input '%s' is required: %s", in->name,
		         in->doc);
		return NQ_EBADARRAY;
	}
	if (nq_get_array(inputs, in->name, &a, msg, msglen) != 0 || a == NULL)
		return NQ_EBADARRAY;
	if (a->ndim != nd) {
		snprintf(msg, msglen, "input '%s' must be %d-D (%s), got %d-D",
		         in->name, nd, shape, a->ndim);
		return NQ_EBADARRAY;
	}
	if (!(in->dtypes & PARAMS_DT(a->dtype))) {
		dts[0] = '\0';
		for (int k = 0; k < NQ_DT_COUNT; k++) {
			if (!(in->dtypes & PARAMS_DT(k)))
				continue;
			if (dts[0] != '\0')
				cat(dts, sizeof(dts), " or ");
			cat(dts, sizeof(dts), dtype_names[k]);
		}
		snprintf(msg, msglen, "input '%s' must be %s, got %s (%s)",
		         in->name, dts, dtype_names[a->dtype],
		         nq_dtype_str(a->dtype));
		return NQ_EBADARRAY;
	}
	return 0;
}

int
params_check(const struct job_desc *d, const char *type_name,
             const struct nq_map *params, const struct nq_map *inputs,
             char *msg, size_t msglen)
{
	int rc;

	for (size_t i = 0; params != NULL && i < params->n; i++) {
		const struct param_def *p = params_find(d, params->keys[i]);
		const struct nq_value *v = &params->vals[i];

		if (p == NULL)
			return unknown_param(d, type_name, params->keys[i], msg,
			                     msglen);
		if (v->kind == NQ_NIL && d->nil_is_default)
			continue;
		if ((rc = check_param(p, params, v, msg, msglen)) != 0)
			return rc;
	}
	for (size_t i = 0; inputs != NULL && i < inputs->n; i++)
		if (input_find(d, inputs->keys[i]) == NULL)
			return unknown_input(d, type_name, inputs->keys[i], msg,
			                     msglen);
	for (size_t i = 0; i < d->ninputs; i++) {
		static const struct nq_map empty = {0};

		rc = check_input(&d->inputs[i], inputs ? inputs : &empty, msg,
		                 msglen);
		if (rc != 0)
			return rc;
	}
	return 0;
}

const struct nq_value *
params_given(const struct job_desc *d, const struct nq_map *params,
             const char *name)
{
	const struct nq_value *v =
	        params != NULL ? nq_map_get(params, name) : NULL;

	if (v != NULL && v->kind == NQ_NIL && d->nil_is_default)
		return NULL;
	return v;
}

int
params_bool(const struct job_desc *d, const struct nq_map *params,
            const char *name)
{
	const struct nq_value *v = params_given(d, params, name);
	const struct param_def *p = params_find(d, name);

	if (v != NULL && v->kind == NQ_BOOL)
		return v->u.b != 0;
	if (v != NULL && v->kind == NQ_INT)
		return v->u.i != 0;
	return p != NULL && p->has_def && p->def_num != 0;
}

int64_t
params_int(const struct job_desc *d, const struct nq_map *params,
           const char *name)
{
	const struct nq_value *v = params_given(d, params, name);
	const struct param_def *p = params_find(d, name);

	if (v != NULL && v->kind == NQ_INT)
		return v->u.i;
	return p != NULL && p->has_def ? (int64_t) p->def_num : 0;
}

double
params_float(const struct job_desc *d, const struct nq_map *params,
             const char *name)
{
	const struct nq_value *v = params_given(d, params, name);
	const struct param_def *p = params_find(d, name);

	if (v != NULL && v->kind == NQ_FLOAT)
		return v->u.f;
	if (v != NULL && v->kind == NQ_INT)
		return (double) v->u.i;
	return p != NULL && p->has_def ? p->def_num : 0;
}

const char *
params_str(const struct job_desc *d, const struct nq_map *params,
           const char *name)
{
	const struct nq_value *v = params_given(d, params, name);
	const struct param_def *p = params_find(d, name);

	if (v != NULL && v->kind == NQ_STR)
		return v->u.str.s;
	return p != NULL && p->has_def ? p->def_str : NULL;
}

int
params_choice(const struct job_desc *d, const struct nq_map *params,
              const char *name)
{
	const struct param_def *p = params_find(d, name);
	const char *s = params_str(d, params, name);

	return p != NULL && s != NULL ? choice_index(p->choices, s) : -1;
}
