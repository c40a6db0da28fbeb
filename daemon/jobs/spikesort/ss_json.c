/*
 * ss_json.c — a small recursive-descent JSON reader for probe files.
 */
#include "ss_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSJ_MAX_DEPTH 32

struct pstate {
	const char *s;
	size_t i, n;
	char *msg;
	size_t msglen;
};

static int
perr(struct pstate *p, const char *what)
{
	snprintf(p->msg, p->msglen, "probe JSON: %s at byte %zu", what, p->i);
	return -1;
}

static void
skip_ws(struct pstate *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' ||
	                       p->s[p->i] == '\n' || p->s[p->i] == '\r'))
		p->i++;
}

static int parse_value(struct pstate *p, struct ssj *out, int depth);

static int
parse_string(struct pstate *p, char **out)
{
	size_t start, len = 0;
	char *s;

	p->i++; /* opening quote */
	start = p->i;
	while (p->i < p->n && p->s[p->i] != '"') {
		if (p->s[p->i] == '\\')
			p->i++;
		p->i++;
	}
	if (p->i >= p->n)
		return perr(p, "unterminated string");
	s = malloc(p->i - start + 1);
	if (s == NULL)
		return perr(p, "out of memory");
	for (size_t k = start; k < p->i; k++) {
		char c = p->s[k];
		if (c == '\\' && k + 1 < p->i) {
			c = p->s[++k];
			if (c == 'n')
				c = '\n';
			else if (c == 't')
				c = '\t';
			else if (c == 'u') {
				/* keep \uXXXX out of the way: probe keys are
				 * ASCII */
				k += 4 < p->i - k ? 4 : p->i - k - 1;
				c = '?';
			}
		}
		s[len++] = c;
	}
	s[len] = '\0';
	p->i++;
	*out = s;
	return 0;
}

static int
push(struct ssj *a, size_t *cap, int with_key)
{
	if (a->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		struct ssj *it = realloc(a->items, nc * sizeof(*it));
		if (it == NULL)
			return -1;
		a->items = it;
		if (with_key) {
			char **k = realloc(a->keys, nc * sizeof(*k));
			if (k == NULL)
				return -1;
			a->keys = k;
		}
		*cap = nc;
	}
	memset(&a->items[a->n], 0, sizeof(a->items[0]));
	if (with_key)
		a->keys[a->n] = NULL;
	a->n++;
	return 0;
}

static int
parse_container(struct pstate *p, struct ssj *out, int depth)
{
	int obj = p->s[p->i] == '{';
	char close = obj ? '}' : ']';
	size_t cap = 0;

	out->kind = obj ? SSJ_OBJ : SSJ_ARR;
	p->i++;
	skip_ws(p);
	if (p->i < p->n && p->s[p->i] == close) {
		p->i++;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (push(out, &cap, obj) != 0)
			return perr(p, "out of memory");
		if (obj) {
			if (p->i >= p->n || p->s[p->i] != '"')
				return perr(p, "expected a key");
			if (parse_string(p, &out->keys[out->n - 1]) != 0)
				return -1;
			skip_ws(p);
			if (p->i >= p->n || p->s[p->i] != ':')
				return perr(p, "expected ':'");
			p->i++;
		}
		if (parse_value(p, &out->items[out->n - 1], depth + 1) != 0)
			return -1;
		skip_ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->s[p->i] == close) {
			p->i++;
			return 0;
		}
		return perr(p, "expected ',' or a closing bracket");
	}
}

static int
parse_value(struct pstate *p, struct ssj *out, int depth)
{
	char c;

	if (depth > SSJ_MAX_DEPTH)
		return perr(p, "nesting too deep");
	skip_ws(p);
	if (p->i >= p->n)
		return perr(p, "unexpected end");
	c = p->s[p->i];
	if (c == '{' || c == '[')
		return parse_container(p, out, depth);
	if (c == '"') {
		out->kind = SSJ_STR;
		return parse_string(p, &out->str);
	}
	if (p->n - p->i >= 4 && memcmp(p->s + p->i, "true", 4) == 0) {
		out->kind = SSJ_BOOL;
		out->num = 1;
		p->i += 4;
		return 0;
	}
	if (p->n - p->i >= 5 && memcmp(p->s + p->i, "false", 5) == 0) {
		out->kind = SSJ_BOOL;
		p->i += 5;
		return 0;
	}
	if (p->n - p->i >= 4 && memcmp(p->s + p->i, "null", 4) == 0) {
		out->kind = SSJ_NULL;
		p->i += 4;
		return 0;
	}
	if (c == '-' || (c >= '0' && c <= '9') || c == 'N') {
		char buf[64];
		size_t k = 0;
		char *end;
		while (p->i < p->n && k < sizeof(buf) - 1 &&
		       strchr("+-.eE0123456789NaInfity", p->s[p->i]) != NULL)
			buf[k++] = p->s[p->i++];
		buf[k] = '\0';
		out->kind = SSJ_NUM;
		out->num = strtod(buf, &end);
		if (end == buf)
			return perr(p, "bad number");
		return 0;
	}
	return perr(p, "unexpected character");
}

int
ssj_parse(const char *text, size_t len, struct ssj *out, char *msg,
          size_t msglen)
{
	struct pstate p = {text, 0, len, msg, msglen};

	memset(out, 0, sizeof(*out));
	if (parse_value(&p, out, 0) != 0) {
		ssj_free(out);
		return -1;
	}
	skip_ws(&p);
	if (p.i != p.n) {
		ssj_free(out);
		return perr(&p, "trailing characters");
	}
	return 0;
}

void
ssj_free(struct ssj *j)
{
	if (j == NULL)
		return;
	for (size_t k = 0; k < j->n; k++) {
		ssj_free(&j->items[k]);
		if (j->keys)
			free(j->keys[k]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
	memset(j, 0, sizeof(*j));
}

const struct ssj *
ssj_get(const struct ssj *obj, const char *key)
{
	if (obj == NULL || obj->kind != SSJ_OBJ)
		return NULL;
	for (size_t k = 0; k < obj->n; k++)
		if (obj->keys[k] && strcmp(obj->keys[k], key) == 0)
			return &obj->items[k];
	return NULL;
}
