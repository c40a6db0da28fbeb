/*
 * json.c — JSON for --json output and for JSON-valued --param arguments.
 *
 * Output (proto/nq_json.c writes it) is stable for scripts: maps keep the
 * daemon's key order, floats are printed with 17 significant digits
 * (round-trip), NaN/±Inf become null (JSON has no spelling for them), arrays
 * are described, not dumped: {"dtype": "<f8", "shape": [3, 3], "nbytes": 72}.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "nq_json.h"

void
cli_json_print(FILE *f, const struct nq_value *v)
{
	struct nq_json w;

	nq_json_init_file(&w, f, NQ_JSON_DESCRIBE);
	nq_json_value(&w, v);
}

/* ---- parser: small recursive descent, depth-limited like the wire */

struct jp {
	const char *p;
	char *msg;
	size_t msglen;
};

static int parse_value(struct jp *j, struct nq_value *out, int depth);

static void
skip_ws(struct jp *j)
{
	while (*j->p && isspace((unsigned char) *j->p))
		j->p++;
}

static int
fail(struct jp *j, const char *what)
{
	snprintf(j->msg, j->msglen, "bad JSON near \"%.12s\": %s", j->p, what);
	return -1;
}

static void
put_utf8(char *b, size_t *n, unsigned cp)
{
	if (cp < 0x80) {
		b[(*n)++] = (char) cp;
	} else if (cp < 0x800) {
		b[(*n)++] = (char) (0xc0 | (cp >> 6));
		b[(*n)++] = (char) (0x80 | (cp & 0x3f));
	} else {
		b[(*n)++] = (char) (0xe0 | (cp >> 12));
		b[(*n)++] = (char) (0x80 | ((cp >> 6) & 0x3f));
		b[(*n)++] = (char) (0x80 | (cp & 0x3f));
	}
}

static int
parse_string(struct jp *j, struct nq_value *out)
{
	size_t cap = strlen(j->p) + 1, n = 0;
	char *b = malloc(cap * 3 + 1);

	if (!b)
		return fail(j, "out of memory");
	j->p++; /* opening quote */
	while (*j->p && *j->p != '"') {
		char ch = *j->p++;
		if (ch != '\\') {
			b[n++] = ch;
			continue;
		}
		ch = *j->p++;
		switch (ch) {
		case 'n':
			b[n++] = '\n';
			break;
		case 't':
			b[n++] = '\t';
			break;
		case 'r':
			b[n++] = '\r';
			break;
		case 'b':
			b[n++] = '\b';
			break;
		case 'f':
			b[n++] = '\f';
			break;
		case '"':
		case '\\':
		case '/':
			b[n++] = ch;
			break;
		case 'u': {
			unsigned cp = 0;
			for (int k = 0; k < 4; k++) {
				char h = *j->p;
				if (!isxdigit((unsigned char) h)) {
					free(b);
					return fail(j, "bad \\u escape");
				}
				cp = cp * 16 +
				     (unsigned) (isdigit((unsigned char) h)
				                         ? h - '0'
				                         : (tolower((
				                                    unsigned char)
				                                            h) -
				                            'a' + 10));
				j->p++;
			}
			if (cp == 0) {
				free(b);
				return fail(j, "NUL in string");
			}
			put_utf8(b, &n, cp);
			break;
		}
		default:
			free(b);
			return fail(j, "bad escape");
		}
	}
	if (*j->p != '"') {
		free(b);
		return fail(j, "unterminated string");
	}
	j->p++;
	b[n] = 0;
	out->kind = NQ_STR;
	out->u.str.s = b;
	out->u.str.len = n;
	return 0;
}

static int
parse_number(struct jp *j, struct nq_value *out)
{
	const char *s = j->p;
	char *end;
	int is_float = 0;

	if (*s == '-')
		s++;
	while (isdigit((unsigned char) *s))
		s++;
	if (*s == '.' || *s == 'e' || *s == 'E')
		is_float = 1;
	if (!is_float) {
		long long i = strtoll(j->p, &end, 10);
		if (end != j->p) {
			out->kind = NQ_INT;
			out->u.i = i;
			j->p = end;
			return 0;
		}
	}
	double f = strtod(j->p, &end);
	if (end == j->p)
		return fail(j, "expected a value");
	out->kind = NQ_FLOAT;
	out->u.f = f;
	j->p = end;
	return 0;
}

static int
parse_list(struct jp *j, struct nq_value *out, int depth)
{
	size_t n = 0, cap = 4;
	struct nq_value *items = calloc(cap, sizeof(*items));

	if (!items)
		return fail(j, "out of memory");
	out->kind = NQ_LIST;
	out->u.list.items = items;
	out->u.list.n = 0;
	j->p++;
	skip_ws(j);
	if (*j->p == ']') {
		j->p++;
		return 0;
	}
	for (;;) {
		if (n == cap) {
			struct nq_value *t =
			        realloc(items, 2 * cap * sizeof(*items));
			if (!t)
				return fail(j, "out of memory");
			memset(t + cap, 0, cap * sizeof(*t));
			items = t;
			cap *= 2;
			out->u.list.items = items;
		}
		/* counted before parsing so a partial item is freed too */
		out->u.list.n = ++n;
		if (parse_value(j, &items[n - 1], depth + 1))
			return -1;
		skip_ws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p == ']') {
			j->p++;
			return 0;
		}
		return fail(j, "expected , or ]");
	}
}

static int
parse_map(struct jp *j, struct nq_value *out, int depth)
{
	struct nq_map *m = nq_map_new();

	if (!m)
		return fail(j, "out of memory");
	*out = nq_val_map(m);
	j->p++;
	skip_ws(j);
	if (*j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		struct nq_value k = {0}, v = {0};
		skip_ws(j);
		if (*j->p != '"')
			return fail(j, "expected a string key");
		if (parse_string(j, &k))
			return -1;
		skip_ws(j);
		if (*j->p != ':') {
			nq_value_free(&k);
			return fail(j, "expected :");
		}
		j->p++;
		if (parse_value(j, &v, depth + 1)) {
			nq_value_free(&k);
			nq_value_free(&v);
			return -1;
		}
		int rv = nq_map_set(m, k.u.str.s, &v);
		nq_value_free(&k);
		if (rv) {
			nq_value_free(&v);
			return fail(j, "out of memory");
		}
		skip_ws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p == '}') {
			j->p++;
			return 0;
		}
		return fail(j, "expected , or }");
	}
}

static int
parse_value(struct jp *j, struct nq_value *out, int depth)
{
	memset(out, 0, sizeof(*out));
	if (depth > NQ_MAX_DEPTH)
		return fail(j, "nested too deeply");
	skip_ws(j);
	switch (*j->p) {
	case '{':
		return parse_map(j, out, depth);
	case '[':
		return parse_list(j, out, depth);
	case '"':
		return parse_string(j, out);
	case 't':
		if (strncmp(j->p, "true", 4) == 0) {
			j->p += 4;
			out->kind = NQ_BOOL;
			out->u.b = 1;
			return 0;
		}
		break;
	case 'f':
		if (strncmp(j->p, "false", 5) == 0) {
			j->p += 5;
			out->kind = NQ_BOOL;
			out->u.b = 0;
			return 0;
		}
		break;
	case 'n':
		if (strncmp(j->p, "null", 4) == 0) {
			j->p += 4;
			out->kind = NQ_NIL;
			return 0;
		}
		break;
	default:
		if (*j->p == '-' || isdigit((unsigned char) *j->p))
			return parse_number(j, out);
	}
	return fail(j, "expected a value");
}

int
cli_json_parse(const char *s, struct nq_value *out, char *msg, size_t msglen)
{
	struct jp j = {s, msg, msglen};

	if (parse_value(&j, out, 0) != 0) {
		nq_value_free(out);
		return -1;
	}
	skip_ws(&j);
	if (*j.p) {
		fail(&j, "trailing characters");
		nq_value_free(out);
		return -1;
	}
	return 0;
}
