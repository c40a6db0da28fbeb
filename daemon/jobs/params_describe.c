/*
 * params_describe.c — a job type's table (params.h) as the map the
 * protocol's `describe` op serves (proto/PROTOCOL.md §5, describe).
 */
#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nq_error.h"

static const char *const type_names[] = {
        [PARAM_BOOL] = "bool",   [PARAM_INT] = "int",
        [PARAM_FLOAT] = "float", [PARAM_STR] = "str",
        [PARAM_PATH] = "path",   [PARAM_FLOATS] = "[float]",
        [PARAM_STRS] = "[str]",
};

static const char *const kind_names[] = {
        [OUT_ARRAY] = "array", [OUT_INT] = "int", [OUT_FLOAT] = "float",
        [OUT_BOOL] = "bool",   [OUT_STR] = "str", [OUT_STRS] = "[str]",
};

/* The outputs neuroq-worker adds to every job's (worker_main.c, run). */
static const struct output_def common_outputs[] = {
        {"time_s", OUT_FLOAT, 0, NULL, NULL,
         "seconds the job's run took (every job type)"},
        {"device", OUT_STR, 0, NULL, NULL,
         "the device it ran on, e.g. cpu or cuda:0 (every job type)"},
};

/* m[key] = *v; v is freed when that fails. */
static int
set_own(struct nq_map *m, const char *key, struct nq_value *v)
{
	int rc = nq_map_set(m, key, v);

	if (rc != 0)
		nq_value_free(v);
	return rc;
}

/* Appends *item (moved) to the list; item is freed when that fails. */
static int
push(struct nq_value *list, struct nq_value *item)
{
	struct nq_value *n =
	        realloc(list->u.list.items, (list->u.list.n + 1) * sizeof(*n));

	if (n == NULL) {
		nq_value_free(item);
		return NQ_ENOMEM;
	}
	list->u.list.items = n;
	n[list->u.list.n++] = *item;
	item->kind = NQ_NIL;
	return 0;
}

static int
push_str(struct nq_value *list, const char *s, size_t len)
{
	struct nq_value v = {.kind = NQ_STR};

	v.u.str.s = strndup(s, len);
	if (v.u.str.s == NULL)
		return NQ_ENOMEM;
	v.u.str.len = strlen(v.u.str.s);
	return push(list, &v);
}

/* m[key] = the words of text (split by ' '); a word of digits is an int
 * (a shape's "1"). */
static int
set_words(struct nq_map *m, const char *key, const char *text, int ints)
{
	struct nq_value l = {.kind = NQ_LIST};
	int rc = 0;

	for (const char *s = text; rc == 0 && *s != '\0';) {
		size_t n = strcspn(s, " ");

		if (n > 0 && ints && strspn(s, "0123456789") == n) {
			struct nq_value iv = {.kind = NQ_INT,
			                      .u.i = strtoll(s, NULL, 10)};
			rc = push(&l, &iv);
		} else if (n > 0) {
			rc = push_str(&l, s, n);
		}
		s += n;
		s += strspn(s, " ");
	}
	if (rc != 0) {
		nq_value_free(&l);
		return rc;
	}
	return set_own(m, key, &l);
}

static int
set_choices(struct nq_map *m, const char *key, const char *const *c)
{
	size_t n = 0;

	while (c[n] != NULL)
		n++;
	return nq_map_set_strs(m, key, c, n);
}

static int
set_dtypes(struct nq_map *m, unsigned dtypes)
{
	const char *names[NQ_DT_COUNT];
	size_t n = 0;

	for (int k = 0; k < NQ_DT_COUNT; k++)
		if (dtypes & PARAMS_DT(k))
			names[n++] = nq_dtype_str((enum nq_dtype) k);
	return nq_map_set_strs(m, "dtypes", names, n);
}

static int
set_default(struct nq_map *m, const struct param_def *p)
{
	if (!p->has_def)
		return p->def_text
		               ? nq_map_set_str(m, "default_text", p->def_text)
		               : 0;
	switch (p->type) {
	case PARAM_BOOL:
		return nq_map_set_bool(m, "default", p->def_num != 0);
	case PARAM_INT:
		return nq_map_set_int(m, "default", (int64_t) p->def_num);
	case PARAM_FLOAT:
		return nq_map_set_float(m, "default", p->def_num);
	case PARAM_STR:
	case PARAM_PATH:
		return nq_map_set_str(m, "default", p->def_str);
	case PARAM_STRS:
		return set_words(m, "default", p->def_str, 0);
	case PARAM_FLOATS:
		break;
	}
	return NQ_EINTERNAL; /* FLOATS: the default is a def_text */
}

static int
param_map(const struct param_def *p, struct nq_map *m)
{
	int rc;

	if ((rc = nq_map_set_str(m, "name", p->name)) ||
	    (rc = nq_map_set_str(m, "type", type_names[p->type])) ||
	    (rc = set_default(m, p)))
		return rc;
	if (p->type == PARAM_INT && ((rc = nq_map_set_int(m, "min", p->ilo)) ||
	                             (rc = nq_map_set_int(m, "max", p->ihi))))
		return rc;
	if ((p->type == PARAM_FLOAT || p->type == PARAM_FLOATS) &&
	    ((isfinite(p->lo) && (rc = nq_map_set_float(m, "min", p->lo))) ||
	     (isfinite(p->hi) && (rc = nq_map_set_float(m, "max", p->hi)))))
		return rc;
	if (p->type == PARAM_FLOATS &&
	    ((rc = nq_map_set_int(m, "min_items", p->ilo)) ||
	     (rc = nq_map_set_int(m, "max_items", p->ihi))))
		return rc;
	if (p->choices != NULL &&
	    (rc = set_choices(m, "choices", p->choices)) != 0)
		return rc;
	return nq_map_set_str(m, "doc", p->doc);
}

static int
input_map(const struct input_def *in, struct nq_map *m)
{
	int rc;

	if ((rc = nq_map_set_str(m, "name", in->name)) ||
	    (rc = set_dtypes(m, in->dtypes)) ||
	    (rc = set_words(m, "shape", in->shape, 1)) ||
	    (rc = nq_map_set_bool(m, "required", in->required)))
		return rc;
	return nq_map_set_str(m, "doc", in->doc);
}

static int
output_map(const struct output_def *o, struct nq_map *m)
{
	int rc;

	if ((rc = nq_map_set_str(m, "name", o->name)) ||
	    (rc = nq_map_set_str(m, "type", kind_names[o->kind])))
		return rc;
	if (o->kind == OUT_ARRAY && ((rc = set_dtypes(m, o->dtypes)) ||
	                             (rc = set_words(m, "shape", o->shape, 1))))
		return rc;
	if ((rc = nq_map_set_str(m, "when", o->when ? o->when : "always")))
		return rc;
	return nq_map_set_str(m, "doc", o->doc);
}

/* m[key] = a list of n maps, the i-th filled by fill(rows + i * size). */
static int
set_rows(struct nq_map *m, const char *key, const void *rows, size_t n,
         size_t size, int (*fill)(const void *row, struct nq_map *e))
{
	struct nq_value l = {.kind = NQ_LIST};
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct nq_map *e = nq_map_new();
		struct nq_value ev;

		if (e == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		ev = nq_val_map(e);
		if ((rc = fill((const char *) rows + i * size, e)) == 0)
			rc = push(&l, &ev);
		else
			nq_value_free(&ev);
	}
	if (rc != 0) {
		nq_value_free(&l);
		return rc;
	}
	return set_own(m, key, &l);
}

static int
fill_param(const void *row, struct nq_map *e)
{
	return param_map(row, e);
}

static int
fill_input(const void *row, struct nq_map *e)
{
	return input_map(row, e);
}

static int
fill_output(const void *row, struct nq_map *e)
{
	return output_map(row, e);
}

/* list (a list value) += the common outputs' maps */
static int
add_common(struct nq_value *list)
{
	int rc = 0;

	for (size_t i = 0;
	     rc == 0 && i < sizeof(common_outputs) / sizeof(common_outputs[0]);
	     i++) {
		struct nq_map *e = nq_map_new();
		struct nq_value ev;

		if (e == NULL)
			return NQ_ENOMEM;
		ev = nq_val_map(e);
		if ((rc = output_map(&common_outputs[i], e)) == 0)
			rc = push(list, &ev);
		else
			nq_value_free(&ev);
	}
	return rc;
}

int
params_describe(const struct job_desc *d, const char *type_name,
                struct nq_value *out)
{
	struct nq_map *m = nq_map_new(), *sym = NULL;
	struct nq_value sv;
	int rc;

	out->kind = NQ_NIL;
	if (m == NULL)
		return NQ_ENOMEM;
	*out = nq_val_map(m);
	if ((rc = nq_map_set_str(m, "name", type_name)) ||
	    (rc = nq_map_set_str(m, "summary", d->summary)) ||
	    (rc = nq_map_set_str(m, "nil",
	                         d->nil_is_default ? "default" : "refused")))
		goto fail;
	if ((sym = nq_map_new()) == NULL) {
		rc = NQ_ENOMEM;
		goto fail;
	}
	sv = nq_val_map(sym);
	for (size_t i = 0; rc == 0 && i < d->nsymbols; i++)
		rc = nq_map_set_str(sym, d->symbols[i].name, d->symbols[i].doc);
	if (rc != 0) {
		nq_value_free(&sv);
		goto fail;
	}
	if ((rc = set_own(m, "symbols", &sv)) != 0)
		goto fail;
	if ((rc = set_rows(m, "params", d->params, d->nparams,
	                   sizeof(*d->params), fill_param)) ||
	    (rc = set_rows(m, "inputs", d->inputs, d->ninputs,
	                   sizeof(*d->inputs), fill_input)) ||
	    (rc = set_rows(m, "outputs", d->outputs, d->noutputs,
	                   sizeof(*d->outputs), fill_output)))
		goto fail;
	if (rc == 0)
		rc = add_common((struct nq_value *) nq_map_get(m, "outputs"));
	if (rc != 0)
		goto fail;
	return 0;
fail:
	nq_value_free(out);
	return rc;
}
