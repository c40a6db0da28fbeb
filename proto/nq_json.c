/* nq_json.c — see nq_json.h. */
#include "nq_json.h"

#include "nq_error.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void
nq_json_init_file(struct nq_json *w, FILE *f, int flags)
{
	memset(w, 0, sizeof(*w));
	w->f = f;
	w->flags = flags;
}

void
nq_json_init_buf(struct nq_json *w, int flags)
{
	nq_json_init_file(w, NULL, flags);
}

int
nq_json_finish(const struct nq_json *w)
{
	return w->err;
}

void
nq_json_free(struct nq_json *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

static void
nq_json_put(struct nq_json *w, const char *s, size_t n)
{
	if (w->err != 0)
		return;
	if (w->f != NULL) {
		if (fwrite(s, 1, n, w->f) != n)
			w->err = NQ_EIO;
		return;
	}
	if (w->len + n + 1 > w->cap) {
		size_t cap = w->cap == 0 ? 256 : w->cap;
		while (cap < w->len + n + 1)
			cap *= 2;
		char *p = realloc(w->buf, cap);
		if (p == NULL) {
			w->err = NQ_ENOMEM;
			return;
		}
		w->buf = p;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void
nq_json_puts(struct nq_json *w, const char *s)
{
	nq_json_put(w, s, strlen(s));
}

/* Before a value or a key: the separator its container needs. */
static void
nq_json_sep(struct nq_json *w)
{
	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->depth == 1 && (w->flags & NQ_JSON_LINES))
		nq_json_puts(w, w->nonempty ? ",\n  " : "\n  ");
	else if (w->nonempty)
		nq_json_puts(w, ", ");
	w->nonempty = 1;
}

static void
nq_json_begin(struct nq_json *w, const char *open)
{
	nq_json_sep(w);
	nq_json_puts(w, open);
	w->depth++;
	w->nonempty = 0;
}

static void
nq_json_end(struct nq_json *w, const char *close)
{
	if (w->depth == 1 && (w->flags & NQ_JSON_LINES) && w->nonempty)
		nq_json_puts(w, "\n");
	nq_json_puts(w, close);
	if (w->depth > 0)
		w->depth--;
	/* the container just closed is a member of the one around it */
	w->nonempty = 1;
}

void
nq_json_obj_begin(struct nq_json *w)
{
	nq_json_begin(w, "{");
}

void
nq_json_obj_end(struct nq_json *w)
{
	nq_json_end(w, "}");
}

void
nq_json_arr_begin(struct nq_json *w)
{
	nq_json_begin(w, "[");
}

void
nq_json_arr_end(struct nq_json *w)
{
	nq_json_end(w, "]");
}

static void
nq_json_quoted(struct nq_json *w, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t run = 0; /* bytes copied as they are, not yet written */
	char esc[8];

	nq_json_put(w, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		const char *e = NULL;
		switch (p[i]) {
		case '"':
			e = "\\\"";
			break;
		case '\\':
			e = "\\\\";
			break;
		case '\n':
			e = "\\n";
			break;
		case '\r':
			e = "\\r";
			break;
		case '\t':
			e = "\\t";
			break;
		default:
			if (p[i] < 0x20) {
				snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
				e = esc;
			}
		}
		if (e == NULL) {
			run++;
			continue;
		}
		nq_json_put(w, s + i - run, run);
		run = 0;
		nq_json_puts(w, e);
	}
	nq_json_put(w, s + len - run, run);
	nq_json_put(w, "\"", 1);
}

void
nq_json_key(struct nq_json *w, const char *key)
{
	nq_json_sep(w);
	nq_json_quoted(w, key, strlen(key));
	nq_json_puts(w, ": ");
	w->after_key = 1;
}

void
nq_json_str(struct nq_json *w, const char *s, size_t len)
{
	nq_json_sep(w);
	nq_json_quoted(w, s, len);
}

void
nq_json_int(struct nq_json *w, int64_t i)
{
	char num[32];

	nq_json_sep(w);
	snprintf(num, sizeof(num), "%" PRId64, i);
	nq_json_puts(w, num);
}

void
nq_json_uint(struct nq_json *w, uint64_t u)
{
	char num[32];

	nq_json_sep(w);
	snprintf(num, sizeof(num), "%" PRIu64, u);
	nq_json_puts(w, num);
}

void
nq_json_double(struct nq_json *w, double d)
{
	char num[40];

	nq_json_sep(w);
	if (!isfinite(d)) {
		nq_json_puts(w, "null");
		return;
	}
	snprintf(num, sizeof(num), "%.17g", d);
	nq_json_puts(w, num);
}

void
nq_json_bool(struct nq_json *w, int b)
{
	nq_json_sep(w);
	nq_json_puts(w, b ? "true" : "false");
}

void
nq_json_null(struct nq_json *w)
{
	nq_json_sep(w);
	nq_json_puts(w, "null");
}

void
nq_json_raw(struct nq_json *w, const char *s)
{
	nq_json_puts(w, s);
}

void
nq_json_value(struct nq_json *w, const struct nq_value *v)
{
	int describe = (w->flags & NQ_JSON_DESCRIBE) != 0;

	switch (v->kind) {
	case NQ_BOOL:
		nq_json_bool(w, v->u.b);
		break;
	case NQ_INT:
		nq_json_int(w, v->u.i);
		break;
	case NQ_FLOAT:
		nq_json_double(w, v->u.f);
		break;
	case NQ_STR:
		nq_json_str(w, v->u.str.s, v->u.str.len);
		break;
	case NQ_BIN:
		if (!describe) {
			nq_json_null(w);
			break;
		}
		nq_json_obj_begin(w);
		nq_json_key(w, "bin");
		nq_json_uint(w, v->u.bin.len);
		nq_json_obj_end(w);
		break;
	case NQ_ARRAY:
		if (!describe) {
			nq_json_null(w);
			break;
		}
		nq_json_obj_begin(w);
		nq_json_key(w, "dtype");
		nq_json_str(w, nq_dtype_str(v->u.arr.dtype),
		            strlen(nq_dtype_str(v->u.arr.dtype)));
		nq_json_key(w, "shape");
		nq_json_arr_begin(w);
		for (int d = 0; d < v->u.arr.ndim; d++)
			nq_json_int(w, v->u.arr.shape[d]);
		nq_json_arr_end(w);
		nq_json_key(w, "nbytes");
		nq_json_uint(w, v->u.arr.nbytes);
		nq_json_obj_end(w);
		break;
	case NQ_LIST:
		nq_json_arr_begin(w);
		for (size_t i = 0; i < v->u.list.n; i++)
			nq_json_value(w, &v->u.list.items[i]);
		nq_json_arr_end(w);
		break;
	case NQ_MAP:
		nq_json_obj_begin(w);
		for (size_t i = 0; v->u.map != NULL && i < v->u.map->n; i++) {
			nq_json_key(w, v->u.map->keys[i]);
			nq_json_value(w, &v->u.map->vals[i]);
		}
		nq_json_obj_end(w);
		break;
	default: /* nil */
		nq_json_null(w);
		break;
	}
}

void
nq_json_result(struct nq_json *w, const struct nq_map *m)
{
	nq_json_obj_begin(w);
	for (size_t i = 0; m != NULL && i < m->n; i++) {
		if (m->vals[i].kind == NQ_ARRAY)
			continue;
		nq_json_key(w, m->keys[i]);
		nq_json_value(w, &m->vals[i]);
	}
	nq_json_obj_end(w);
	nq_json_raw(w, "\n");
}
