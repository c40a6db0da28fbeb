/*
 * cmds.c — the commands that are one request and a printout.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "nq_json.h"
#include "nq_npy.h"

/* ---- small helpers */

void
cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("neuroq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see neuroq --help)\n", stderr);
}

int
cli_parse_id(const char *s, long long *id)
{
	char *end;

	if (!s || !*s)
		return -1;
	errno = 0;
	*id = strtoll(s, &end, 10);
	if (*end || errno || *id <= 0) {
		cli_usage_error("not a job id: \"%s\"", s);
		return -1;
	}
	return 0;
}

int
cli_parse_seconds(const char *s, double *out)
{
	char *end;

	*out = strtod(s, &end);
	if (end == s || *end || !(*out >= 0) || !isfinite(*out)) {
		cli_usage_error("not a number of seconds: \"%s\"", s);
		return -1;
	}
	return 0;
}

const char *
cli_map_str(const struct nq_map *m, const char *key, const char *dflt)
{
	const struct nq_value *v = m ? nq_map_get(m, key) : NULL;

	return v && v->kind == NQ_STR ? v->u.str.s : dflt;
}

double
cli_map_num(const struct nq_map *m, const char *key, double dflt)
{
	const struct nq_value *v = m ? nq_map_get(m, key) : NULL;

	if (!v)
		return dflt;
	if (v->kind == NQ_INT)
		return (double) v->u.i;
	if (v->kind == NQ_FLOAT)
		return v->u.f;
	if (v->kind == NQ_BOOL)
		return v->u.b;
	return dflt;
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i. 1 when
 * matched, 0 when not, -1 when the value is missing. */
static int
opt_val(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != 0)
		return 0;
	if (*i + 1 >= argc) {
		cli_usage_error("%s needs a value", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

static void
print_scalar(FILE *f, const struct nq_value *v)
{
	switch (v->kind) {
	case NQ_STR:
		fputs(v->u.str.s, f);
		break;
	case NQ_FLOAT:
		fprintf(f, "%.10g", v->u.f);
		break;
	default:
		cli_json_print(f, v);
	}
}

static void
print_json_line(const struct nq_value *v)
{
	cli_json_print(stdout, v);
	fputc('\n', stdout);
}

static void
fmt_time(char *buf, size_t len, double t)
{
	time_t tt = (time_t) t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm)) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* one request whose only field is "id" */
static int
id_call(struct cli *c, const char *op, const char *ids, struct nq_value *rep)
{
	long long id;
	struct nq_map *req;

	if (cli_parse_id(ids, &id))
		return CLI_EUSAGE;
	if (!(req = nq_map_new()) || nq_map_set_int(req, "id", id)) {
		nq_map_free(req);
		return CLI_EREACH;
	}
	return cli_call(c, op, req, rep);
}

/* common "ID" + no options */
static int
one_id(int argc, char **argv, const char *cmd, const char **id)
{
	*id = NULL;
	for (int i = 0; i < argc; i++) {
		if (argv[i][0] == '-' && argv[i][1]) {
			cli_usage_error("%s: unknown option %s", cmd, argv[i]);
			return -1;
		}
		if (*id) {
			cli_usage_error("%s: one job id only", cmd);
			return -1;
		}
		*id = argv[i];
	}
	if (!*id) {
		cli_usage_error("%s needs a job id", cmd);
		return -1;
	}
	return 0;
}

static int
finish(struct cli *c, int rv, struct nq_value *rep)
{
	/* machine readers get the daemon's error map on stdout too */
	if (rv == CLI_EREPLY && c->json)
		print_json_line(rep);
	nq_value_free(rep);
	return rv;
}

/* ---- devices */

void
cli_human_bytes(char *buf, size_t len, double b)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int k = 0;

	while (b >= 1024 && k < 4) {
		b /= 1024;
		k++;
	}
	snprintf(buf, len, k ? "%.1f %s" : "%.0f %s", b, u[k]);
}

/* executor = slurm: the cluster's partitions (the devices reply's
 * "slurm" entry) */
static void
print_slurm(const struct nq_value *sl)
{
	const struct nq_value *parts;

	if (sl == NULL || sl->kind != NQ_MAP)
		return;
	parts = nq_map_get(sl->u.map, "partitions");
	if (parts == NULL || parts->kind != NQ_LIST)
		return;
	printf("\n%-16s %5s %-10s %9s %9s %12s\n", "PARTITION", "NODES",
	       "GPU_TYPE", "GPUS_USED", "CPUS_USED", "NODE_MEM_MAX");
	for (size_t i = 0; i < parts->u.list.n; i++) {
		const struct nq_value *p = &parts->u.list.items[i];
		char mem[32], g[32], cpu[32];
		if (p->kind != NQ_MAP)
			continue;
		cli_human_bytes(mem, sizeof(mem),
		                cli_map_num(p->u.map, "node_mem_max", 0));
		snprintf(g, sizeof(g), "%.0f/%.0f",
		         cli_map_num(p->u.map, "gpus_used", 0),
		         cli_map_num(p->u.map, "gpus", 0));
		snprintf(cpu, sizeof(cpu), "%.0f/%.0f",
		         cli_map_num(p->u.map, "cpus_used", 0),
		         cli_map_num(p->u.map, "cpus", 0));
		printf("%-16s %5.0f %-10s %9s %9s %12s\n",
		       cli_map_str(p->u.map, "name", "?"),
		       cli_map_num(p->u.map, "nodes", 0),
		       cli_map_str(p->u.map, "gpu_type", "")[0]
		               ? cli_map_str(p->u.map, "gpu_type", "")
		               : "-",
		       g, cpu, mem);
	}
}

int
cmd_devices(struct cli *c, int argc, char **argv)
{
	struct nq_value rep;
	const struct nq_value *devs;
	int rv;

	if (argc > 0) {
		cli_usage_error("devices takes no arguments");
		return CLI_EUSAGE;
	}
	if ((rv = cli_call(c, "devices", NULL, &rep)) != CLI_OK)
		return finish(c, rv, &rep);
	devs = nq_map_get(rep.u.map, "devices");
	if (c->json) {
		print_json_line(&rep);
	} else if (devs && devs->kind == NQ_LIST) {
		printf("%-8s %-5s %12s %12s %12s %5s  %s\n", "NAME", "KIND",
		       "MEM_TOTAL", "MEM_FREE", "RESERVED", "SLOTS", "RUNNING");
		for (size_t i = 0; i < devs->u.list.n; i++) {
			const struct nq_value *d = &devs->u.list.items[i];
			const struct nq_map *m;
			const struct nq_value *run;
			char t[32], f[32], r[32];
			if (d->kind != NQ_MAP)
				continue;
			m = d->u.map;
			cli_human_bytes(t, sizeof(t),
			                cli_map_num(m, "mem_total", 0));
			cli_human_bytes(f, sizeof(f),
			                cli_map_num(m, "mem_free", 0));
			cli_human_bytes(r, sizeof(r),
			                cli_map_num(m, "mem_reserved", 0));
			printf("%-8s %-5s %12s %12s %12s %5.0f  ",
			       cli_map_str(m, "name", "?"),
			       cli_map_str(m, "kind", "?"), t, f, r,
			       cli_map_num(m, "slots", 0));
			run = nq_map_get(m, "running");
			if (run)
				cli_json_print(stdout, run);
			fputc('\n', stdout);
		}
		print_slurm(nq_map_get(rep.u.map, "slurm"));
	}
	nq_value_free(&rep);
	return CLI_OK;
}

/* ---- submit */

static int
add_input(struct nq_map *inputs, const char *spec, size_t max_bytes)
{
	const char *eq = strchr(spec, '=');
	char name[128], err[256];
	struct nq_array a = {0};

	if (!eq || eq == spec || (size_t) (eq - spec) >= sizeof(name) ||
	    !eq[1]) {
		cli_usage_error("--input wants NAME=FILE.npy, got \"%s\"",
		                spec);
		return CLI_EUSAGE;
	}
	memcpy(name, spec, (size_t) (eq - spec));
	name[eq - spec] = 0;
	if (nq_npy_read(eq + 1, &a, max_bytes, err, sizeof(err)) != 0) {
		if (strstr(err, eq + 1))
			fprintf(stderr, "neuroq: %s\n", err);
		else
			fprintf(stderr, "neuroq: %s: %s\n", eq + 1, err);
		return CLI_EUSAGE;
	}
	if (nq_map_set_array(inputs, name, &a) != 0) {
		nq_array_fini(&a);
		fprintf(stderr, "neuroq: out of memory\n");
		return CLI_EREACH;
	}
	return 0;
}

static int
add_param(struct nq_map *params, const char *spec)
{
	const char *eq = strchr(spec, '=');
	char key[128], msg[256];
	struct nq_value v;

	if (!eq || eq == spec || (size_t) (eq - spec) >= sizeof(key)) {
		cli_usage_error("--param wants KEY=VALUE, got \"%s\"", spec);
		return CLI_EUSAGE;
	}
	memcpy(key, spec, (size_t) (eq - spec));
	key[eq - spec] = 0;
	if (cli_param_value(eq + 1, &v, msg, sizeof(msg)) != 0) {
		cli_usage_error("--param %s: %s", key, msg);
		return CLI_EUSAGE;
	}
	if (nq_map_set(params, key, &v) != 0) {
		nq_value_free(&v);
		fprintf(stderr, "neuroq: out of memory\n");
		return CLI_EREACH;
	}
	return 0;
}

/* An idempotency key per invocation: NNG REQ resends a request whose reply
 * got lost (daemon restart), and the key makes the resend harmless. */
static void
make_idem(char *buf, size_t len)
{
	unsigned long long r = 0;
	FILE *f = fopen("/dev/urandom", "rb");
	int64_t us = nq_wall_us();

	if (f) {
		if (fread(&r, sizeof(r), 1, f) != 1)
			r = 0;
		fclose(f);
	}
	snprintf(buf, len, "cli-%d-%lld-%016llx", (int) getpid(),
	         (long long) (us / 1000000),
	         r ^ (unsigned long long) (us % 1000000) * 1000);
}

int
cmd_submit(struct cli *c, int argc, char **argv)
{
	struct nq_map *req = nq_map_new(), *params = nq_map_new(),
	              *inputs = nq_map_new();
	const char *type = NULL, *device = "auto", *idem = NULL, *val;
	long long prio = 0;
	char idbuf[96];
	struct nq_value rep = {0}, tmp;
	int rv = CLI_EUSAGE, m;

	if (!req || !params || !inputs) {
		rv = CLI_EREACH;
		goto fail;
	}
	for (int i = 0; i < argc; i++) {
		if ((m = opt_val(argc, argv, &i, "--data", &val)) != 0) {
			char spec[PATH_MAX + 8];
			if (m < 0)
				goto fail;
			snprintf(spec, sizeof(spec), "data=%s", val);
			if ((rv = add_input(inputs, spec, 0)) != 0)
				goto fail;
		} else if ((m = opt_val(argc, argv, &i, "--input", &val)) !=
		           0) {
			if (m < 0 || (rv = add_input(inputs, val, 0)) != 0)
				goto fail;
		} else if ((m = opt_val(argc, argv, &i, "--param", &val)) !=
		           0) {
			if (m < 0 || (rv = add_param(params, val)) != 0)
				goto fail;
		} else if ((m = opt_val(argc, argv, &i, "--device", &val)) !=
		           0) {
			if (m < 0)
				goto fail;
			device = val;
		} else if ((m = opt_val(argc, argv, &i, "--priority", &val)) !=
		           0) {
			char *end;
			if (m < 0)
				goto fail;
			prio = strtoll(val, &end, 10);
			if (!*val || *end) {
				cli_usage_error("--priority wants an integer");
				rv = CLI_EUSAGE;
				goto fail;
			}
		} else if ((m = opt_val(argc, argv, &i, "--idem", &val)) != 0) {
			if (m < 0)
				goto fail;
			idem = val;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			cli_usage_error("submit: unknown option %s", argv[i]);
			rv = CLI_EUSAGE;
			goto fail;
		} else if (!type) {
			type = argv[i];
		} else {
			cli_usage_error("submit: unexpected argument \"%s\"",
			                argv[i]);
			rv = CLI_EUSAGE;
			goto fail;
		}
		rv = CLI_EUSAGE;
	}
	if (!type) {
		cli_usage_error("submit needs a job TYPE (e.g. gsn)");
		goto fail;
	}
	if (!idem) {
		make_idem(idbuf, sizeof(idbuf));
		idem = idbuf;
	}
	rv = CLI_EREACH;
	/* the caller's umask: the job's files in their folders get it (the
	 * worker runs as the caller); umask() is the only way to read it */
	mode_t um = umask(022);
	umask(um);
	if (nq_map_set_str(req, "type", type) ||
	    nq_map_set_str(req, "device", device) ||
	    nq_map_set_int(req, "priority", prio) ||
	    nq_map_set_str(req, "idem", idem) ||
	    nq_map_set_int(req, "umask", (int64_t) (um & 0777)))
		goto fail;
	tmp = nq_val_map(params);
	params = NULL;
	if (nq_map_set(req, "params", &tmp)) {
		nq_value_free(&tmp);
		goto fail;
	}
	tmp = nq_val_map(inputs);
	inputs = NULL;
	if (nq_map_set(req, "inputs", &tmp)) {
		nq_value_free(&tmp);
		goto fail;
	}
	rv = cli_call(c, "submit", req, &rep);
	req = NULL;
	if (rv != CLI_OK)
		return finish(c, rv, &rep);
	if (c->json)
		print_json_line(&rep);
	else
		printf("%.0f\n", cli_map_num(rep.u.map, "id", 0));
	nq_value_free(&rep);
	return CLI_OK;
fail:
	if (req)
		nq_map_free(req);
	if (params)
		nq_map_free(params);
	if (inputs)
		nq_map_free(inputs);
	return rv;
}

/* ---- status */

void cli_print_job(const struct nq_map *job); /* used by wait.c */

void
cli_print_job(const struct nq_map *job)
{
	for (size_t i = 0; job && i < job->n; i++) {
		const char *k = job->keys[i];
		const struct nq_value *v = &job->vals[i];
		printf("%-17s ", k);
		if ((!strcmp(k, "submitted") || !strcmp(k, "started") ||
		     !strcmp(k, "finished")) &&
		    (v->kind == NQ_FLOAT || v->kind == NQ_INT)) {
			char b[64];
			fmt_time(b, sizeof(b), cli_map_num(job, k, 0));
			fputs(b, stdout);
		} else if (!strcmp(k, "error_code") && v->kind == NQ_INT &&
		           v->u.i) {
			printf("%lld (%s)", (long long) v->u.i,
			       nq_errname((int) v->u.i));
		} else {
			print_scalar(stdout, v);
		}
		fputc('\n', stdout);
	}
}

int
cmd_status(struct cli *c, int argc, char **argv)
{
	struct nq_value rep;
	const char *id;
	const struct nq_value *job;
	int rv;

	if (one_id(argc, argv, "status", &id))
		return CLI_EUSAGE;
	if ((rv = id_call(c, "status", id, &rep)) != CLI_OK)
		return finish(c, rv, &rep);
	job = nq_map_get(rep.u.map, "job");
	if (c->json)
		print_json_line(job ? job : &rep);
	else if (job && job->kind == NQ_MAP)
		cli_print_job(job->u.map);
	nq_value_free(&rep);
	return CLI_OK;
}

/* ---- result */

static int
mkdir_p(const char *dir)
{
	char buf[PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0777) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0777) && errno != EEXIST)
		return -1;
	return 0;
}

/* Output names become file names: refuse anything that could leave DIR. */
static int
safe_name(const char *s)
{
	if (!*s || !strcmp(s, ".") || !strcmp(s, "..") || !strcmp(s, "result"))
		return 0;
	for (; *s; s++)
		if (*s == '/' || *s == '\\')
			return 0;
	return 1;
}

static int
write_result(struct cli *c, const char *dir, struct nq_map *outs)
{
	char path[PATH_MAX];
	struct nq_json js;
	FILE *f;

	if (mkdir_p(dir)) {
		fprintf(stderr, "neuroq: cannot create %s: %s\n", dir,
		        strerror(errno));
		return CLI_EUSAGE;
	}
	for (size_t i = 0; i < outs->n; i++) {
		struct nq_value *v = &outs->vals[i];
		if (v->kind != NQ_ARRAY)
			continue;
		if (!safe_name(outs->keys[i])) {
			fprintf(stderr,
			        "neuroq: skipping output \"%s\": not "
			        "a file name\n",
			        outs->keys[i]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.npy", dir, outs->keys[i]);
		if (nq_npy_write(path, &v->u.arr) != 0) {
			fprintf(stderr, "neuroq: cannot write %s: %s\n", path,
			        strerror(errno));
			return CLI_EREACH;
		}
		if (!c->json)
			printf("%s\n", path);
	}
	snprintf(path, sizeof(path), "%s/result.json", dir);
	if (!(f = fopen(path, "w"))) {
		fprintf(stderr, "neuroq: cannot write %s: %s\n", path,
		        strerror(errno));
		return CLI_EREACH;
	}
	/* the daemon's out/result.json layout */
	nq_json_init_file(&js, f, NQ_JSON_LINES);
	nq_json_result(&js, outs);
	if (nq_json_finish(&js) != 0) {
		fclose(f);
		fprintf(stderr, "neuroq: cannot write %s\n", path);
		return CLI_EREACH;
	}
	if (fclose(f) != 0) {
		fprintf(stderr, "neuroq: cannot write %s\n", path);
		return CLI_EREACH;
	}
	if (!c->json)
		printf("%s\n", path);
	return CLI_OK;
}

/* The job's "warnings" (gsn's, spikesort's input checks), one per line on
 * stderr, so they are seen and not only filed in result.json. */
static void
print_warnings(const struct nq_map *outs)
{
	const struct nq_value *w = nq_map_get(outs, "warnings");

	for (size_t i = 0; w && w->kind == NQ_LIST && i < w->u.list.n; i++)
		if (w->u.list.items[i].kind == NQ_STR)
			fprintf(stderr, "neuroq: warning: %.*s\n",
			        (int) w->u.list.items[i].u.str.len,
			        w->u.list.items[i].u.str.s);
}

int
cmd_result(struct cli *c, int argc, char **argv)
{
	const char *id = NULL, *out = NULL, *val;
	struct nq_value rep;
	const struct nq_value *outs;
	int rv, m;

	for (int i = 0; i < argc; i++) {
		if ((m = opt_val(argc, argv, &i, "--out", &val)) != 0) {
			if (m < 0)
				return CLI_EUSAGE;
			out = val;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			cli_usage_error("result: unknown option %s", argv[i]);
			return CLI_EUSAGE;
		} else if (!id) {
			id = argv[i];
		} else {
			cli_usage_error("result: one job id only");
			return CLI_EUSAGE;
		}
	}
	if (!id || !out) {
		cli_usage_error("usage: neuroq result ID --out DIR");
		return CLI_EUSAGE;
	}
	if ((rv = id_call(c, "result", id, &rep)) != CLI_OK)
		return finish(c, rv, &rep);
	outs = nq_map_get(rep.u.map, "outputs");
	if (!outs || outs->kind != NQ_MAP) {
		fprintf(stderr, "neuroq: reply has no \"outputs\" map\n");
		nq_value_free(&rep);
		return CLI_EREPLY;
	}
	rv = write_result(c, out, outs->u.map);
	if (rv == CLI_OK && c->json)
		print_json_line(outs);
	if (rv == CLI_OK)
		print_warnings(outs->u.map);
	nq_value_free(&rep);
	return rv;
}

/* ---- cancel, logs */

int
cmd_cancel(struct cli *c, int argc, char **argv)
{
	struct nq_value rep;
	const char *id;
	int rv;

	if (one_id(argc, argv, "cancel", &id))
		return CLI_EUSAGE;
	if ((rv = id_call(c, "cancel", id, &rep)) != CLI_OK)
		return finish(c, rv, &rep);
	if (c->json)
		print_json_line(&rep);
	else
		printf("%s\n", cli_map_str(rep.u.map, "state", "?"));
	nq_value_free(&rep);
	return CLI_OK;
}

int
cmd_logs(struct cli *c, int argc, char **argv)
{
	struct nq_value rep;
	const char *id, *text;
	int rv;

	if (one_id(argc, argv, "logs", &id))
		return CLI_EUSAGE;
	if ((rv = id_call(c, "logs", id, &rep)) != CLI_OK)
		return finish(c, rv, &rep);
	if (c->json) {
		print_json_line(&rep);
	} else {
		text = cli_map_str(rep.u.map, "text", "");
		fputs(text, stdout);
		if (*text && text[strlen(text) - 1] != '\n')
			fputc('\n', stdout);
	}
	nq_value_free(&rep);
	return CLI_OK;
}

/* ---- list */

int
cmd_list(struct cli *c, int argc, char **argv)
{
	struct nq_map *req = nq_map_new();
	const char *state = NULL, *val;
	long long limit = -1;
	int all = 0, rv, m;
	struct nq_value rep;
	const struct nq_value *jobs, *others;

	if (!req)
		return CLI_EREACH;
	for (int i = 0; i < argc; i++) {
		if ((m = opt_val(argc, argv, &i, "--state", &val)) != 0) {
			if (m < 0)
				goto usage;
			state = val;
		} else if ((m = opt_val(argc, argv, &i, "--limit", &val)) !=
		           0) {
			char *end;
			if (m < 0)
				goto usage;
			limit = strtoll(val, &end, 10);
			if (!*val || *end || limit < 0) {
				cli_usage_error("--limit wants a count");
				goto usage;
			}
		} else if (!strcmp(argv[i], "--all-users")) {
			all = 1;
		} else {
			cli_usage_error("list: unexpected argument %s",
			                argv[i]);
			goto usage;
		}
	}
	if ((state && nq_map_set_str(req, "state", state)) ||
	    nq_map_set_bool(req, "all_users", all) ||
	    (limit >= 0 && nq_map_set_int(req, "limit", limit))) {
		nq_map_free(req);
		return CLI_EREACH;
	}
	if ((rv = cli_call(c, "list", req, &rep)) != CLI_OK)
		return finish(c, rv, &rep);
	jobs = nq_map_get(rep.u.map, "jobs");
	if (c->json) {
		print_json_line(jobs ? jobs : &rep);
	} else if (jobs && jobs->kind == NQ_LIST) {
		printf("%8s  %-8s  %-10s %6s %5s %5s  %-19s  %s\n", "ID",
		       "STATE", "TYPE", "OWNER", "PRIO", "PROG", "SUBMITTED",
		       "STAGE");
		for (size_t i = 0; i < jobs->u.list.n; i++) {
			const struct nq_value *j = &jobs->u.list.items[i];
			char b[64];
			if (j->kind != NQ_MAP)
				continue;
			fmt_time(b, sizeof(b),
			         cli_map_num(j->u.map, "submitted", 0));
			printf("%8.0f  %-8s  %-10s %6.0f %5.0f %4.0f%%  %-19s  "
			       "%s\n",
			       cli_map_num(j->u.map, "id", 0),
			       cli_map_str(j->u.map, "state", "?"),
			       cli_map_str(j->u.map, "type", "?"),
			       cli_map_num(j->u.map, "owner", -1),
			       cli_map_num(j->u.map, "priority", 0),
			       100 * cli_map_num(j->u.map, "progress", 0), b,
			       cli_map_str(j->u.map, "stage", ""));
		}
	}
	/* --all-users for a user who is not an administrator: the others'
	 * jobs as counts (stderr with --json, which prints the list) */
	others = nq_map_get(rep.u.map, "others");
	if (others && others->kind == NQ_MAP)
		fprintf(c->json ? stderr : stdout,
		        "%sother users' jobs: %.0f queued, %.0f running "
		        "(only administrators see them)\n",
		        c->json ? "neuroq: " : "",
		        cli_map_num(others->u.map, "queued", 0),
		        cli_map_num(others->u.map, "running", 0));
	nq_value_free(&rep);
	return CLI_OK;
usage:
	nq_map_free(req);
	return CLI_EUSAGE;
}

/* ---- version */

int
cmd_version(struct cli *c, int argc, char **argv)
{
	struct nq_value rep;
	int rv;

	if (argc > 0) {
		cli_usage_error("version takes no arguments");
		return CLI_EUSAGE;
	}
	if (!c->json)
		printf("neuroq %s (protocol %d)\n", NEUROQ_VERSION,
		       NQ_PROTOCOL_VERSION);
	rv = cli_call(c, "hello", NULL, &rep);
	if (rv != CLI_OK)
		return finish(c, rv, &rep);
	if (c->json) {
		struct nq_map *m = rep.u.map;
		nq_map_set_str(m, "client", NEUROQ_VERSION);
		print_json_line(&rep);
	} else {
		const struct nq_value *types =
		        nq_map_get(rep.u.map, "job_types");
		printf("neuroqd %s (protocol %.0f) at %s, you are uid %.0f\n",
		       cli_map_str(rep.u.map, "daemon", "?"),
		       cli_map_num(rep.u.map, "version", 0), c->url,
		       cli_map_num(rep.u.map, "uid", -1));
		if (types) {
			printf("job types: ");
			cli_json_print(stdout, types);
			fputc('\n', stdout);
		}
	}
	nq_value_free(&rep);
	return CLI_OK;
}
