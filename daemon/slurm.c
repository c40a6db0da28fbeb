/* slurm.c — see slurm.h. */
#include "slurm.h"

#include "nq_error.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
slurm_bin(const char *bin_dir, const char *prog, char *out, size_t n)
{
	int w;

	if (bin_dir == NULL || bin_dir[0] == '\0')
		w = snprintf(out, n, "%s", prog);
	else
		w = snprintf(out, n, "%s/%s", bin_dir, prog);
	return (w < 0 || (size_t) w >= n) ? -1 : 0;
}

/* argv helper: a printf'd string appended to buf */
struct argb {
	char **argv;
	size_t max, argc;
	char *buf;
	size_t len, used;
	int bad;
};

static void
arg_add(struct argb *b, const char *fmt, const char *a, int64_t v)
{
	int w;

	if (b->bad || b->argc + 1 >= b->max) {
		b->bad = 1;
		return;
	}
	if (a != NULL)
		w = snprintf(b->buf + b->used, b->len - b->used, fmt, a);
	else
		w = snprintf(b->buf + b->used, b->len - b->used, fmt, v);
	if (w < 0 || (size_t) w >= b->len - b->used) {
		b->bad = 1;
		return;
	}
	b->argv[b->argc++] = b->buf + b->used;
	b->used += (size_t) w + 1;
}

int
slurm_sbatch_argv(const struct slurm_submit *s, char **argv, size_t max,
                  char *buf, size_t buflen)
{
	struct argb b = {argv, max, 0, buf, buflen, 0, 0};
	char bin[1024];
	uint64_t mb;

	if (slurm_bin(s->bin_dir, "sbatch", bin, sizeof(bin)) != 0)
		return -1;
	arg_add(&b, "%s", bin, 0);
	arg_add(&b, "%s", "--parsable", 0);
	arg_add(&b, "--job-name=" SLURM_JOB_PREFIX "%" PRId64, NULL, s->id);
	arg_add(&b, "--chdir=%s", s->job_dir, 0);
	arg_add(&b, "--output=%s/" SLURM_OUTPUT, s->job_dir, 0);
	/* neuroq decides about another attempt (max_attempts), not Slurm */
	arg_add(&b, "%s", "--no-requeue", 0);
	/* one attempt of a job at a time in its job dir: a daemon killed
	 * between sbatch's submit and reading its id requeues the job, and
	 * the next attempt waits (reason Dependency) until that forgotten
	 * one has ended, instead of running beside it */
	arg_add(&b, "%s", "--dependency=singleton", 0);
	if (s->gpus > 0)
		arg_add(&b, "--gres=gpu:%" PRId64, NULL, s->gpus);
	mb = (s->mem_bytes + (1u << 20) - 1) >> 20;
	if (mb < SLURM_MEM_FLOOR_MB)
		mb = SLURM_MEM_FLOOR_MB;
	arg_add(&b, "--mem=%" PRId64 "M", NULL, (int64_t) mb);
	if (s->time_limit_s > 0) {
		int64_t min = (s->time_limit_s + 59) / 60;
		arg_add(&b, "--time=%" PRId64, NULL, min);
		/* Slurm sends it up to a minute early: only for limits long
		 * enough that this is noise */
		if (min * 60 >= 10 * SLURM_WARN_S)
			arg_add(&b, "--signal=B:USR1@%" PRId64, NULL,
			        SLURM_WARN_S);
	}
	if (s->partition != NULL && s->partition[0] != '\0')
		arg_add(&b, "--partition=%s", s->partition, 0);
	if (s->account != NULL && s->account[0] != '\0')
		arg_add(&b, "--account=%s", s->account, 0);
	if (s->qos != NULL && s->qos[0] != '\0')
		arg_add(&b, "--qos=%s", s->qos, 0);
	if (s->extra != NULL) {
		const char *p = s->extra;
		while (*p != '\0') {
			char word[512];
			size_t n = 0;
			while (isspace((unsigned char) *p))
				p++;
			while (*p != '\0' && !isspace((unsigned char) *p)) {
				if (n + 1 >= sizeof(word))
					return -1;
				word[n++] = *p++;
			}
			word[n] = '\0';
			if (n > 0)
				arg_add(&b, "%s", word, 0);
		}
	}
	arg_add(&b, "%s/" SLURM_SCRIPT, s->job_dir, 0);
	if (b.bad)
		return -1;
	argv[b.argc] = NULL;
	return (int) b.argc;
}

/* s single-quoted for sh into out at *at; -1 when it does not fit */
static int
sh_quote(const char *s, char *out, size_t n, size_t *at)
{
	if (*at + 3 > n)
		return -1;
	out[(*at)++] = '\'';
	for (; *s != '\0'; s++) {
		if (*s == '\'') {
			if (*at + 5 > n)
				return -1;
			memcpy(out + *at, "'\\''", 4);
			*at += 4;
		} else {
			if (*at + 2 > n)
				return -1;
			out[(*at)++] = *s;
		}
	}
	out[(*at)++] = '\'';
	out[*at] = '\0';
	return 0;
}

static int
put(const char *s, char *out, size_t n, size_t *at)
{
	size_t l = strlen(s);

	if (*at + l + 1 > n)
		return -1;
	memcpy(out + *at, s, l + 1);
	*at += l;
	return 0;
}

int
slurm_script(char *const *worker_argv, const char *job_dir, char *out, size_t n)
{
	size_t at = 0;

	if (put("#!/bin/sh\n"
	        "# neuroq's batch script (executor = slurm), written by "
	        "neuroqd: the worker's\n"
	        "# stdout goes to " SLURM_PROGRESS
	        " (the daemon reads its progress there), its exit\n"
	        "# status to " SLURM_STATUS
	        " (\"<status> [time_limit]\", renamed in: whole or absent).\n"
	        "cd ",
	        out, n, &at) ||
	    sh_quote(job_dir, out, n, &at) || put(" || exit 1\n", out, n, &at))
		return -1;
	/* the traps first: a signal that comes before the worker has
	 * started is kept and passed on once it has */
	if (put("rm -f " SLURM_STATUS ".tmp\n"
	        "pid=\nstop=\nwarned=\n"
	        "# a cancel (scancel --signal=TERM) or the time limit: the "
	        "worker stops\n"
	        "trap 'stop=1; [ -n \"$pid\" ] && kill -TERM $pid 2>/dev/null' "
	        "TERM INT\n"
	        "# the time limit is near: say so in the status\n"
	        "trap 'warned=1' USR1\n",
	        out, n, &at))
		return -1;
	for (size_t i = 0; worker_argv[i] != NULL; i++) {
		if ((i > 0 && put(" ", out, n, &at)) ||
		    sh_quote(worker_argv[i], out, n, &at))
			return -1;
	}
	if (put(" >" SLURM_PROGRESS " &\n"
	        "pid=$!\n"
	        "[ -n \"$stop\" ] && kill -TERM $pid 2>/dev/null\n"
	        "wait $pid\n"
	        "rc=$?\n"
	        "while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done\n"
	        "why=\n"
	        "[ -n \"$warned\" ] && [ \"$rc\" -ne 0 ] && why=' time_limit'\n"
	        "printf '%s%s\\n' \"$rc\" \"$why\" >" SLURM_STATUS ".tmp &&\n"
	        "\tmv -f " SLURM_STATUS ".tmp " SLURM_STATUS "\n"
	        "exit $rc\n",
	        out, n, &at))
		return -1;
	return 0;
}

int
slurm_parse_sbatch(const char *line, char *out, size_t n)
{
	size_t l = 0;

	while (isspace((unsigned char) *line))
		line++;
	while (isdigit((unsigned char) line[l]))
		l++;
	if (l == 0 || l >= n ||
	    (line[l] != '\0' && line[l] != ';' &&
	     !isspace((unsigned char) line[l])))
		return -1;
	memcpy(out, line, l);
	out[l] = '\0';
	return 0;
}

/* the next blank-separated word of *p into out (cut to n - 1) */
static int
word(const char **p, char *out, size_t n)
{
	const char *s = *p;
	size_t l = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	while (s[l] != '\0' && s[l] != ' ' && s[l] != '\t' && s[l] != '\n')
		l++;
	if (l == 0)
		return -1;
	snprintf(out, n, "%.*s", (int) l, s);
	*p = s + l;
	return 0;
}

int
slurm_parse_squeue(const char *line, struct slurm_row *r)
{
	const char *p = line;
	size_t l;

	memset(r, 0, sizeof(*r));
	if (word(&p, r->id, sizeof(r->id)) ||
	    word(&p, r->state, sizeof(r->state)))
		return -1;
	for (const char *c = r->id; *c != '\0'; c++) {
		if (!isdigit((unsigned char) *c))
			return -1;
	}
	for (const char *c = r->state; *c != '\0'; c++) {
		if (!isupper((unsigned char) *c) && *c != '_')
			return -1;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	l = strcspn(p, "\n");
	while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\t'))
		l--;
	snprintf(r->reason, sizeof(r->reason), "%.*s", (int) l, p);
	return 0;
}

enum slurm_phase
slurm_phase(const char *state)
{
	static const char *const pending[] = {
	        "PENDING",     "CONFIGURING", "REQUEUED",      "REQUEUE_HOLD",
	        "REQUEUE_FED", "SUSPENDED",   "RESV_DEL_HOLD",
	};
	static const char *const running[] = {
	        "RUNNING",   "COMPLETING", "STAGE_OUT",
	        "SIGNALING", "RESIZING",   "STOPPED",
	};
	static const char *const ended[] = {
	        "COMPLETED", "CANCELLED", "FAILED",        "TIMEOUT",
	        "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
	        "DEADLINE",  "REVOKED",   "SPECIAL_EXIT",
	};
	for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++) {
		if (strcmp(state, pending[i]) == 0)
			return SLURM_PENDING;
	}
	for (size_t i = 0; i < sizeof(running) / sizeof(running[0]); i++) {
		if (strcmp(state, running[i]) == 0)
			return SLURM_RUNNING;
	}
	for (size_t i = 0; i < sizeof(ended) / sizeof(ended[0]); i++) {
		if (strcmp(state, ended[i]) == 0)
			return SLURM_ENDED;
	}
	return SLURM_UNKNOWN;
}

static int
is(const char *state, const char *name)
{
	return state != NULL && strcmp(state, name) == 0;
}

/* polls a final state may wait for its status file (shared filesystem
 * caches) before it is decided without */
#define SLURM_STATUS_WAIT 3

enum slurm_action
slurm_decide(const struct slurm_end *e, int *code, char *msg, size_t msglen)
{
	const char *st = e->state;

	*code = 0;
	msg[0] = '\0';
	/* a whole result wins over how Slurm saw the end */
	if (e->have_status && e->status == 0 && e->have_out)
		return SLURM_DONE;
	if (e->canceled) {
		*code = NQ_ECANCELED;
		snprintf(msg, msglen, "canceled");
		return SLURM_CANCEL;
	}
	if (is(st, "TIMEOUT") || is(st, "DEADLINE") ||
	    (e->have_status && e->warned)) {
		*code = NQ_ETIMEDOUT;
		snprintf(msg, msglen,
		         "time limit of %" PRId64 " s exceeded (Slurm %s)",
		         e->time_limit_s, st != NULL ? st : "TIMEOUT");
		return SLURM_FAIL;
	}
	if (is(st, "OUT_OF_MEMORY")) {
		*code = NQ_ENOMEM;
		snprintf(msg, msglen,
		         "out of memory: the job went past its Slurm memory "
		         "limit (OUT_OF_MEMORY)");
		return SLURM_FAIL;
	}
	if (is(st, "NODE_FAIL") || is(st, "PREEMPTED") || is(st, "BOOT_FAIL")) {
		snprintf(msg, msglen, "Slurm ended the attempt: %s", st);
		return SLURM_RETRY;
	}
	if (is(st, "CANCELLED")) {
		*code = NQ_ECANCELED;
		snprintf(msg, msglen,
		         "canceled in Slurm (scancel outside neuroq, e.g. by "
		         "an administrator)");
		return SLURM_CANCEL;
	}
	if (e->have_status) {
		if (e->status == 0) {
			*code = NQ_EINTERNAL;
			snprintf(msg, msglen,
			         "the worker exited 0 but left no result");
			return SLURM_FAIL;
		}
		if (e->status > 128) {
			snprintf(msg, msglen,
			         "worker killed by signal %d on the node",
			         e->status - 128);
			return SLURM_RETRY;
		}
		return SLURM_ERRFILE;
	}
	if (st == NULL) {
		/* slurmctld forgot it and it left nothing: lost with its
		 * node, or killed before the script could write */
		snprintf(msg, msglen,
		         "the Slurm job ended without a status file (its node "
		         "failed, or it was killed)");
		return SLURM_RETRY;
	}
	if (e->waited < SLURM_STATUS_WAIT)
		return SLURM_WAIT;
	*code = NQ_EFAILED;
	snprintf(msg, msglen,
	         "the Slurm job ended %s without a status file (see "
	         "slurm.out in its spool dir)",
	         st);
	return SLURM_FAIL;
}

int
slurm_gres_gpus(const char *gres, char *type, size_t typelen)
{
	const char *p = gres;
	int total = 0;

	if (type != NULL && typelen > 0)
		type[0] = '\0';
	while (*p != '\0') {
		char item[128];
		size_t l = 0;
		int depth = 0;
		/* one item: up to a ',' outside parentheses */
		while (p[l] != '\0' && (depth > 0 || p[l] != ',')) {
			if (p[l] == '(')
				depth++;
			else if (p[l] == ')' && depth > 0)
				depth--;
			l++;
		}
		snprintf(item, sizeof(item), "%.*s", (int) l, p);
		p += l;
		if (*p == ',')
			p++;
		item[strcspn(item, "(")] = '\0';
		if (strncmp(item, "gpu", 3) != 0 ||
		    (item[3] != '\0' && item[3] != ':'))
			continue;
		/* gpu, gpu:N, gpu:type, gpu:type:N */
		char *f1 = item[3] == ':' ? item + 4 : NULL;
		char *f2 = f1 != NULL ? strchr(f1, ':') : NULL;
		const char *num = NULL;
		if (f2 != NULL) {
			*f2++ = '\0';
			num = f2;
			if (type != NULL && type[0] == '\0')
				snprintf(type, typelen, "%s", f1);
		} else if (f1 != NULL && isdigit((unsigned char) *f1)) {
			num = f1;
		} else if (f1 != NULL && type != NULL && type[0] == '\0') {
			snprintf(type, typelen, "%s", f1);
		}
		if (num == NULL) {
			total += 1;
		} else {
			char *end;
			long v = strtol(num, &end, 10);
			if (end != num && v > 0 && v < 1000000)
				total += (int) v;
		}
	}
	return total;
}

int
slurm_parse_sinfo(const char *line, struct slurm_node *n)
{
	const char *p = line;
	char gres[256], used[256], mem[32], cpus[64];
	char *end;

	memset(n, 0, sizeof(*n));
	if (word(&p, n->node, sizeof(n->node)) ||
	    word(&p, n->partition, sizeof(n->partition)) ||
	    word(&p, gres, sizeof(gres)) || word(&p, used, sizeof(used)) ||
	    word(&p, mem, sizeof(mem)) || word(&p, cpus, sizeof(cpus)) ||
	    word(&p, n->state, sizeof(n->state)))
		return -1;
	n->partition[strcspn(n->partition, "*")] = '\0';
	n->gpus = slurm_gres_gpus(gres, n->gpu_type, sizeof(n->gpu_type));
	n->gpus_used = slurm_gres_gpus(used, NULL, 0);
	n->mem_mb = strtoull(mem, &end, 10);
	if (end == mem)
		return -1;
	/* CPUsState: allocated/idle/other/total */
	int *f[4] = {&n->cpus_alloc, &n->cpus_idle, &n->cpus_other,
	             &n->cpus_total};
	const char *c = cpus;
	for (int i = 0; i < 4; i++) {
		long v = strtol(c, &end, 10);
		if (end == c || v < 0 || v > 1000000 ||
		    *end != (i < 3 ? '/' : '\0'))
			return -1;
		*f[i] = (int) v;
		c = end + 1;
	}
	return 0;
}
