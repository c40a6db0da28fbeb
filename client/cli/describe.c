/*
 * describe.c — `neuroq describe [TYPE]`: the job types' parameters (type,
 * default, range or choices, meaning), inputs and outputs, from the
 * daemon's describe op, as tables (or its reply with --json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A value as JSON text in a malloc'd string ("" on failure); a float with
 * 15 digits, as people write it (--json keeps all 17). */
static char *
json_text(const struct nq_value *v)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (f == NULL)
		return strdup("");
	if (v != NULL && v->kind == NQ_FLOAT)
		fprintf(f, "%.15g", v->u.f);
	else if (v != NULL)
		cli_json_print(f, v);
	fclose(f);
	return buf != NULL ? buf : strdup("");
}

/* The words of a list of strings (and ints) joined by sep. */
static void
join(const struct nq_value *l, const char *sep, char *buf, size_t n)
{
	buf[0] = '\0';
	if (l == NULL || l->kind != NQ_LIST)
		return;
	for (size_t i = 0; i < l->u.list.n; i++) {
		const struct nq_value *e = &l->u.list.items[i];
		size_t k = strlen(buf);

		if (k + 1 >= n)
			return;
		if (e->kind == NQ_STR)
			snprintf(buf + k, n - k, "%s%s", i ? sep : "",
			         e->u.str.s);
		else if (e->kind == NQ_INT)
			snprintf(buf + k, n - k, "%s%lld", i ? sep : "",
			         (long long) e->u.i);
	}
}

static const struct nq_map *
item_map(const struct nq_value *l, size_t i)
{
	const struct nq_value *e = &l->u.list.items[i];

	return e->kind == NQ_MAP ? e->u.map : NULL;
}

/* "[lo, hi]" or "a | b | c" of a parameter; "" when neither. */
static void
range_text(const struct nq_map *p, char *buf, size_t n)
{
	const struct nq_value *lo = nq_map_get(p, "min");
	const struct nq_value *hi = nq_map_get(p, "max");
	const struct nq_value *ch = nq_map_get(p, "choices");
	char *a, *b;

	buf[0] = '\0';
	if (ch != NULL) {
		join(ch, " | ", buf, n);
		return;
	}
	if (lo == NULL && hi == NULL)
		return;
	a = lo ? json_text(lo) : strdup("-inf");
	b = hi ? json_text(hi) : strdup("inf");
	snprintf(buf, n, "[%s, %s]", a ? a : "", b ? b : "");
	free(a);
	free(b);
}

static size_t
width(const struct nq_value *l, const char *key, size_t min)
{
	size_t w = min;

	for (size_t i = 0; l != NULL && i < l->u.list.n; i++) {
		const struct nq_map *m = item_map(l, i);
		const char *s = m ? cli_map_str(m, key, "") : "";

		if (strlen(s) > w)
			w = strlen(s);
	}
	return w;
}

static void
print_params(const struct nq_value *ps)
{
	int wn = (int) width(ps, "name", 4);

	printf("parameters:\n  %-*s  %-7s  %-14s  %-22s  %s\n", wn, "NAME",
	       "TYPE", "DEFAULT", "RANGE / CHOICES", "MEANING");
	for (size_t i = 0; i < ps->u.list.n; i++) {
		const struct nq_map *p = item_map(ps, i);
		const struct nq_value *dv;
		char range[512];
		char *def;

		if (p == NULL)
			continue;
		dv = nq_map_get(p, "default");
		if (dv != NULL)
			def = json_text(dv);
		else
			def = strdup(nq_map_get(p, "default_text")
			                     ? "(see below)"
			                     : "-");
		range_text(p, range, sizeof(range));
		printf("  %-*s  %-7s  %-14s  %-22s  %s\n", wn,
		       cli_map_str(p, "name", "?"), cli_map_str(p, "type", "?"),
		       def ? def : "", range, cli_map_str(p, "doc", ""));
		free(def);
	}
	for (size_t i = 0; i < ps->u.list.n; i++) {
		const struct nq_map *p = item_map(ps, i);

		if (p != NULL && nq_map_get(p, "default_text") != NULL)
			printf("  default of %s: %s\n",
			       cli_map_str(p, "name", "?"),
			       cli_map_str(p, "default_text", ""));
	}
}

static void
print_inputs(const struct nq_value *ins)
{
	int wn = (int) width(ins, "name", 4);

	printf("inputs:\n  %-*s  %-10s  %-12s  %-8s  %s\n", wn, "NAME",
	       "DTYPES", "SHAPE", "", "MEANING");
	for (size_t i = 0; i < ins->u.list.n; i++) {
		const struct nq_map *m = item_map(ins, i);
		const struct nq_value *req;
		char dt[128], sh[128];

		if (m == NULL)
			continue;
		join(nq_map_get(m, "dtypes"), "|", dt, sizeof(dt));
		join(nq_map_get(m, "shape"), " x ", sh, sizeof(sh));
		req = nq_map_get(m, "required");
		printf("  %-*s  %-10s  %-12s  %-8s  %s\n", wn,
		       cli_map_str(m, "name", "?"), dt, sh,
		       req && req->kind == NQ_BOOL && req->u.b ? "required"
		                                               : "optional",
		       cli_map_str(m, "doc", ""));
	}
}

static void
print_outputs(const struct nq_value *outs)
{
	int wn = (int) width(outs, "name", 4);

	printf("outputs:\n  %-*s  %-14s  %-8s  %-s\n", wn, "NAME", "TYPE",
	       "SHAPE", "MEANING");
	for (size_t i = 0; i < outs->u.list.n; i++) {
		const struct nq_map *m = item_map(outs, i);
		const char *when;
		char dt[128], sh[128], ty[160];

		if (m == NULL)
			continue;
		join(nq_map_get(m, "dtypes"), "|", dt, sizeof(dt));
		join(nq_map_get(m, "shape"), " x ", sh, sizeof(sh));
		if (dt[0] != '\0')
			snprintf(ty, sizeof(ty), "%s", dt);
		else
			snprintf(ty, sizeof(ty), "%s",
			         cli_map_str(m, "type", "?"));
		when = cli_map_str(m, "when", "always");
		printf("  %-*s  %-14s  %-8s  %s%s%s%s\n", wn,
		       cli_map_str(m, "name", "?"), ty, sh[0] ? sh : "-",
		       cli_map_str(m, "doc", ""),
		       strcmp(when, "always") != 0 ? " (when " : "",
		       strcmp(when, "always") != 0 ? when : "",
		       strcmp(when, "always") != 0 ? ")" : "");
	}
}

static void
print_type(const struct nq_map *t)
{
	const struct nq_value *sym = nq_map_get(t, "symbols");
	const struct nq_value *v;

	printf("%s: %s\n", cli_map_str(t, "name", "?"),
	       cli_map_str(t, "summary", ""));
	printf("a nil parameter: %s\n",
	       strcmp(cli_map_str(t, "nil", ""), "default") == 0
	               ? "its default"
	               : "refused (EBADPARAM)");
	if (sym != NULL && sym->kind == NQ_MAP && sym->u.map->n > 0) {
		printf("shapes:");
		for (size_t i = 0; i < sym->u.map->n; i++) {
			const struct nq_value *d = &sym->u.map->vals[i];
			printf("%s %s = %s", i ? ";" : "", sym->u.map->keys[i],
			       d->kind == NQ_STR ? d->u.str.s : "?");
		}
		fputc('\n', stdout);
	}
	if ((v = nq_map_get(t, "params")) != NULL && v->kind == NQ_LIST)
		print_params(v);
	if ((v = nq_map_get(t, "inputs")) != NULL && v->kind == NQ_LIST)
		print_inputs(v);
	if ((v = nq_map_get(t, "outputs")) != NULL && v->kind == NQ_LIST)
		print_outputs(v);
}

int
cmd_describe(struct cli *c, int argc, char **argv)
{
	struct nq_map *req = NULL;
	struct nq_value rep;
	const struct nq_value *types;
	int rv;

	if (argc > 1) {
		cli_usage_error("describe takes at most one job type");
		return CLI_EUSAGE;
	}
	if (argc == 1) {
		if ((req = nq_map_new()) == NULL ||
		    nq_map_set_str(req, "type", argv[0]) != 0) {
			nq_map_free(req);
			return CLI_EREACH;
		}
	}
	rv = cli_call(c, "describe", req, &rep);
	if (rv != CLI_OK) {
		/* machine readers get the daemon's error map on stdout too */
		if (rv == CLI_EREPLY && c->json) {
			cli_json_print(stdout, &rep);
			fputc('\n', stdout);
		}
		nq_value_free(&rep);
		return rv;
	}
	types = nq_map_get(rep.u.map, "types");
	if (c->json) {
		cli_json_print(stdout, &rep);
		fputc('\n', stdout);
	} else if (types != NULL && types->kind == NQ_LIST) {
		for (size_t i = 0; i < types->u.list.n; i++) {
			const struct nq_map *t = item_map(types, i);

			if (t == NULL)
				continue;
			if (i > 0)
				fputc('\n', stdout);
			print_type(t);
		}
	}
	nq_value_free(&rep);
	return CLI_OK;
}
