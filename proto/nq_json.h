/*
 * nq_json.h — the one JSON writer: the daemon's result.json (spool.c) and
 * the CLI's --json output (client/cli/json.c).
 *
 * A writer appends to a FILE * or to a growing buffer; separators (", "
 * between members and items, ": " after a key) are written for the caller.
 * Errors are sticky: the calls return nothing, nq_json_finish() says whether
 * everything was written (0, NQ_ENOMEM or NQ_EIO).
 *
 *	struct nq_json w;
 *	nq_json_init_buf(&w, NQ_JSON_LINES);
 *	nq_json_obj_begin(&w);
 *	nq_json_key(&w, "numiters");
 *	nq_json_int(&w, 7);
 *	nq_json_obj_end(&w);            // {\n  "numiters": 7\n}
 *	rc = nq_json_finish(&w);        // w.buf, w.len
 *	nq_json_free(&w);
 *
 * Strings: '"' and '\\' are escaped, \n \r \t as such, every other byte
 * below 0x20 as \u00XX; all other bytes (UTF-8 or not) are copied as they
 * are. Doubles: 17 significant digits (they round-trip); NaN and ±Inf have
 * no JSON spelling and are written as null.
 */
#ifndef NQ_JSON_H
#define NQ_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nq_value.h"

enum nq_json_flags {
	/* the outermost object: one member per line, indented by two */
	NQ_JSON_LINES = 1,
	/* nq_json_value: an array as {"dtype": "<f8", "shape": [3, 3],
	 * "nbytes": 72}, a bin as {"bin": 5}; without the flag both are null */
	NQ_JSON_DESCRIBE = 2,
};

struct nq_json {
	FILE *f;   /* the stream, or NULL: the buffer below */
	char *buf; /* NUL-terminated; the caller frees it with nq_json_free */
	size_t len, cap;
	int flags;
	int err;      /* first error: NQ_ENOMEM or NQ_EIO */
	int depth;    /* open objects and arrays */
	int nonempty; /* the innermost one has a member already */
	int after_key;
};

void nq_json_init_file(struct nq_json *w, FILE *f, int flags);
void nq_json_init_buf(struct nq_json *w, int flags);
/* 0, or the first error. */
int nq_json_finish(const struct nq_json *w);
void nq_json_free(struct nq_json *w);

void nq_json_obj_begin(struct nq_json *w);
void nq_json_obj_end(struct nq_json *w);
void nq_json_arr_begin(struct nq_json *w);
void nq_json_arr_end(struct nq_json *w);
/* A member's name; its value is the next call. */
void nq_json_key(struct nq_json *w, const char *key);

void nq_json_str(struct nq_json *w, const char *s, size_t len);
void nq_json_int(struct nq_json *w, int64_t i);
void nq_json_uint(struct nq_json *w, uint64_t u);
void nq_json_double(struct nq_json *w, double d);
void nq_json_bool(struct nq_json *w, int b);
void nq_json_null(struct nq_json *w);
/* A decoded value, maps in their key order (see NQ_JSON_DESCRIBE). */
void nq_json_value(struct nq_json *w, const struct nq_value *v);
/* result.json's layout (the daemon's out/result.json and `neuroq result
 * --out`): one object of m's members that are not arrays (the scalars), in
 * m's order, then a newline. Init the writer with NQ_JSON_LINES. */
void nq_json_result(struct nq_json *w, const struct nq_map *m);
/* Text copied as it is, outside the separators (a newline after a
 * document). */
void nq_json_raw(struct nq_json *w, const char *s);

#endif
