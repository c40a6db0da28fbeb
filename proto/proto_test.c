/* proto_test.c — codec, checker, map and getter tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* needs the four headers above first */

#include "nq_check.h"
#include "nq_error.h"
#include "nq_value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a tiny raw msgpack writer, so tests can build what nq_encode won't */

struct mp {
	uint8_t b[4096];
	size_t n;
};

static void
mp_raw(struct mp *m, const void *p, size_t n)
{
	assert_true(m->n + n <= sizeof(m->b));
	memcpy(m->b + m->n, p, n);
	m->n += n;
}

static void
mp_byte(struct mp *m, uint8_t c)
{
	mp_raw(m, &c, 1);
}

static void
mp_be(struct mp *m, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--)
		mp_byte(m, (uint8_t) (v >> (8 * i)));
}

static void
mp_str(struct mp *m, const char *s)
{
	size_t n = strlen(s);

	assert_true(n < 32);
	mp_byte(m, (uint8_t) (0xa0 | n));
	mp_raw(m, s, n);
}

static void
mp_map(struct mp *m, unsigned n)
{
	mp_byte(m, (uint8_t) (0x80 | n));
}

static void
mp_arr(struct mp *m, unsigned n)
{
	mp_byte(m, (uint8_t) (0x90 | n));
}

static void
mp_bin(struct mp *m, const void *p, size_t n)
{
	mp_byte(m, 0xc5);
	mp_be(m, n, 2);
	mp_raw(m, p, n);
}

/* An array leaf {"dtype": dt, "shape": [dims...], "data": bin(nbytes)} */
static void
mp_array(struct mp *m, const char *dt, int ndim, const uint64_t *dims,
         size_t nbytes)
{
	static uint8_t zeros[1024];

	mp_map(m, 3);
	mp_str(m, "dtype");
	mp_str(m, dt);
	mp_str(m, "shape");
	mp_arr(m, (unsigned) ndim);
	for (int i = 0; i < ndim; i++) {
		mp_byte(m, 0xcf);
		mp_be(m, dims[i], 8);
	}
	mp_str(m, "data");
	mp_bin(m, zeros, nbytes);
}

static int
dec(const struct mp *m, char *err, size_t errlen)
{
	struct nq_value v;
	int rc = nq_decode(m->b, m->n, &v, err, errlen);

	nq_value_free(&v);
	return rc;
}

/* ---- deep equality of trees */

static int
val_eq(const struct nq_value *a, const struct nq_value *b)
{
	if (a->kind != b->kind)
		return 0;
	switch (a->kind) {
	case NQ_NIL:
		return 1;
	case NQ_BOOL:
		return a->u.b == b->u.b;
	case NQ_INT:
		return a->u.i == b->u.i;
	case NQ_FLOAT: /* bitwise: NaN payloads and -0.0 must survive */
		// NOLINTNEXTLINE(bugprone-suspicious-memory-comparison)
		return memcmp(&a->u.f, &b->u.f, sizeof(double)) == 0;
	case NQ_STR:
		return a->u.str.len == b->u.str.len &&
		       memcmp(a->u.str.s, b->u.str.s, a->u.str.len + 1) == 0;
	case NQ_BIN:
		return a->u.bin.len == b->u.bin.len &&
		       (a->u.bin.len == 0 ||
		        memcmp(a->u.bin.p, b->u.bin.p, a->u.bin.len) == 0);
	case NQ_ARRAY:
		if (a->u.arr.dtype != b->u.arr.dtype ||
		    a->u.arr.ndim != b->u.arr.ndim ||
		    a->u.arr.nbytes != b->u.arr.nbytes)
			return 0;
		for (int i = 0; i < a->u.arr.ndim; i++) {
			if (a->u.arr.shape[i] != b->u.arr.shape[i])
				return 0;
		}
		return a->u.arr.nbytes == 0 ||
		       memcmp(a->u.arr.data, b->u.arr.data, a->u.arr.nbytes) ==
		               0;
	case NQ_LIST:
		if (a->u.list.n != b->u.list.n)
			return 0;
		for (size_t i = 0; i < a->u.list.n; i++) {
			if (!val_eq(&a->u.list.items[i], &b->u.list.items[i]))
				return 0;
		}
		return 1;
	case NQ_MAP:
		if (a->u.map->n != b->u.map->n)
			return 0;
		for (size_t i = 0; i < a->u.map->n; i++) {
			if (strcmp(a->u.map->keys[i], b->u.map->keys[i]) != 0 ||
			    !val_eq(&a->u.map->vals[i], &b->u.map->vals[i]))
				return 0;
		}
		return 1;
	}
	return 0;
}

/* Encode, decode, compare, re-encode: bytes must be identical. */
static void
roundtrip(const struct nq_value *v)
{
	void *b1, *b2;
	size_t n1, n2;
	struct nq_value d;
	char err[256];

	assert_int_equal(nq_encode(v, &b1, &n1), 0);
	assert_int_equal(nq_check(b1, n1, err, sizeof(err)), 0);
	assert_int_equal(nq_decode(b1, n1, &d, err, sizeof(err)), 0);
	assert_true(val_eq(v, &d));
	assert_int_equal(nq_encode(&d, &b2, &n2), 0);
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	free(b1);
	free(b2);
	nq_value_free(&d);
}

/* ---- tests */

static void
test_errors(void **state)
{
	static const int codes[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,
	                            9,  20, 21, 22, 23, 24, 40, 41, 42,
	                            43, 44, 45, 46, 60, 61, 62};

	assert_string_equal(nq_errname(NQ_EBADPARAM), "EBADPARAM");
	assert_string_equal(nq_errname(NQ_OK), "OK");
	assert_string_equal(nq_strerror(NQ_EBADPARAM), "invalid parameter");
	assert_int_equal(nq_errcode("ETIMEDOUT"), 62);
	assert_int_equal(nq_errcode("ENOJOB"), 20);
	assert_string_equal(nq_errname(999), "EUNKNOWN");
	assert_int_equal(nq_errcode("EBOGUS"), -1);
	assert_int_equal(nq_errcode(NULL), -1);
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		assert_int_equal(nq_errcode(nq_errname(codes[i])), codes[i]);
}

static void
fill_array(struct nq_array *a, enum nq_dtype dt, int ndim, const int64_t *shape)
{
	assert_int_equal(nq_array_init(a, dt, ndim, shape), 0);
	for (size_t i = 0; i < a->nbytes; i++)
		((uint8_t *) a->data)[i] = dt == NQ_DT_BOOL
		                                   ? (uint8_t) (i % 2)
		                                   : (uint8_t) (i * 37 + 11);
}

static void
test_roundtrip_all(void **state)
{
	struct nq_map *m = nq_map_new(), *inner = nq_map_new();
	struct nq_value v, lst, bin;
	double nan_v;
	static const int64_t ints[] = {
	        0,   1,   -1,    127,          128,       -32,      -33,
	        255, 256, 65536, 4294967296LL, INT64_MAX, INT64_MIN};
	static const int64_t shapes[][3] = {{2, 3, 4}, {5, 0, 1}, {1, 1, 1}};
	char key[32];

	assert_non_null(m);
	assert_non_null(inner);
	assert_int_equal(nq_map_set_nil(m, "nil"), 0);
	assert_int_equal(nq_map_set_bool(m, "t", 1), 0);
	assert_int_equal(nq_map_set_bool(m, "f", 0), 0);
	for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
		snprintf(key, sizeof(key), "i%zu", i);
		assert_int_equal(nq_map_set_int(m, key, ints[i]), 0);
	}
	assert_int_equal(nq_map_set_float(m, "f1", 0.1), 0);
	assert_int_equal(nq_map_set_float(m, "fneg0", -0.0), 0);
	assert_int_equal(nq_map_set_float(m, "fbig", 1e300), 0);
	assert_int_equal(nq_map_set_float(m, "finf", INFINITY), 0);
	nan_v = NAN;
	assert_int_equal(nq_map_set_float(m, "fnan", nan_v), 0);
	assert_int_equal(nq_map_set_float(m, "fint", 3.0), 0);
	assert_int_equal(nq_map_set_str(m, "s", "héllo"), 0);
	assert_int_equal(nq_map_set_str(m, "empty", ""), 0);
	assert_int_equal(nq_map_set_str(m, "", "empty key"), 0);
	bin.kind = NQ_BIN;
	bin.u.bin.len = 3;
	bin.u.bin.p = malloc(3);
	memcpy(bin.u.bin.p, "\0\1\2", 3);
	assert_int_equal(nq_map_set(m, "bin", &bin), 0);
	assert_int_equal(bin.kind, NQ_NIL);
	/* every dtype, several shapes incl. 0-d and zero-size */
	for (int dt = 0; dt < NQ_DT_COUNT; dt++) {
		for (int s = 0; s < 3; s++) {
			struct nq_array a;

			fill_array(&a, (enum nq_dtype) dt, s + 1, shapes[s]);
			snprintf(key, sizeof(key), "a%d_%d", dt, s);
			assert_int_equal(nq_map_set_array(inner, key, &a), 0);
			assert_null(a.data);
		}
		struct nq_array z;

		fill_array(&z, (enum nq_dtype) dt, 0, NULL);
		assert_int_equal(z.nbytes, nq_dtype_size((enum nq_dtype) dt));
		snprintf(key, sizeof(key), "scalar%d", dt);
		assert_int_equal(nq_map_set_array(inner, key, &z), 0);
	}
	/* a list holding a map holding a list */
	lst.kind = NQ_LIST;
	lst.u.list.n = 3;
	lst.u.list.items = calloc(3, sizeof(struct nq_value));
	lst.u.list.items[0].kind = NQ_INT;
	lst.u.list.items[0].u.i = 7;
	lst.u.list.items[1] = nq_val_map(nq_map_new());
	assert_int_equal(nq_map_set_float(lst.u.list.items[1].u.map, "x", 2.5),
	                 0);
	lst.u.list.items[2].kind = NQ_LIST;
	lst.u.list.items[2].u.list.items = calloc(1, sizeof(struct nq_value));
	assert_int_equal(nq_map_set(m, "list", &lst), 0);
	v = nq_val_map(inner);
	assert_int_equal(nq_map_set(m, "inner", &v), 0);
	v = nq_val_map(m);
	roundtrip(&v);

	/* and a deep copy is equal and independent */
	struct nq_value c;

	assert_int_equal(nq_value_copy(&c, &v), 0);
	assert_true(val_eq(&c, &v));
	assert_int_equal(nq_map_set_int(c.u.map, "i0", 99), 0);
	assert_false(val_eq(&c, &v));
	nq_value_free(&c);
	nq_value_free(&v);
	assert_int_equal(v.kind, NQ_NIL);
}

/* The bytes of s (no NUL) at p; how many. */
static size_t
put_str(uint8_t *p, const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		p[n] = (uint8_t) s[n];
	return n;
}

/* nq_decode_inplace: big arrays borrow the buffer, 8-byte aligned, at every
 * misalignment of their payload and with the "data" key first or last;
 * small ones are copied; the tree equals nq_decode's. */
/* nq_array_adopt: the array owns the caller's block (no copy), which a
 * map takes over and frees; a bad shape leaves it with the caller. */
static void
test_array_adopt(void **state)
{
	int64_t sh[2] = {3, 4}, bad[1] = {-1};
	double *d = malloc(12 * sizeof(double));
	struct nq_map *m = nq_map_new();
	struct nq_array a;
	const struct nq_value *v;

	(void) state;
	assert_non_null(d);
	assert_non_null(m);
	for (int i = 0; i < 12; i++)
		d[i] = i + 0.5;
	assert_int_equal(nq_array_adopt(&a, NQ_DT_F64, 1, bad, d),
	                 NQ_EBADARRAY);
	assert_null(a.data);
	assert_int_equal(nq_array_adopt(&a, NQ_DT_F64, 2, sh, NULL),
	                 NQ_EBADARRAY);
	assert_int_equal(nq_array_adopt(&a, NQ_DT_F64, 2, sh, d), 0);
	assert_ptr_equal(a.data, d);
	assert_int_equal(a.nbytes, 12 * sizeof(double));
	assert_int_equal(nq_array_count(&a), 12);
	assert_int_equal(a.borrowed, 0);
	assert_int_equal(nq_map_set_array(m, "x", &a), 0);
	v = nq_map_get(m, "x");
	assert_non_null(v);
	assert_ptr_equal(v->u.arr.data, d);
	assert_true(((double *) v->u.arr.data)[11] == 11.5);
	nq_map_free(m); /* frees d (ASan: no leak, no double free) */
}

static void
test_decode_inplace(void **state)
{
	struct nq_map *m = nq_map_new();
	struct nq_array big, small;
	struct nq_value v, ref, got, cp;
	int64_t n = 20000, four = 4;
	void *enc;
	size_t len;
	char err[256];

	assert_non_null(m);
	assert_int_equal(nq_array_init(&big, NQ_DT_F64, 1, &n), 0);
	for (int64_t i = 0; i < n; i++)
		((double *) big.data)[i] = (double) i * 0.5 - 3.0;
	fill_array(&small, NQ_DT_F32, 1, &four);
	assert_int_equal(nq_map_set_array(m, "big", &big), 0);
	assert_int_equal(nq_map_set_array(m, "small", &small), 0);
	assert_int_equal(nq_map_set_str(m, "s", "x"), 0);
	v = nq_val_map(m);
	assert_int_equal(nq_encode(&v, &enc, &len), 0);
	for (size_t off = 0; off < 8; off++) {
		uint8_t *buf = malloc(len + 8);
		const struct nq_array *a;

		assert_non_null(buf);
		memcpy(buf + off, enc, len);
		assert_int_equal(nq_decode(enc, len, &ref, err, sizeof(err)),
		                 0);
		assert_int_equal(nq_decode_inplace(buf + off, len, &got, err,
		                                   sizeof(err)),
		                 0);
		assert_true(val_eq(&ref, &got));
		assert_true(val_eq(&v, &got));
		assert_int_equal(
		        nq_get_array(got.u.map, "big", &a, err, sizeof(err)),
		        0);
		assert_true(a->borrowed);
		assert_int_equal((uintptr_t) a->data % 8, 0);
		assert_true((uint8_t *) a->data > buf + off &&
		            (uint8_t *) a->data + a->nbytes <= buf + off + len);
		assert_true(((const double *) a->data)[n - 1] ==
		            (double) (n - 1) * 0.5 - 3.0);
		assert_int_equal(
		        nq_get_array(got.u.map, "small", &a, err, sizeof(err)),
		        0);
		assert_false(a->borrowed);
		/* a copy owns its data */
		assert_int_equal(nq_value_copy(&cp, &got), 0);
		assert_int_equal(
		        nq_get_array(cp.u.map, "big", &a, err, sizeof(err)), 0);
		assert_false(a->borrowed);
		assert_true(val_eq(&cp, &ref));
		nq_value_free(&got); /* borrowed data is not freed */
		nq_value_free(&cp);
		nq_value_free(&ref);
		free(buf);
	}
	free(enc);
	nq_value_free(&v);

	/* "data" first (nq_encode writes it last), bin32, odd offsets: the
	 * keys after it are untouched by the move */
	for (size_t off = 0; off < 8; off++) {
		size_t nb = 70000, k = 0;
		uint8_t *buf = malloc(nb + 64), *p = buf + off;
		struct nq_value d;
		const struct nq_array *a;

		assert_non_null(buf);
		p[k++] = 0x83;
		p[k++] = 0xa4;
		k += put_str(p + k, "data");
		p[k++] = 0xc6;
		for (int i = 3; i >= 0; i--)
			p[k++] = (uint8_t) (nb >> (8 * i));
		for (size_t i = 0; i < nb; i++)
			p[k++] = (uint8_t) (i * 7);
		p[k++] = 0xa5;
		k += put_str(p + k, "dtype");
		p[k++] = 0xa3;
		k += put_str(p + k, "|u1");
		p[k++] = 0xa5;
		k += put_str(p + k, "shape");
		p[k++] = 0x91;
		p[k++] = 0xce;
		for (int i = 3; i >= 0; i--)
			p[k++] = (uint8_t) (nb >> (8 * i));
		assert_int_equal(nq_decode_inplace(p, k, &d, err, sizeof(err)),
		                 0);
		assert_int_equal(d.kind, NQ_ARRAY);
		a = &d.u.arr;
		assert_true(a->borrowed);
		assert_int_equal(a->dtype, NQ_DT_U8);
		assert_int_equal(a->nbytes, nb);
		assert_int_equal((uintptr_t) a->data % 8, 0);
		for (size_t i = 0; i < nb; i++)
			assert_int_equal(((const uint8_t *) a->data)[i],
			                 (uint8_t) (i * 7));
		nq_value_free(&d);
		free(buf);
	}
}

static void
test_int_encoding(void **state)
{
	struct nq_value v = {.kind = NQ_INT, .u.i = 5};
	void *b;
	size_t n;

	assert_int_equal(nq_encode(&v, &b, &n), 0);
	assert_int_equal(n, 1); /* positive fixint */
	free(b);
	v.u.i = -1000;
	assert_int_equal(nq_encode(&v, &b, &n), 0);
	assert_int_equal(((uint8_t *) b)[0], 0xd1); /* int16 */
	free(b);
	v.kind = NQ_FLOAT;
	v.u.f = 0.5;
	assert_int_equal(nq_encode(&v, &b, &n), 0);
	assert_int_equal(n, 9);
	assert_int_equal(((uint8_t *) b)[0], 0xcb); /* always float64 */
	free(b);
}

static void
test_decode_values(void **state)
{
	struct mp m = {0};
	struct nq_value v;
	char err[256];
	const struct nq_array *a;
	double f;
	static const uint64_t dims[] = {2};
	uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00}; /* 1.5f */

	/* {"x": [dtype name accepted], "f": 1.5f32, "u": uint64 2^63-1} */
	mp_map(&m, 3);
	mp_str(&m, "x");
	mp_array(&m, "float64", 1, dims, 16);
	mp_str(&m, "f");
	mp_raw(&m, f32, sizeof(f32));
	mp_str(&m, "u");
	mp_byte(&m, 0xcf);
	mp_be(&m, (uint64_t) INT64_MAX, 8);
	assert_int_equal(nq_decode(m.b, m.n, &v, err, sizeof(err)), 0);
	assert_int_equal(v.kind, NQ_MAP);
	assert_int_equal(nq_get_array(v.u.map, "x", &a, err, sizeof(err)), 0);
	assert_int_equal(a->dtype, NQ_DT_F64);
	assert_int_equal(a->ndim, 1);
	assert_int_equal(a->shape[0], 2);
	assert_int_equal(a->nbytes, 16);
	assert_int_equal(nq_get_float(v.u.map, "f", &f, err, sizeof(err)), 0);
	assert_true(f == 1.5);
	assert_int_equal(nq_map_get(v.u.map, "u")->u.i, INT64_MAX);
	nq_value_free(&v);

	/* a map with extra keys next to dtype/shape/data stays a map */
	m.n = 0;
	mp_map(&m, 4);
	mp_str(&m, "dtype");
	mp_str(&m, "<f8");
	mp_str(&m, "shape");
	mp_arr(&m, 0);
	mp_str(&m, "data");
	mp_bin(&m, "", 0);
	mp_str(&m, "note");
	mp_byte(&m, 0xc0);
	assert_int_equal(nq_decode(m.b, m.n, &v, err, sizeof(err)), 0);
	assert_int_equal(v.kind, NQ_MAP);
	nq_value_free(&v);
}

static void
test_truncation(void **state)
{
	struct nq_map *m = nq_map_new();
	struct nq_array a;
	struct nq_value v, d;
	static const int64_t shape[] = {3, 2};
	void *buf;
	size_t n;
	char err[256];

	assert_int_equal(nq_map_set_int(m, "v", 1), 0);
	assert_int_equal(nq_map_set_str(m, "op", "submit"), 0);
	assert_int_equal(nq_map_set_float(m, "p", 0.25), 0);
	assert_int_equal(nq_map_set_int(m, "big", 1LL << 40), 0);
	fill_array(&a, NQ_DT_F32, 2, shape);
	assert_int_equal(nq_map_set_array(m, "data", &a), 0);
	v = nq_val_map(m);
	assert_int_equal(nq_encode(&v, &buf, &n), 0);
	for (size_t i = 0; i < n; i++) {
		int rc = nq_decode(buf, i, &d, err, sizeof(err));

		assert_int_equal(rc, NQ_EPROTO);
		assert_int_equal(d.kind, NQ_NIL);
		assert_true(strlen(err) > 0);
	}
	assert_int_equal(nq_decode(buf, n, &d, err, sizeof(err)), 0);
	nq_value_free(&d);
	free(buf);
	nq_value_free(&v);
}

static void
test_huge_counts(void **state)
{
	static const uint8_t hdr[] = {0xdd, 0xdf, 0xdb, 0xc6};
	char err[256];

	for (size_t i = 0; i < sizeof(hdr); i++) {
		uint8_t b[5] = {hdr[i], 0xff, 0xff, 0xff, 0xff};
		struct nq_value v;

		assert_int_equal(nq_decode(b, 5, &v, err, sizeof(err)),
		                 NQ_EPROTO);
		assert_non_null(strstr(err, "byte 0"));
		assert_int_equal(nq_check(b, 5, NULL, 0), NQ_EPROTO);
	}
	/* a map of 3 entries needs >= 6 bytes: 5 remaining is too few */
	uint8_t m16[] = {0xde, 0x00, 0x03, 0xa0, 0xc0, 0xa0, 0xc0, 0xa0};

	assert_int_equal(nq_check(m16, sizeof(m16), err, sizeof(err)),
	                 NQ_EPROTO);
	assert_non_null(strstr(err, "3 entries"));
	uint8_t a16[] = {0xdc, 0x00, 0x03, 0xc0, 0xc0};

	assert_int_equal(nq_check(a16, sizeof(a16), err, sizeof(err)),
	                 NQ_EPROTO);
	/* str8 claiming 200 bytes with 3 present */
	uint8_t s8[] = {0xd9, 200, 'a', 'b', 'c'};

	assert_int_equal(nq_check(s8, sizeof(s8), err, sizeof(err)), NQ_EPROTO);
	assert_non_null(strstr(err, "200"));
}

static void
test_depth(void **state)
{
	struct mp m = {0};
	char err[256];

	for (int i = 0; i < NQ_MAX_DEPTH; i++)
		mp_arr(&m, 1);
	mp_byte(&m, 0xc0);
	assert_int_equal(dec(&m, err, sizeof(err)), 0);
	m.n = 0;
	for (int i = 0; i < NQ_MAX_DEPTH + 1; i++)
		mp_arr(&m, 1);
	mp_byte(&m, 0xc0);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EPROTO);
	assert_non_null(strstr(err, "nesting"));
	/* maps count too */
	m.n = 0;
	for (int i = 0; i < NQ_MAX_DEPTH + 1; i++) {
		mp_map(&m, 1);
		mp_str(&m, "k");
	}
	mp_byte(&m, 0xc0);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EPROTO);
}

static void
test_malformed(void **state)
{
	static const struct {
		const char *name;
		uint8_t b[16];
		size_t n;
	} bad[] = {
	        {"int key", {0x81, 0x01, 0xc0}, 3},
	        {"nil key", {0x81, 0xc0, 0xc0}, 3},
	        {"bin key", {0x81, 0xc4, 0x01, 'k', 0xc0}, 5},
	        {"fixext1", {0xd4, 0x01, 0x00}, 3},
	        {"ext8", {0xc7, 0x01, 0x05, 0x00}, 4},
	        {"ext in map", {0x81, 0xa1, 'k', 0xd5, 0, 0, 0}, 7},
	        {"trailing", {0xc0, 0xc0}, 2},
	        {"trailing map", {0x80, 0x00}, 2},
	        {"never used", {0xc1}, 1},
	        {"empty", {0}, 0},
	        {"str with NUL", {0xa3, 'a', 0, 'b'}, 4},
	        {"key with NUL", {0x81, 0xa2, 'a', 0, 0xc0}, 5},
	        {"dup key", {0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0x02}, 7},
	        {"uint64 > int64", {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},
	        {"truncated float64", {0xcb, 0, 0}, 3},
	};
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct nq_value v;
		int rc = nq_decode(bad[i].b, bad[i].n, &v, err, sizeof(err));

		if (rc != NQ_EPROTO)
			fail_msg("%s: got %d (%s)", bad[i].name, rc, err);
		assert_int_equal(v.kind, NQ_NIL);
	}
}

static void
test_bad_arrays(void **state)
{
	struct mp m = {0};
	char err[256];
	static const uint64_t d34[] = {3, 4}, dneg[] = {(uint64_t) -2},
	                      dhuge[] = {1ULL << 40, 1ULL << 40},
	                      d9[] = {1, 1, 1, 1, 1, 1, 1, 1, 1},
	                      dbig[] = {1ULL << 63};

	mp_map(&m, 1);
	mp_str(&m, "x");
	mp_array(&m, "<f8", 2, d34, 95);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);
	assert_string_equal(err,
	                    "array 'x': shape [3,4] float64 needs 96 bytes, "
	                    "got 95");
	m.n = 0;
	mp_map(&m, 1);
	mp_str(&m, "x");
	mp_array(&m, "<f8", 2, d34, 97);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);

	m.n = 0;
	mp_map(&m, 1);
	mp_str(&m, "inputs");
	mp_map(&m, 1);
	mp_str(&m, "data");
	mp_array(&m, ">f8", 2, d34, 96);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);
	assert_non_null(strstr(err, "'inputs.data'"));
	assert_non_null(strstr(err, "dtype"));

	/* negative dim, as a msgpack negative int */
	m.n = 0;
	mp_map(&m, 3);
	mp_str(&m, "dtype");
	mp_str(&m, "<i4");
	mp_str(&m, "shape");
	mp_arr(&m, 1);
	mp_byte(&m, 0xfe); /* -2 */
	mp_str(&m, "data");
	mp_bin(&m, "", 0);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);
	assert_non_null(strstr(err, "negative"));

	struct {
		const char *dt;
		int ndim;
		const uint64_t *dims;
		size_t nbytes;
	} bad[] = {
	        {"<f16", 1, d34, 0},  {"float", 1, d34, 0}, {"<i8", 1, dneg, 0},
	        {"<f8", 2, dhuge, 0}, {"|u1", 9, d9, 1},    {"|u1", 1, dbig, 0},
	        {"|b1", 2, d34, 0},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.n = 0;
		mp_array(&m, bad[i].dt, bad[i].ndim, bad[i].dims,
		         bad[i].nbytes);
		assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);
	}

	/* data that is not bin; shape that is not a list */
	m.n = 0;
	mp_map(&m, 3);
	mp_str(&m, "dtype");
	mp_str(&m, "|u1");
	mp_str(&m, "shape");
	mp_arr(&m, 0);
	mp_str(&m, "data");
	mp_str(&m, "x");
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);
	m.n = 0;
	mp_map(&m, 3);
	mp_str(&m, "dtype");
	mp_str(&m, "|u1");
	mp_str(&m, "shape");
	mp_byte(&m, 0x01);
	mp_str(&m, "data");
	mp_bin(&m, "x", 1);
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);

	/* bool bytes must be 0/1 */
	static const uint64_t d2[] = {2};

	m.n = 0;
	mp_map(&m, 3);
	mp_str(&m, "dtype");
	mp_str(&m, "|b1");
	mp_str(&m, "shape");
	mp_arr(&m, 1);
	mp_byte(&m, 0x02);
	mp_str(&m, "data");
	mp_bin(&m, "\x01\x05", 2);
	(void) d2;
	assert_int_equal(dec(&m, err, sizeof(err)), NQ_EBADARRAY);
}

/* The allocation budget must not reject legitimate worst cases: a long list
 * of one-byte values costs the most tree memory per input byte. */
static void
test_budget_worst_case(void **state)
{
	size_t n = 100000;
	uint8_t *b = malloc(5 + n);
	struct nq_value v;
	char err[256];

	b[0] = 0xdd;
	b[1] = (uint8_t) (n >> 24);
	b[2] = (uint8_t) (n >> 16);
	b[3] = (uint8_t) (n >> 8);
	b[4] = (uint8_t) n;
	memset(b + 5, 0x90, n); /* empty lists */
	assert_int_equal(nq_decode(b, 5 + n, &v, err, sizeof(err)), 0);
	assert_int_equal(v.kind, NQ_LIST);
	assert_int_equal(v.u.list.n, n);
	assert_int_equal(v.u.list.items[n - 1].kind, NQ_LIST);
	nq_value_free(&v);
	memset(b + 5, 0xc0, n); /* nils */
	assert_int_equal(nq_decode(b, 5 + n, &v, err, sizeof(err)), 0);
	nq_value_free(&v);
	free(b);
}

static void
test_getters(void **state)
{
	struct nq_map *m = nq_map_new();
	struct nq_array a;
	static const int64_t sh[] = {2};
	int64_t i = -5;
	double f = -5;
	int b = -5;
	const char *s = NULL;
	const struct nq_map *mm = NULL;
	const struct nq_array *aa = NULL;
	char msg[128];
	struct nq_value sub = nq_val_map(nq_map_new());

	assert_int_equal(nq_map_set_int(m, "n", 42), 0);
	assert_int_equal(nq_map_set_float(m, "x", 2.0), 0);
	assert_int_equal(nq_map_set_bool(m, "yes", 5), 0);
	assert_int_equal(nq_map_set_int(m, "one", 1), 0);
	assert_int_equal(nq_map_set_int(m, "two", 2), 0);
	assert_int_equal(nq_map_set_str(m, "name", "gsn"), 0);
	assert_int_equal(nq_map_set(m, "sub", &sub), 0);
	fill_array(&a, NQ_DT_I32, 1, sh);
	assert_int_equal(nq_map_set_array(m, "arr", &a), 0);
	assert_int_equal(nq_map_set_nil(m, "none"), 0);

	assert_int_equal(nq_get_int(m, "n", &i, msg, sizeof(msg)), 0);
	assert_int_equal(i, 42);
	/* absent: NQ_OK, the default untouched; nq_has tells */
	assert_int_equal(nq_get_int(m, "missing", &i, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(i, 42); /* untouched */
	assert_false(nq_has(m, "missing"));
	assert_true(nq_has(m, "n"));
	assert_true(nq_has(m, "none")); /* nil is present */
	assert_int_equal(nq_get_int(m, "x", &i, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_string_equal(msg, "parameter 'x' must be an integer, got float");
	assert_int_equal(nq_get_int(m, "none", &i, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_float(m, "n", &f, msg, sizeof(msg)), 0);
	assert_true(f == 42.0);
	assert_int_equal(nq_get_float(m, "x", &f, msg, sizeof(msg)), 0);
	assert_true(f == 2.0);
	assert_int_equal(nq_get_float(m, "name", &f, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_non_null(strstr(msg, "'name'"));
	assert_int_equal(nq_get_bool(m, "yes", &b, msg, sizeof(msg)), 0);
	assert_int_equal(b, 1);
	assert_int_equal(nq_get_bool(m, "one", &b, msg, sizeof(msg)), 0);
	assert_int_equal(b, 1);
	assert_int_equal(nq_get_bool(m, "two", &b, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_bool(m, "x", &b, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_str(m, "name", &s, msg, sizeof(msg)), 0);
	assert_string_equal(s, "gsn");
	assert_int_equal(nq_get_str(m, "n", &s, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_map(m, "sub", &mm, msg, sizeof(msg)), 0);
	assert_non_null(mm);
	assert_int_equal(nq_get_map(m, "arr", &mm, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_array(m, "arr", &aa, msg, sizeof(msg)), 0);
	assert_int_equal(aa->dtype, NQ_DT_I32);
	assert_int_equal(aa->nbytes, 8);
	assert_int_equal(nq_get_array(m, "sub", &aa, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_array(m, "nope", &aa, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(aa->dtype, NQ_DT_I32); /* untouched */
	assert_int_equal(nq_get_int(NULL, "n", &i, msg, sizeof(msg)), NQ_OK);
	assert_false(nq_has(NULL, "n"));

	/* replace keeps one entry */
	assert_int_equal(nq_map_set_str(m, "n", "now a string"), 0);
	assert_int_equal(nq_get_str(m, "n", &s, msg, sizeof(msg)), 0);
	assert_string_equal(s, "now a string");
	size_t count = 0;

	for (size_t k = 0; k < m->n; k++)
		count += strcmp(m->keys[k], "n") == 0;
	assert_int_equal(count, 1);
	nq_map_free(m);
}

/* Every getter, each way a key can be: absent (NQ_OK, *out kept: the
 * caller's default), wrong type (NQ_EBADPARAM, *out kept, msg names the
 * key), present (NQ_OK, *out set). Never 1 (NQ_EPROTO) for absent. */
static void
test_get_absent_wrong_present(void **state)
{
	struct nq_map *m = nq_map_new();
	struct nq_value sub = nq_val_map(nq_map_new());
	struct nq_array a;
	int64_t sh[1] = {2};
	int64_t i = -5;
	double f = -5.5;
	int b = 7;
	const char *s = "dflt";
	const struct nq_map *mm = NULL;
	const struct nq_array *aa = NULL;
	char msg[128];

	(void) state;
	assert_non_null(m);
	assert_int_equal(nq_map_set_str(m, "s", "text"), 0);
	assert_int_equal(nq_map_set_int(m, "i", 3), 0);
	assert_int_equal(nq_map_set_float(m, "f", 0.5), 0);
	assert_int_equal(nq_map_set_bool(m, "b", 0), 0);
	assert_int_equal(nq_map_set(m, "m", &sub), 0);
	fill_array(&a, NQ_DT_F64, 1, sh);
	assert_int_equal(nq_map_set_array(m, "a", &a), 0);
	assert_int_equal(nq_map_set_nil(m, "nil"), 0);

	/* absent */
	assert_int_equal(nq_get_int(m, "zz", &i, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_float(m, "zz", &f, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_bool(m, "zz", &b, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_str(m, "zz", &s, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_map(m, "zz", &mm, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_array(m, "zz", &aa, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(i, -5);
	assert_true(f == -5.5);
	assert_int_equal(b, 7);
	assert_string_equal(s, "dflt");
	assert_null(mm);
	assert_null(aa);
	assert_false(nq_has(m, "zz"));

	/* wrong type, nil included */
	static const char *const wrong_for_all[] = {"s", "nil"};
	for (size_t k = 0; k < 2; k++) {
		const char *key = wrong_for_all[k];
		msg[0] = '\0';
		assert_int_equal(nq_get_int(m, key, &i, msg, sizeof(msg)),
		                 NQ_EBADPARAM);
		assert_non_null(strstr(msg, key));
		assert_int_equal(nq_get_float(m, key, &f, msg, sizeof(msg)),
		                 NQ_EBADPARAM);
		assert_int_equal(nq_get_bool(m, key, &b, msg, sizeof(msg)),
		                 NQ_EBADPARAM);
		assert_int_equal(nq_get_map(m, key, &mm, msg, sizeof(msg)),
		                 NQ_EBADPARAM);
		assert_int_equal(nq_get_array(m, key, &aa, msg, sizeof(msg)),
		                 NQ_EBADPARAM);
		assert_true(nq_has(m, key));
	}
	assert_int_equal(nq_get_str(m, "i", &s, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(nq_get_str(m, "nil", &s, msg, sizeof(msg)),
	                 NQ_EBADPARAM);
	assert_int_equal(i, -5);
	assert_true(f == -5.5);
	assert_int_equal(b, 7);
	assert_string_equal(s, "dflt");
	assert_null(mm);
	assert_null(aa);

	/* present */
	assert_int_equal(nq_get_int(m, "i", &i, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_float(m, "f", &f, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_bool(m, "b", &b, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_str(m, "s", &s, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_map(m, "m", &mm, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(nq_get_array(m, "a", &aa, msg, sizeof(msg)), NQ_OK);
	assert_int_equal(i, 3);
	assert_true(f == 0.5);
	assert_int_equal(b, 0);
	assert_string_equal(s, "text");
	assert_non_null(mm);
	assert_non_null(aa);
	assert_int_equal(aa->dtype, NQ_DT_F64);
	nq_map_free(m);
}

static void
test_dtypes(void **state)
{
	enum nq_dtype dt;
	struct nq_array a;
	int64_t bad[] = {-1};
	int64_t ovf[] = {INT64_MAX / 4, 5};

	assert_int_equal(nq_dtype_parse("<f8", &dt), 0);
	assert_int_equal(dt, NQ_DT_F64);
	assert_int_equal(nq_dtype_parse("bool", &dt), 0);
	assert_int_equal(dt, NQ_DT_BOOL);
	assert_int_equal(nq_dtype_parse("uint8", &dt), 0);
	assert_string_equal(nq_dtype_str(dt), "|u1");
	assert_int_equal(nq_dtype_parse(">f8", &dt), NQ_EBADARRAY);
	assert_int_equal(nq_dtype_parse("<u2", &dt), NQ_EBADARRAY);
	assert_int_equal(nq_dtype_size(NQ_DT_I16), 2);
	assert_int_equal(nq_dtype_size(NQ_DT_F32), 4);
	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 1, bad), NQ_EBADARRAY);
	assert_int_equal(nq_array_init(&a, NQ_DT_F64, 2, ovf), NQ_EBADARRAY);
	assert_int_equal(nq_array_init(&a, NQ_DT_F64, NQ_MAXDIM + 1, ovf),
	                 NQ_EBADARRAY);
	int64_t ok[] = {4, 5};

	assert_int_equal(nq_array_init(&a, NQ_DT_I16, 2, ok), 0);
	assert_int_equal(nq_array_count(&a), 20);
	assert_int_equal(a.nbytes, 40);
	for (size_t i = 0; i < a.nbytes; i++)
		assert_int_equal(((uint8_t *) a.data)[i], 0);
	nq_array_fini(&a);
	assert_null(a.data);
}

/* nq_map_set_strs: a list of copies, the empty list, a NULL refused. */
static void
test_set_strs(void **state)
{
	const char *two[] = {"warning one", "bé"};
	const char *bad[] = {"x", NULL};
	struct nq_map *m = nq_map_new();
	const struct nq_value *v;
	char buf[8];

	(void) state;
	assert_non_null(m);
	snprintf(buf, sizeof(buf), "copy");
	{
		const char *mine[] = {buf};
		assert_int_equal(nq_map_set_strs(m, "one", mine, 1), 0);
	}
	buf[0] = 'X'; /* the map holds its own copy */
	assert_int_equal(nq_map_set_strs(m, "two", two, 2), 0);
	assert_int_equal(nq_map_set_strs(m, "none", NULL, 0), 0);
	assert_int_equal(nq_map_set_strs(m, "bad", bad, 2), NQ_EINTERNAL);
	assert_null(nq_map_get(m, "bad"));
	v = nq_map_get(m, "one");
	assert_non_null(v);
	assert_int_equal(v->kind, NQ_LIST);
	assert_int_equal(v->u.list.n, 1);
	assert_string_equal(v->u.list.items[0].u.str.s, "copy");
	v = nq_map_get(m, "two");
	assert_int_equal(v->u.list.n, 2);
	assert_int_equal(v->u.list.items[1].kind, NQ_STR);
	assert_int_equal(v->u.list.items[1].u.str.len, 3);
	assert_memory_equal(v->u.list.items[1].u.str.s, "bé", 3);
	v = nq_map_get(m, "none");
	assert_int_equal(v->kind, NQ_LIST);
	assert_int_equal(v->u.list.n, 0);
	nq_map_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_errors),
	        cmocka_unit_test(test_roundtrip_all),
	        cmocka_unit_test(test_set_strs),
	        cmocka_unit_test(test_decode_inplace),
	        cmocka_unit_test(test_array_adopt),
	        cmocka_unit_test(test_int_encoding),
	        cmocka_unit_test(test_decode_values),
	        cmocka_unit_test(test_truncation),
	        cmocka_unit_test(test_huge_counts),
	        cmocka_unit_test(test_depth),
	        cmocka_unit_test(test_malformed),
	        cmocka_unit_test(test_bad_arrays),
	        cmocka_unit_test(test_budget_worst_case),
	        cmocka_unit_test(test_getters),
	        cmocka_unit_test(test_get_absent_wrong_present),
	        cmocka_unit_test(test_dtypes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
