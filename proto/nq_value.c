/* nq_value.c — the value tree: dtypes, arrays, maps, copy/free, getters. */
#include "nq_value.h"

#include "nq_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nq_dtinfo {
	const char *str;  /* numpy dtype.str, what we write */
	const char *name; /* numpy dtype.name, also accepted */
	size_t size;
};

static const struct nq_dtinfo nq_dtinfo[NQ_DT_COUNT] = {
        [NQ_DT_F64] = {"<f8", "float64", 8},
        [NQ_DT_F32] = {"<f4", "float32", 4},
        [NQ_DT_I16] = {"<i2", "int16", 2},
        [NQ_DT_I32] = {"<i4", "int32", 4},
        [NQ_DT_I64] = {"<i8", "int64", 8},
        [NQ_DT_U8] = {"|u1", "uint8", 1},
        [NQ_DT_BOOL] = {"|b1", "bool", 1},
};

static int
nq_dt_ok(enum nq_dtype dt)
{
	return (int) dt >= 0 && dt < NQ_DT_COUNT;
}

size_t
nq_dtype_size(enum nq_dtype dt)
{
	return nq_dt_ok(dt) ? nq_dtinfo[dt].size : 0;
}

const char *
nq_dtype_str(enum nq_dtype dt)
{
	return nq_dt_ok(dt) ? nq_dtinfo[dt].str : "?";
}

int
nq_dtype_parse(const char *s, enum nq_dtype *dt)
{
	if (s == NULL)
		return NQ_EBADARRAY;
	for (int i = 0; i < NQ_DT_COUNT; i++) {
		if (strcmp(s, nq_dtinfo[i].str) == 0 ||
		    strcmp(s, nq_dtinfo[i].name) == 0) {
			*dt = (enum nq_dtype) i;
			return 0;
		}
	}
	return NQ_EBADARRAY;
}

int64_t
nq_array_count(const struct nq_array *a)
{
	int64_t n = 1;

	for (int i = 0; i < a->ndim; i++)
		n *= a->shape[i];
	return n;
}

/* Checks dt and shape and gives the array's bytes. */
static int
array_bytes(enum nq_dtype dt, int ndim, const int64_t *shape, size_t *bytes)
{
	size_t isz = nq_dtype_size(dt);
	uint64_t n = 1;

	if (isz == 0 || ndim < 0 || ndim > NQ_MAXDIM ||
	    (ndim > 0 && shape == NULL))
		return NQ_EBADARRAY;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return NQ_EBADARRAY;
		if (shape[i] != 0 &&
		    n > (uint64_t) INT64_MAX / isz / (uint64_t) shape[i])
			return NQ_EBADARRAY;
		n *= (uint64_t) shape[i];
	}
	if (n * isz > SIZE_MAX)
		return NQ_EBADARRAY;
	*bytes = (size_t) (n * isz);
	return 0;
}

static void
array_set(struct nq_array *a, enum nq_dtype dt, int ndim, const int64_t *shape,
          void *data, size_t bytes)
{
	a->data = data;
	a->dtype = dt;
	a->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		a->shape[i] = shape[i];
	a->nbytes = bytes;
}

int
nq_array_init(struct nq_array *a, enum nq_dtype dt, int ndim,
              const int64_t *shape)
{
	size_t bytes;
	void *data;
	int rc;

	memset(a, 0, sizeof(*a));
	rc = array_bytes(dt, ndim, shape, &bytes);
	if (rc != 0)
		return rc;
	/* calloc(0) may give NULL; keep data non-NULL for every array. */
	data = calloc(bytes ? bytes : 1, 1);
	if (data == NULL)
		return NQ_ENOMEM;
	array_set(a, dt, ndim, shape, data, bytes);
	return 0;
}

int
nq_array_adopt(struct nq_array *a, enum nq_dtype dt, int ndim,
               const int64_t *shape, void *data)
{
	size_t bytes;
	int rc;

	memset(a, 0, sizeof(*a));
	if (data == NULL)
		return NQ_EBADARRAY;
	rc = array_bytes(dt, ndim, shape, &bytes);
	if (rc == 0)
		array_set(a, dt, ndim, shape, data, bytes);
	return rc;
}

void
nq_array_fini(struct nq_array *a)
{
	if (a == NULL)
		return;
	if (!a->borrowed)
		free(a->data);
	a->data = NULL;
	a->nbytes = 0;
	a->borrowed = 0;
}

/* ---- maps */

struct nq_map *
nq_map_new(void)
{
	return calloc(1, sizeof(struct nq_map));
}

void
nq_map_free(struct nq_map *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->keys[i]);
		nq_value_free(&m->vals[i]);
	}
	free(m->keys);
	free(m->vals);
	free(m);
}

static long
nq_map_find(const struct nq_map *m, const char *key)
{
	if (m == NULL || key == NULL)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		if (strcmp(m->keys[i], key) == 0)
			return (long) i;
	}
	return -1;
}

const struct nq_value *
nq_map_get(const struct nq_map *m, const char *key)
{
	long i = nq_map_find(m, key);

	return i < 0 ? NULL : &m->vals[i];
}

static int
nq_map_grow(struct nq_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : 8;
	char **k;
	struct nq_value *v;

	k = realloc(m->keys, cap * sizeof(*k));
	if (k == NULL)
		return NQ_ENOMEM;
	m->keys = k;
	v = realloc(m->vals, cap * sizeof(*v));
	if (v == NULL)
		return NQ_ENOMEM;
	m->vals = v;
	m->cap = cap;
	return 0;
}

int
nq_map_set(struct nq_map *m, const char *key, struct nq_value *v)
{
	long i;
	char *k;

	if (m == NULL || key == NULL || v == NULL)
		return NQ_EINTERNAL;
	i = nq_map_find(m, key);
	if (i >= 0) {
		nq_value_free(&m->vals[i]);
		/* i >= 0: n > 0, vals set */
		// NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
		m->vals[i] = *v;
		v->kind = NQ_NIL;
		return 0;
	}
	if (m->n == m->cap && nq_map_grow(m) != 0)
		return NQ_ENOMEM;
	k = strdup(key);
	if (k == NULL)
		return NQ_ENOMEM;
	m->keys[m->n] = k;
	m->vals[m->n] = *v;
	m->n++;
	v->kind = NQ_NIL;
	return 0;
}

/* Set a value that owns nothing; on failure there is nothing to free. */
static int
nq_map_set_plain(struct nq_map *m, const char *key, struct nq_value v)
{
	return nq_map_set(m, key, &v);
}

int
nq_map_set_int(struct nq_map *m, const char *key, int64_t i)
{
	struct nq_value v = {.kind = NQ_INT, .u.i = i};

	return nq_map_set_plain(m, key, v);
}

int
nq_map_set_float(struct nq_map *m, const char *key, double f)
{
	struct nq_value v = {.kind = NQ_FLOAT, .u.f = f};

	return nq_map_set_plain(m, key, v);
}

int
nq_map_set_bool(struct nq_map *m, const char *key, int b)
{
	struct nq_value v = {.kind = NQ_BOOL, .u.b = b != 0};

	return nq_map_set_plain(m, key, v);
}

int
nq_map_set_nil(struct nq_map *m, const char *key)
{
	struct nq_value v = {.kind = NQ_NIL};

	return nq_map_set_plain(m, key, v);
}

int
nq_map_set_str(struct nq_map *m, const char *key, const char *s)
{
	struct nq_value v = {.kind = NQ_STR};
	int rc;

	if (s == NULL)
		return NQ_EINTERNAL;
	v.u.str.len = strlen(s);
	v.u.str.s = strdup(s);
	if (v.u.str.s == NULL)
		return NQ_ENOMEM;
	rc = nq_map_set(m, key, &v);
	nq_value_free(&v);
	return rc;
}

int
nq_map_set_strs(struct nq_map *m, const char *key, const char *const *s,
                size_t n)
{
	struct nq_value v = {.kind = NQ_LIST};
	int rc = 0;

	v.u.list.items = calloc(n ? n : 1, sizeof(struct nq_value));
	if (v.u.list.items == NULL)
		return NQ_ENOMEM;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct nq_value *it = &v.u.list.items[i];

		if (s[i] == NULL) {
			rc = NQ_EINTERNAL;
			break;
		}
		it->u.str.s = strdup(s[i]);
		if (it->u.str.s == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		it->kind = NQ_STR;
		it->u.str.len = strlen(s[i]);
		v.u.list.n++;
	}
	if (rc == 0)
		rc = nq_map_set(m, key, &v);
	nq_value_free(&v);
	return rc;
}

int
nq_map_set_array(struct nq_map *m, const char *key, struct nq_array *a)
{
	struct nq_value v = {.kind = NQ_ARRAY};
	int rc;

	if (a == NULL || a->data == NULL)
		return NQ_EINTERNAL;
	v.u.arr = *a;
	rc = nq_map_set(m, key, &v);
	if (rc == 0)
		a->data = NULL;
	return rc;
}

struct nq_value
nq_val_map(struct nq_map *m)
{
	struct nq_value v = {.kind = NQ_MAP, .u.map = m};

	return v;
}

/* ---- free / copy */

void
nq_value_free(struct nq_value *v)
{
	if (v == NULL)
		return;
	switch (v->kind) {
	case NQ_STR:
		free(v->u.str.s);
		break;
	case NQ_BIN:
		free(v->u.bin.p);
		break;
	case NQ_ARRAY:
		nq_array_fini(&v->u.arr);
		break;
	case NQ_LIST:
		for (size_t i = 0; i < v->u.list.n; i++)
			nq_value_free(&v->u.list.items[i]);
		free(v->u.list.items);
		break;
	case NQ_MAP:
		nq_map_free(v->u.map);
		break;
	default:
		break;
	}
	memset(v, 0, sizeof(*v));
	v->kind = NQ_NIL;
}

static void *
nq_memdup(const void *p, size_t n, size_t extra)
{
	char *q = malloc(n + extra ? n + extra : 1);

	if (q != NULL && n > 0)
		memcpy(q, p, n);
	return q;
}

int
nq_value_copy(struct nq_value *dst, const struct nq_value *src)
{
	struct nq_value v = *src;
	int rc = 0;

	switch (src->kind) {
	case NQ_STR:
		v.u.str.s = nq_memdup(src->u.str.s, src->u.str.len, 1);
		if (v.u.str.s == NULL)
			goto nomem;
		v.u.str.s[src->u.str.len] = '\0';
		break;
	case NQ_BIN:
		v.u.bin.p = nq_memdup(src->u.bin.p, src->u.bin.len, 0);
		if (v.u.bin.p == NULL)
			goto nomem;
		break;
	case NQ_ARRAY:
		v.u.arr.data = nq_memdup(src->u.arr.data, src->u.arr.nbytes, 0);
		v.u.arr.borrowed = 0; /* a copy is its own */
		if (v.u.arr.data == NULL)
			goto nomem;
		break;
	case NQ_LIST:
		v.u.list.items = calloc(src->u.list.n ? src->u.list.n : 1,
		                        sizeof(struct nq_value));
		if (v.u.list.items == NULL)
			goto nomem;
		for (size_t i = 0; i < src->u.list.n; i++) {
			rc = nq_value_copy(&v.u.list.items[i],
			                   &src->u.list.items[i]);
			if (rc != 0) {
				v.u.list.n = i;
				nq_value_free(&v);
				goto fail;
			}
		}
		break;
	case NQ_MAP:
		v.u.map = nq_map_new();
		if (v.u.map == NULL)
			goto nomem;
		for (size_t i = 0; src->u.map != NULL && i < src->u.map->n;
		     i++) {
			struct nq_value c;

			rc = nq_value_copy(&c, &src->u.map->vals[i]);
			if (rc == 0) {
				rc = nq_map_set(v.u.map, src->u.map->keys[i],
				                &c);
				nq_value_free(&c);
			}
			if (rc != 0) {
				nq_value_free(&v);
				goto fail;
			}
		}
		break;
	default:
		break;
	}
	*dst = v;
	return 0;
nomem:
	rc = NQ_ENOMEM;
fail:
	memset(dst, 0, sizeof(*dst));
	dst->kind = NQ_NIL;
	return rc;
}

/* ---- typed getters */

static const char *
nq_kind_name(enum nq_kind k)
{
	static const char *const names[] = {"nil",   "bool", "int",
	                                    "float", "str",  "bin",
	                                    "array", "list", "map"};

	return (unsigned) k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

int
nq_has(const struct nq_map *m, const char *key)
{
	return nq_map_get(m, key) != NULL;
}

/* NQ_OK with *out the value, NQ_OK with *out NULL when absent, or
 * NQ_EBADPARAM. */
static int
nq_get_kind(const struct nq_map *m, const char *key, const char *want,
            int ok_mask, const struct nq_value **out, char *msg, size_t msglen)
{
	const struct nq_value *v = nq_map_get(m, key);

	*out = NULL;
	if (v == NULL)
		return NQ_OK;
	if (!(ok_mask & (1 << v->kind))) {
		if (msg != NULL && msglen > 0)
			snprintf(msg, msglen,
			         "parameter '%s' must be %s, got %s", key, want,
			         nq_kind_name(v->kind));
		return NQ_EBADPARAM;
	}
	*out = v;
	return 0;
}

int
nq_get_int(const struct nq_map *m, const char *key, int64_t *out, char *msg,
           size_t msglen)
{
	const struct nq_value *v;
	int rc =
	        nq_get_kind(m, key, "an integer", 1 << NQ_INT, &v, msg, msglen);

	if (rc == 0 && v != NULL)
		*out = v->u.i;
	return rc;
}

int
nq_get_float(const struct nq_map *m, const char *key, double *out, char *msg,
             size_t msglen)
{
	const struct nq_value *v;
	int rc = nq_get_kind(m, key, "a number",
	                     (1 << NQ_INT) | (1 << NQ_FLOAT), &v, msg, msglen);

	if (rc == 0 && v != NULL)
		*out = v->kind == NQ_INT ? (double) v->u.i : v->u.f;
	return rc;
}

int
nq_get_bool(const struct nq_map *m, const char *key, int *out, char *msg,
            size_t msglen)
{
	const struct nq_value *v;
	int rc = nq_get_kind(m, key, "a bool", (1 << NQ_BOOL) | (1 << NQ_INT),
	                     &v, msg, msglen);

	if (rc != 0 || v == NULL)
		return rc;
	if (v->kind == NQ_INT) {
		if (v->u.i != 0 && v->u.i != 1) {
			if (msg != NULL && msglen > 0)
				snprintf(msg, msglen,
				         "parameter '%s' must be a bool (or "
				         "0/1), "
				         "got %lld",
				         key, (long long) v->u.i);
			return NQ_EBADPARAM;
		}
		*out = (int) v->u.i;
	} else {
		*out = v->u.b != 0;
	}
	return 0;
}

int
nq_get_str(const struct nq_map *m, const char *key, const char **out, char *msg,
           size_t msglen)
{
	const struct nq_value *v;
	int rc = nq_get_kind(m, key, "a string", 1 << NQ_STR, &v, msg, msglen);

	if (rc == 0 && v != NULL)
		*out = v->u.str.s;
	return rc;
}

int
nq_get_map(const struct nq_map *m, const char *key, const struct nq_map **out,
           char *msg, size_t msglen)
{
	const struct nq_value *v;
	int rc = nq_get_kind(m, key, "a map", 1 << NQ_MAP, &v, msg, msglen);

	if (rc == 0 && v != NULL)
		*out = v->u.map;
	return rc;
}

int
nq_get_array(const struct nq_map *m, const char *key,
             const struct nq_array **out, char *msg, size_t msglen)
{
	const struct nq_value *v;
	int rc = nq_get_kind(m, key, "an array ({dtype, shape, data})",
	                     1 << NQ_ARRAY, &v, msg, msglen);

	if (rc == 0 && v != NULL)
		*out = &v->u.arr;
	return rc;
}
