/*
 * param.c — the VALUE of `--param KEY=VALUE`.
 *
 * Rules (printed by `neuroq --help`, keep the two in step):
 *   starts with [ { or "   → JSON (lists, maps, strings)
 *   true / false           → bool
 *   an integer             → int      (-3, 42)
 *   a number               → float    (0.5, 1e-3)
 *   has a comma            → list: of floats when every item is a number
 *                            ("0,0.5,1"), else of strings ("cN,cSb")
 *   anything else          → string
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int
cli_val_str(struct nq_value *v, const char *s)
{
	memset(v, 0, sizeof(*v));
	if (!(v->u.str.s = strdup(s)))
		return -1;
	v->kind = NQ_STR;
	v->u.str.len = strlen(s);
	return 0;
}

static int
full_int(const char *s, long long *out)
{
	char *end;

	if (!*s)
		return 0;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return *end == 0 && errno == 0;
}

static int
full_float(const char *s, double *out)
{
	char *end;

	if (!*s)
		return 0;
	*out = strtod(s, &end);
	return *end == 0;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ')
		s++;
	e = s + strlen(s);
	while (e > s && e[-1] == ' ')
		*--e = 0;
	return s;
}

static int
comma_list(const char *s, struct nq_value *out, char *msg, size_t msglen)
{
	char *copy = strdup(s), *tok;
	size_t n = 1, k = 0;
	int all_num = 1;

	if (!copy)
		goto nomem;
	for (const char *p = s; *p; p++)
		n += *p == ',';
	out->kind = NQ_LIST;
	out->u.list.n = 0;
	if (!(out->u.list.items = calloc(n, sizeof(struct nq_value))))
		goto nomem;
	/* strtok_r would merge empty items; walk by hand so "1,,2" is an
	 * error instead of a silently shorter list. */
	tok = copy;
	for (size_t i = 0; i < n; i++) {
		char *comma = strchr(tok, ',');
		double f;
		if (comma)
			*comma = 0;
		char *t = trim(tok);
		if (!*t) {
			snprintf(msg, msglen, "empty item in list \"%s\"", s);
			free(copy);
			return -1;
		}
		if (!full_float(t, &f))
			all_num = 0;
		tok = comma ? comma + 1 : tok + strlen(tok);
	}
	tok = copy;
	for (k = 0; k < n; k++) {
		char *t = trim(tok);
		struct nq_value *it = &out->u.list.items[k];
		tok += strlen(tok) + 1;
		out->u.list.n = k + 1;
		if (all_num) {
			it->kind = NQ_FLOAT;
			full_float(t, &it->u.f);
		} else if (cli_val_str(it, t)) {
			goto nomem;
		}
	}
	free(copy);
	return 0;
nomem:
	free(copy);
	snprintf(msg, msglen, "out of memory");
	return -1;
}

int
cli_param_value(const char *s, struct nq_value *out, char *msg, size_t msglen)
{
	long long i;
	double f;

	memset(out, 0, sizeof(*out));
	if (s[0] == '[' || s[0] == '{' || s[0] == '"')
		return cli_json_parse(s, out, msg, msglen);
	if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
		out->kind = NQ_BOOL;
		out->u.b = s[0] == 't';
		return 0;
	}
	if (full_int(s, &i)) {
		out->kind = NQ_INT;
		out->u.i = i;
		return 0;
	}
	if (full_float(s, &f)) {
		out->kind = NQ_FLOAT;
		out->u.f = f;
		return 0;
	}
	if (strchr(s, ',')) {
		if (comma_list(s, out, msg, msglen)) {
			nq_value_free(out);
			return -1;
		}
		return 0;
	}
	if (cli_val_str(out, s)) {
		snprintf(msg, msglen, "out of memory");
		return -1;
	}
	return 0;
}
