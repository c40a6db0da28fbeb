/*
 * nq_value.h — the message model shared by the daemon, the worker, the CLI
 * and tests: a msgpack document decoded into a small tree, with typed arrays
 * recognised as leaves.
 *
 * On the wire an array is a msgpack map with exactly the keys
 *   "dtype": str   (numpy's dtype.str: "<f8" "<f4" "<i2" "<i4" "<i8" "|u1"
 * "|b1"; the names "float64" "float32" "int16" "int32" "int64" "uint8" "bool"
 * are accepted on input) "shape": array of non-negative ints (0..NQ_MAXDIM
 * entries) "data":  bin, little-endian, C order, exactly prod(shape)*itemsize
 * bytes and is decoded to NQ_ARRAY (any other map stays NQ_MAP).
 *
 * Decoding is bounded: nq_decode() first walks the raw bytes and rejects any
 * declared count that cannot fit in the bytes that remain (every element needs
 * at least one byte), nesting deeper than NQ_MAX_DEPTH, non-string map keys,
 * ext types, trailing bytes, and arrays whose dtype/shape/data disagree; only
 * then does msgpack-c see the buffer.  It never aborts on input.
 */
#ifndef NQ_VALUE_H
#define NQ_VALUE_H

#include <stddef.h>
#include <stdint.h>

#define NQ_PROTOCOL_VERSION 1
#define NQ_MAXDIM           8
#define NQ_MAX_DEPTH        16

enum nq_dtype {
	NQ_DT_F64 = 0,
	NQ_DT_F32,
	NQ_DT_I16,
	NQ_DT_I32,
	NQ_DT_I64,
	NQ_DT_U8,
	NQ_DT_BOOL,
	NQ_DT_COUNT
};

struct nq_array {
	enum nq_dtype dtype;
	int ndim;
	int64_t shape[NQ_MAXDIM];
	void *data; /* prod(shape)*itemsize bytes, malloc'd, owned */
	size_t nbytes;
	/* data points into the message nq_decode_inplace() decoded: not
	 * freed by nq_array_fini (the message must outlive the array) */
	int borrowed;
};

enum nq_kind {
	NQ_NIL = 0,
	NQ_BOOL,
	NQ_INT,
	NQ_FLOAT,
	NQ_STR,
	NQ_BIN,
	NQ_ARRAY,
	NQ_LIST,
	NQ_MAP
};

struct nq_map;

struct nq_value {
	enum nq_kind kind;
	union {
		int b;
		int64_t i;
		double f;
		struct {
			char *s; /* NUL-terminated; may contain no NUL inside */
			size_t len;
		} str;
		struct {
			void *p;
			size_t len;
		} bin;
		struct nq_array arr;
		struct {
			struct nq_value *items;
			size_t n;
		} list;
		struct nq_map *map;
	} u;
};

struct nq_map {
	size_t n, cap;
	char **keys;
	struct nq_value *vals;
};

/* dtype helpers */
size_t nq_dtype_size(enum nq_dtype dt);
const char *nq_dtype_str(enum nq_dtype dt);           /* "<f8" ... */
int nq_dtype_parse(const char *s, enum nq_dtype *dt); /* 0 or NQ_EBADARRAY */
int64_t nq_array_count(const struct nq_array *a);     /* prod(shape) */
/* Allocate data for dtype/shape (zeroed). 0 or NQ_ENOMEM / NQ_EBADARRAY. */
int nq_array_init(struct nq_array *a, enum nq_dtype dt, int ndim,
                  const int64_t *shape);
/* An array over data (malloc'd, at least prod(shape) items of dt), which
 * it owns from then on (nq_array_fini frees it): a result handed over
 * without a copy. 0, or NQ_EBADARRAY (a bad shape or NULL data: data is
 * still the caller's). */
int nq_array_adopt(struct nq_array *a, enum nq_dtype dt, int ndim,
                   const int64_t *shape, void *data);
void nq_array_fini(struct nq_array *a);

/* Decode one msgpack document of len bytes. On error returns an nq_err code
 * (NQ_EPROTO, NQ_EBADARRAY, NQ_ENOMEM) and writes a human message to err.
 * Allocation is bounded by a small multiple of len. */
int nq_decode(const void *buf, size_t len, struct nq_value *out, char *err,
              size_t errlen);
/* nq_decode, except that an array of at least NQ_INPLACE_MIN bytes keeps
 * its data in buf (borrowed, not copied): the payload is moved back by at
 * most 7 bytes, over its own "data" key and bin header, so that it starts
 * 8-byte aligned. buf is changed; it must outlive out (free out first, or
 * free out whenever: borrowed data is never freed). Smaller arrays are
 * copied as nq_decode does. */
#define NQ_INPLACE_MIN 65536
int nq_decode_inplace(void *buf, size_t len, struct nq_value *out, char *err,
                      size_t errlen);
/* Encode to a malloc'd buffer. 0 or NQ_ENOMEM. */
int nq_encode(const struct nq_value *v, void **buf, size_t *len);
void nq_value_free(struct nq_value *v); /* frees contents, leaves NQ_NIL */
int nq_value_copy(struct nq_value *dst, const struct nq_value *src);

/* maps */
struct nq_map *nq_map_new(void);
void nq_map_free(struct nq_map *m);
/* NULL when absent. */
const struct nq_value *nq_map_get(const struct nq_map *m, const char *key);
/* Set takes ownership of *v (leaves it NQ_NIL); replaces an existing key. */
int nq_map_set(struct nq_map *m, const char *key, struct nq_value *v);
int nq_map_set_int(struct nq_map *m, const char *key, int64_t i);
int nq_map_set_float(struct nq_map *m, const char *key, double f);
int nq_map_set_bool(struct nq_map *m, const char *key, int b);
int nq_map_set_str(struct nq_map *m, const char *key, const char *s);
int nq_map_set_nil(struct nq_map *m, const char *key);
/* m[key] = a list of copies of the n strings s[0..n) (an empty list when
 * n = 0). */
int nq_map_set_strs(struct nq_map *m, const char *key, const char *const *s,
                    size_t n);
/* Moves the array into the map (a->data becomes NULL). */
int nq_map_set_array(struct nq_map *m, const char *key, struct nq_array *a);
/* Value constructors */
struct nq_value nq_val_map(struct nq_map *m); /* takes ownership */

/* Is the key in the map (with any value, nil included)? 1 or 0. */
int nq_has(const struct nq_map *m, const char *key);
/* Typed getters; every return is an nq_error code:
 *   NQ_OK         the key is present with the right type: *out filled;
 *   NQ_OK         the key is absent: *out untouched (so it keeps the
 *                 caller's default; nq_has() tells the two apart);
 *   NQ_EBADPARAM  the key is present with a wrong type (nil included):
 *                 msg says which key and why, *out untouched.
 * Ints are accepted for floats; integral floats are NOT accepted for ints. */
int nq_get_int(const struct nq_map *m, const char *key, int64_t *out, char *msg,
               size_t msglen);
int nq_get_float(const struct nq_map *m, const char *key, double *out,
                 char *msg, size_t msglen);
int nq_get_bool(const struct nq_map *m, const char *key, int *out, char *msg,
                size_t msglen); /* bool or int 0/1 */
int nq_get_str(const struct nq_map *m, const char *key, const char **out,
               char *msg, size_t msglen);
int nq_get_map(const struct nq_map *m, const char *key,
               const struct nq_map **out, char *msg, size_t msglen);
int nq_get_array(const struct nq_map *m, const char *key,
                 const struct nq_array **out, char *msg, size_t msglen);

#endif
