/* nq_codec.c — msgpack bytes <-> nq_value (nq_decode / nq_encode). */
#include "nq_check.h"
#include "nq_error.h"
#include "nq_utf8.h"
#include "nq_value.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Decoded trees cost at most ~100 bytes per input byte (a one-byte nil in a
 * list becomes a struct nq_value); the budget is a hard ceiling on what one
 * message may make us allocate, on top of msgpack-c's zone (<= 24 bytes per
 * input byte once nq_check has run).
 */
#define NQ_DEC_BUDGET_PER_BYTE 128
#define NQ_DEC_BUDGET_BASE     4096

struct nq_dec {
	size_t budget;
	int inplace; /* big arrays borrow the message's bytes */
	char path[256];
	size_t plen;
	char *err;
	size_t errlen;
};

static const char *const nq_dtname[NQ_DT_COUNT] = {
        "float64", "float32", "int16", "int32", "int64", "uint8", "bool"};

static int
nq_dec_fail(struct nq_dec *d, int code, const char *fmt, ...)
{
	va_list ap;

	if (d->err != NULL && d->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static const char *
nq_dec_where(struct nq_dec *d)
{
	return d->plen ? d->path : "(top level)";
}

static void *
nq_dec_alloc(struct nq_dec *d, size_t n)
{
	if (n == 0)
		n = 1;
	if (n > d->budget)
		return NULL;
	d->budget -= n;
	return malloc(n);
}

static int
nq_dec_nomem(struct nq_dec *d, size_t n)
{
	return nq_dec_fail(d, NQ_ENOMEM,
	                   "cannot allocate %zu bytes for '%s' (out of memory "
	                   "or over the per-message budget)",
	                   n, nq_dec_where(d));
}

/* Path segments for messages: "inputs.data", "params.shrinklevels[2]". */
static size_t
nq_dec_push_key(struct nq_dec *d, const char *k, size_t klen)
{
	size_t old = d->plen;
	size_t room = sizeof(d->path) - d->plen;
	int n = snprintf(d->path + d->plen, room, "%s%.*s", d->plen ? "." : "",
	                 (int) nq_utf8_cut(k, klen, 64), k);

	if (n > 0)
		d->plen += (size_t) n < room ? (size_t) n : room - 1;
	return old;
}

static size_t
nq_dec_push_idx(struct nq_dec *d, size_t i)
{
	size_t old = d->plen;
	size_t room = sizeof(d->path) - d->plen;
	int n = snprintf(d->path + d->plen, room, "[%zu]", i);

	if (n > 0)
		d->plen += (size_t) n < room ? (size_t) n : room - 1;
	return old;
}

static void
nq_dec_pop(struct nq_dec *d, size_t old)
{
	d->plen = old;
	d->path[old] = '\0';
}

static int nq_dec_value(struct nq_dec *d, const msgpack_object *o,
                        struct nq_value *out);

/* msgpack-c leaves ptr NULL for empty str/bin; libc calls must not see it. */
static int
nq_has_nul(const char *p, size_t n)
{
	return n > 0 && memchr(p, '\0', n) != NULL;
}

static void
nq_copy(void *dst, const void *src, size_t n)
{
	if (n > 0)
		memcpy(dst, src, n);
}

static int
nq_key_is(const msgpack_object *k, const char *s)
{
	size_t n = strlen(s);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, s, n) == 0;
}

static const msgpack_object *
nq_obj_field(const msgpack_object_map *m, const char *key)
{
	for (uint32_t i = 0; i < m->size; i++) {
		if (nq_key_is(&m->ptr[i].key, key))
			return &m->ptr[i].val;
	}
	return NULL;
}

static int
nq_is_array_map(const msgpack_object_map *m)
{
	return m->size == 3 && nq_obj_field(m, "dtype") != NULL &&
	       nq_obj_field(m, "shape") != NULL &&
	       nq_obj_field(m, "data") != NULL;
}

static void
nq_fmt_shape(char *buf, size_t len, const int64_t *shape, int ndim)
{
	size_t o = 0;
	int n = snprintf(buf, len, "[");

	for (int i = 0; n > 0 && i < ndim; i++) {
		o += (size_t) n;
		if (o >= len)
			return;
		n = snprintf(buf + o, len - o, "%s%lld", i ? "," : "",
		             (long long) shape[i]);
	}
	if (n > 0 && o + (size_t) n < len)
		snprintf(buf + o + (size_t) n, len - o - (size_t) n, "]");
}

static int
nq_dec_array(struct nq_dec *d, const msgpack_object_map *m,
             struct nq_value *out)
{
	const msgpack_object *dt = nq_obj_field(m, "dtype");
	const msgpack_object *sh = nq_obj_field(m, "shape");
	const msgpack_object *da = nq_obj_field(m, "data");
	const char *where = nq_dec_where(d);
	struct nq_array a = {0};
	char dts[16], shs[200];
	uint64_t n = 1, need;
	size_t isz;

	if (dt->type != MSGPACK_OBJECT_STR || dt->via.str.size >= sizeof(dts))
		return nq_dec_fail(d, NQ_EBADARRAY,
		                   "array '%s': dtype must be a short string",
		                   where);
	nq_copy(dts, dt->via.str.ptr, dt->via.str.size);
	dts[dt->via.str.size] = '\0';
	if (nq_dtype_parse(dts, &a.dtype) != 0)
		return nq_dec_fail(d, NQ_EBADARRAY,
		                   "array '%s': unknown dtype '%s' (accepted: "
		                   "<f8 <f4 <i2 <i4 <i8 |u1 |b1)",
		                   where, dts);
	isz = nq_dtype_size(a.dtype);
	if (sh->type != MSGPACK_OBJECT_ARRAY)
		return nq_dec_fail(d, NQ_EBADARRAY,
		                   "array '%s': shape must be a list of ints",
		                   where);
	if (sh->via.array.size > NQ_MAXDIM)
		return nq_dec_fail(d, NQ_EBADARRAY,
		                   "array '%s': %u dimensions, at most %d",
		                   where, sh->via.array.size, NQ_MAXDIM);
	a.ndim = (int) sh->via.array.size;
	for (int i = 0; i < a.ndim; i++) {
		const msgpack_object *e = &sh->via.array.ptr[i];

		if (e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			return nq_dec_fail(d, NQ_EBADARRAY,
			                   "array '%s': shape[%d] is negative "
			                   "(%lld)",
			                   where, i, (long long) e->via.i64);
		if (e->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return nq_dec_fail(
			        d, NQ_EBADARRAY,
			        "array '%s': shape[%d] is not an int", where,
			        i);
		if (e->via.u64 > (uint64_t) INT64_MAX)
			return nq_dec_fail(
			        d, NQ_EBADARRAY,
			        "array '%s': shape[%d] = %llu is too "
			        "large",
			        where, i, (unsigned long long) e->via.u64);
		a.shape[i] = (int64_t) e->via.u64;
	}
	nq_fmt_shape(shs, sizeof(shs), a.shape, a.ndim);
	for (int i = 0; i < a.ndim; i++) {
		uint64_t s = (uint64_t) a.shape[i];

		if (s != 0 && n > (uint64_t) INT64_MAX / isz / s)
			return nq_dec_fail(d, NQ_EBADARRAY,
			                   "array '%s': shape %s %s overflows",
			                   where, shs, nq_dtname[a.dtype]);
		n *= s;
	}
	need = n * isz;
	if (da->type != MSGPACK_OBJECT_BIN)
		return nq_dec_fail(d, NQ_EBADARRAY,
		                   "array '%s': data must be bin (raw bytes)",
		                   where);
	if ((uint64_t) da->via.bin.size != need)
		return nq_dec_fail(d, NQ_EBADARRAY,
		                   "array '%s': shape %s %s needs %llu bytes, "
		                   "got %u",
		                   where, shs, nq_dtname[a.dtype],
		                   (unsigned long long) need, da->via.bin.size);
	if (a.dtype == NQ_DT_BOOL) {
		const uint8_t *b = (const uint8_t *) da->via.bin.ptr;

		for (uint64_t i = 0; i < n; i++) {
			if (b[i] > 1)
				return nq_dec_fail(
				        d, NQ_EBADARRAY,
				        "array '%s': bool element %llu is %u, "
				        "not 0 or 1",
				        where, (unsigned long long) i, b[i]);
		}
	}
	a.nbytes = (size_t) need;
	if (d->inplace && a.nbytes >= NQ_INPLACE_MIN) {
		/* the key "data" (>= 5 bytes) and the bin header (>= 2) lie
		 * right before the payload and are read no more: moving it
		 * back over them by at most 7 bytes aligns it, and nothing
		 * past its end is touched (nq_value.h) */
		char *src = (char *) (uintptr_t) da->via.bin.ptr;
		char *dst = src - ((uintptr_t) src % 8);

		if (dst != src)
			memmove(dst, src, a.nbytes);
		a.data = dst;
		a.borrowed = 1;
		out->kind = NQ_ARRAY;
		out->u.arr = a;
		return 0;
	}
	a.data = nq_dec_alloc(d, a.nbytes);
	if (a.data == NULL)
		return nq_dec_nomem(d, a.nbytes);
	nq_copy(a.data, da->via.bin.ptr, a.nbytes);
	out->kind = NQ_ARRAY;
	out->u.arr = a;
	return 0;
}

static int
nq_keycmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static int
nq_dec_map(struct nq_dec *d, const msgpack_object_map *om, struct nq_value *out)
{
	struct nq_map *m;
	char **sorted = NULL;
	size_t n = om->size;
	int rc;

	if (nq_is_array_map(om))
		return nq_dec_array(d, om, out);
	m = nq_dec_alloc(d, sizeof(*m));
	if (m == NULL)
		return nq_dec_nomem(d, sizeof(*m));
	memset(m, 0, sizeof(*m));
	out->kind = NQ_MAP;
	out->u.map = m;
	m->keys = nq_dec_alloc(d, n * sizeof(*m->keys));
	m->vals = nq_dec_alloc(d, n * sizeof(*m->vals));
	if (m->keys == NULL || m->vals == NULL)
		return nq_dec_nomem(d, n * sizeof(*m->vals));
	m->cap = n ? n : 1;
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *k = &om->ptr[i].key;
		size_t old;

		if (k->type != MSGPACK_OBJECT_STR)
			return nq_dec_fail(d, NQ_EPROTO,
			                   "'%s': map key is not a string",
			                   nq_dec_where(d));
		if (nq_has_nul(k->via.str.ptr, k->via.str.size))
			return nq_dec_fail(d, NQ_EPROTO,
			                   "'%s': map key contains a NUL byte",
			                   nq_dec_where(d));
		m->keys[i] = nq_dec_alloc(d, k->via.str.size + 1);
		if (m->keys[i] == NULL)
			return nq_dec_nomem(d, k->via.str.size + 1);
		nq_copy(m->keys[i], k->via.str.ptr, k->via.str.size);
		m->keys[i][k->via.str.size] = '\0';
		m->vals[i].kind = NQ_NIL;
		m->n = i + 1;
		old = nq_dec_push_key(d, k->via.str.ptr, k->via.str.size);
		rc = nq_dec_value(d, &om->ptr[i].val, &m->vals[i]);
		nq_dec_pop(d, old);
		if (rc != 0)
			return rc;
	}
	if (n < 2)
		return 0;
	/* Duplicate keys would make the message mean two things; sorting a
	 * copy keeps the check O(n log n) for hostile maps. */
	sorted = malloc(n * sizeof(*sorted));
	if (sorted == NULL)
		return nq_dec_nomem(d, n * sizeof(*sorted));
	memcpy(sorted, m->keys, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), nq_keycmp);
	rc = 0;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(sorted[i - 1], sorted[i]) == 0) {
			rc = nq_dec_fail(d, NQ_EPROTO,
			                 "'%s': duplicate map key '%.64s'",
			                 nq_dec_where(d), sorted[i]);
			break;
		}
	}
	free(sorted);
	return rc;
}

static int
nq_dec_value(struct nq_dec *d, const msgpack_object *o, struct nq_value *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = NQ_NIL;
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return 0;
	case MSGPACK_OBJECT_BOOLEAN:
		out->kind = NQ_BOOL;
		out->u.b = o->via.boolean ? 1 : 0;
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t) INT64_MAX)
			return nq_dec_fail(d, NQ_EPROTO,
			                   "'%s': integer %llu does not fit in "
			                   "int64",
			                   nq_dec_where(d),
			                   (unsigned long long) o->via.u64);
		out->kind = NQ_INT;
		out->u.i = (int64_t) o->via.u64;
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		out->kind = NQ_INT;
		out->u.i = o->via.i64;
		return 0;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		out->kind = NQ_FLOAT;
		out->u.f = o->via.f64;
		return 0;
	case MSGPACK_OBJECT_STR:
		if (nq_has_nul(o->via.str.ptr, o->via.str.size))
			return nq_dec_fail(d, NQ_EPROTO,
			                   "'%s': string contains a NUL byte",
			                   nq_dec_where(d));
		out->u.str.s = nq_dec_alloc(d, o->via.str.size + 1);
		if (out->u.str.s == NULL)
			return nq_dec_nomem(d, o->via.str.size + 1);
		nq_copy(out->u.str.s, o->via.str.ptr, o->via.str.size);
		out->u.str.s[o->via.str.size] = '\0';
		out->u.str.len = o->via.str.size;
		out->kind = NQ_STR;
		return 0;
	case MSGPACK_OBJECT_BIN:
		out->u.bin.p = nq_dec_alloc(d, o->via.bin.size);
		if (out->u.bin.p == NULL)
			return nq_dec_nomem(d, o->via.bin.size);
		nq_copy(out->u.bin.p, o->via.bin.ptr, o->via.bin.size);
		out->u.bin.len = o->via.bin.size;
		out->kind = NQ_BIN;
		return 0;
	case MSGPACK_OBJECT_ARRAY: {
		size_t n = o->via.array.size;

		out->u.list.items =
		        nq_dec_alloc(d, n * sizeof(struct nq_value));
		if (out->u.list.items == NULL)
			return nq_dec_nomem(d, n * sizeof(struct nq_value));
		out->kind = NQ_LIST;
		for (size_t i = 0; i < n; i++) {
			size_t old = nq_dec_push_idx(d, i);
			int rc = nq_dec_value(d, &o->via.array.ptr[i],
			                      &out->u.list.items[i]);

			nq_dec_pop(d, old);
			out->u.list.n = i + 1;
			if (rc != 0)
				return rc;
		}
		return 0;
	}
	case MSGPACK_OBJECT_MAP:
		return nq_dec_map(d, &o->via.map, out);
	default:
		return nq_dec_fail(d, NQ_EPROTO, "'%s': unsupported type %d",
		                   nq_dec_where(d), (int) o->type);
	}
}

static int
nq_decode_with(int inplace, const void *buf, size_t len, struct nq_value *out,
               char *err, size_t errlen)
{
	struct nq_dec d = {.inplace = inplace};
	msgpack_unpacked up;
	msgpack_unpack_return ur;
	size_t off = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	out->kind = NQ_NIL;
	d.err = err;
	d.errlen = errlen;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	rc = nq_check(buf, len, err, errlen);
	if (rc != 0)
		return rc;
	d.budget =
	        len > (SIZE_MAX - NQ_DEC_BUDGET_BASE) / NQ_DEC_BUDGET_PER_BYTE
	                ? SIZE_MAX
	                : len * NQ_DEC_BUDGET_PER_BYTE + NQ_DEC_BUDGET_BASE;
	msgpack_unpacked_init(&up);
	ur = msgpack_unpack_next(&up, buf, len, &off);
	if (ur == MSGPACK_UNPACK_NOMEM_ERROR) {
		rc = nq_dec_fail(&d, NQ_ENOMEM,
		                 "out of memory decoding %zu "
		                 "bytes",
		                 len);
		goto out;
	}
	if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
		rc = nq_dec_fail(&d, NQ_EPROTO,
		                 "malformed msgpack (parser "
		                 "status %d at byte %zu)",
		                 (int) ur, off);
		goto out;
	}
	rc = nq_dec_value(&d, &up.data, out);
	if (rc != 0)
		nq_value_free(out);
out:
	msgpack_unpacked_destroy(&up);
	return rc;
}

int
nq_decode(const void *buf, size_t len, struct nq_value *out, char *err,
          size_t errlen)
{
	return nq_decode_with(0, buf, len, out, err, errlen);
}

int
nq_decode_inplace(void *buf, size_t len, struct nq_value *out, char *err,
                  size_t errlen)
{
	return nq_decode_with(1, buf, len, out, err, errlen);
}

/* ---- encode: one pass to size the buffer, one to fill it */

struct nq_wbuf {
	char *p;
	size_t len, cap;
};

static int
nq_wcount(void *data, const char *buf, size_t len)
{
	struct nq_wbuf *w = data;

	(void) buf;
	if (len > SIZE_MAX - w->len)
		return -1;
	w->len += len;
	return 0;
}

static int
nq_wcopy(void *data, const char *buf, size_t len)
{
	struct nq_wbuf *w = data;

	if (len > w->cap - w->len)
		return -1;
	if (len > 0)
		memcpy(w->p + w->len, buf, len);
	w->len += len;
	return 0;
}

/* A str is UTF-8 on the wire (nq_utf8.h): what is not (a log or a
 * message cut inside a character) goes with U+FFFD in its place. */
static int
nq_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	size_t bad = nq_utf8_invalid_at(s, n), fixed;

	if (bad == n) {
		if (n > UINT32_MAX)
			return NQ_ETOOBIG;
		if (msgpack_pack_str(pk, n) != 0 ||
		    msgpack_pack_str_body(pk, s, n) != 0)
			return NQ_ENOMEM;
		return 0;
	}
	fixed = bad + nq_utf8_fixed_len(s + bad, n - bad);
	if (fixed > UINT32_MAX)
		return NQ_ETOOBIG;
	if (msgpack_pack_str(pk, fixed) != 0 ||
	    (bad > 0 && msgpack_pack_str_body(pk, s, bad) != 0))
		return NQ_ENOMEM;
	while (bad < n) {
		char buf[512];
		size_t k = 0;

		/* a piece at a time: at most 3 bytes out per byte in */
		while (bad < n && k + 4 * 3 <= sizeof(buf)) {
			size_t l = nq_utf8_seq(s + bad, n - bad);

			if (l == 0)
				l = 1;
			nq_utf8_fix(s + bad, l, buf + k);
			k += nq_utf8_fixed_len(s + bad, l);
			bad += l;
		}
		if (msgpack_pack_str_body(pk, buf, k) != 0)
			return NQ_ENOMEM;
	}
	return 0;
}

static int
nq_pack_value(msgpack_packer *pk, const struct nq_value *v)
{
	int rc = 0;

	switch (v->kind) {
	case NQ_NIL:
		rc = msgpack_pack_nil(pk);
		break;
	case NQ_BOOL:
		rc = v->u.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
		break;
	case NQ_INT:
		/* msgpack-c picks the smallest encoding, uint for >= 0. */
		rc = msgpack_pack_int64(pk, v->u.i);
		break;
	case NQ_FLOAT:
		rc = msgpack_pack_double(pk, v->u.f);
		break;
	case NQ_STR:
		return nq_pack_str(pk, v->u.str.s, v->u.str.len);
	case NQ_BIN:
		if (v->u.bin.len > UINT32_MAX)
			return NQ_ETOOBIG;
		rc = msgpack_pack_bin(pk, v->u.bin.len) ||
		     msgpack_pack_bin_body(pk, v->u.bin.p, v->u.bin.len);
		break;
	case NQ_ARRAY: {
		const struct nq_array *a = &v->u.arr;
		const char *dt = nq_dtype_str(a->dtype);

		if (a->nbytes > UINT32_MAX)
			return NQ_ETOOBIG;
		if (msgpack_pack_map(pk, 3) != 0 ||
		    nq_pack_str(pk, "dtype", 5) != 0 ||
		    nq_pack_str(pk, dt, strlen(dt)) != 0 ||
		    nq_pack_str(pk, "shape", 5) != 0 ||
		    msgpack_pack_array(pk, (size_t) a->ndim) != 0)
			return NQ_ENOMEM;
		for (int i = 0; i < a->ndim; i++) {
			if (msgpack_pack_int64(pk, a->shape[i]) != 0)
				return NQ_ENOMEM;
		}
		if (nq_pack_str(pk, "data", 4) != 0 ||
		    msgpack_pack_bin(pk, a->nbytes) != 0 ||
		    msgpack_pack_bin_body(pk, a->data, a->nbytes) != 0)
			return NQ_ENOMEM;
		break;
	}
	case NQ_LIST:
		if (v->u.list.n > UINT32_MAX)
			return NQ_ETOOBIG;
		if (msgpack_pack_array(pk, v->u.list.n) != 0)
			return NQ_ENOMEM;
		for (size_t i = 0; i < v->u.list.n; i++) {
			rc = nq_pack_value(pk, &v->u.list.items[i]);
			if (rc != 0)
				return rc;
		}
		break;
	case NQ_MAP: {
		const struct nq_map *m = v->u.map;
		size_t n = m ? m->n : 0;

		if (n > UINT32_MAX)
			return NQ_ETOOBIG;
		if (msgpack_pack_map(pk, n) != 0)
			return NQ_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			rc = nq_pack_str(pk, m->keys[i], strlen(m->keys[i]));
			if (rc == 0)
				rc = nq_pack_value(pk, &m->vals[i]);
			if (rc != 0)
				return rc;
		}
		break;
	}
	default:
		return NQ_EINTERNAL;
	}
	return rc != 0 ? NQ_ENOMEM : 0;
}

int
nq_encode(const struct nq_value *v, void **buf, size_t *len)
{
	struct nq_wbuf w = {0};
	msgpack_packer pk;
	int rc;

	*buf = NULL;
	*len = 0;
	msgpack_packer_init(&pk, &w, nq_wcount);
	rc = nq_pack_value(&pk, v);
	if (rc != 0)
		return rc;
	w.cap = w.len;
	w.len = 0;
	w.p = malloc(w.cap ? w.cap : 1);
	if (w.p == NULL)
		return NQ_ENOMEM;
	msgpack_packer_init(&pk, &w, nq_wcopy);
	rc = nq_pack_value(&pk, v);
	if (rc != 0 || w.len != w.cap) {
		free(w.p);
		return rc != 0 ? rc : NQ_EINTERNAL;
	}
	*buf = w.p;
	*len = w.len;
	return 0;
}
