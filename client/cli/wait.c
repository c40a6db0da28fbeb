/*
 * wait.c — `neuroq wait ID [--timeout S]`: poll status until the job ends,
 * with a progress bar (stage, elapsed, the daemon's ETA) on a terminal and a
 * line per state/stage change or 10 % of progress otherwise.
 *
 * Polling (every 0.25 s) rather than the PUB event stream: status is the
 * truth, events are lossy hints, and a poll costs the daemon one SQLite read.
 * A daemon restart during the wait is ridden out (the job is requeued and
 * finishes later); only the --timeout deadline gives up.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "nq_clock.h"
#include "nq_error.h"

void cli_print_job(const struct nq_map *job); /* cmds.c */

static void
sleep_s(double s)
{
	struct timespec ts = {(time_t) s, (long) ((s - (time_t) s) * 1e9)};

	nanosleep(&ts, NULL);
}

/* "1h02m", "3m05s", "42s" */
void
cli_fmt_dur(char *buf, size_t n, double s)
{
	long t = lround(s);

	if (t >= 3600)
		snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
	else if (t >= 60)
		snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
	else
		snprintf(buf, n, "%lds", t);
}

static double
clamp01(double p)
{
	return p >= 0 ? (p > 1 ? 1 : p) : 0;
}

/* "eta 3m05s" from the daemon's estimate; "eta ?" while it has none */
static void
fmt_eta(char *buf, size_t n, const struct nq_map *job)
{
	double eta = cli_map_num(job, "eta_s", -1);
	char d[32];

	if (strcmp(cli_map_str(job, "state", ""), "RUNNING") != 0)
		buf[0] = 0;
	else if (!(eta >= 0) || !isfinite(eta))
		snprintf(buf, n, "eta ?");
	else {
		cli_fmt_dur(d, sizeof(d), eta);
		snprintf(buf, n, "eta %s", d);
	}
}

static void
draw_bar(long long id, const struct nq_map *job, double elapsed)
{
	const char *state = cli_map_str(job, "state", "?");
	const char *stage = cli_map_str(job, "stage", "");
	double p = clamp01(cli_map_num(job, "progress", 0));
	int width = 30, fill;
	char bar[64], eta[48], el[32];

	fill = (int) lround(p * width);
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	fmt_eta(eta, sizeof(eta), job);
	cli_fmt_dur(el, sizeof(el), elapsed);
	fprintf(stderr, "\r\033[Kjob %lld %-8s [%s] %3.0f%% %-12.12s %6s %s",
	        id, state, bar, 100 * p, stage, el, eta);
	fflush(stderr);
}

/*
 * Without a terminal (logs, batch scripts): one line when the state or
 * stage changes or progress passes another 10 %, so a log shows where a
 * long job is without a carriage-return bar.
 */
struct log_state {
	char state[16], stage[64];
	int decile;
};

static void
log_line(struct log_state *ls, long long id, const struct nq_map *job,
         double elapsed)
{
	const char *state = cli_map_str(job, "state", "?");
	const char *stage = cli_map_str(job, "stage", "");
	double p = clamp01(cli_map_num(job, "progress", 0));
	int dec = (int) (p * 10);
	char eta[48], el[32];

	if (!strcmp(ls->state, state) && !strcmp(ls->stage, stage) &&
	    dec <= ls->decile)
		return;
	snprintf(ls->state, sizeof(ls->state), "%s", state);
	snprintf(ls->stage, sizeof(ls->stage), "%s", stage);
	ls->decile = dec;
	fmt_eta(eta, sizeof(eta), job);
	cli_fmt_dur(el, sizeof(el), elapsed);
	fprintf(stderr, "job %lld %s %.0f%%%s%s elapsed %s%s%s\n", id, state,
	        100 * p, *stage ? " " : "", stage, el, *eta ? " " : "", eta);
	fflush(stderr);
}

static int
ended(const char *state)
{
	return !strcmp(state, "DONE") || !strcmp(state, "FAILED") ||
	       !strcmp(state, "CANCELED");
}

int
cmd_wait(struct cli *c, int argc, char **argv)
{
	const char *ids = NULL;
	double deadline_s = -1, t0 = nq_mono_s(), poll = 0.25;
	long long id;
	int tty = isatty(2) && !c->json, rv = CLI_EREACH, seen = 0;
	int logl = !isatty(2) && !c->json;
	struct log_state ls = {"", "", -1};
	struct nq_value rep = {0};

	for (int i = 0; i < argc; i++) {
		const char *v = NULL;
		if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			v = argv[++i];
		else if (!strncmp(argv[i], "--timeout=", 10))
			v = argv[i] + 10;
		else if (argv[i][0] == '-' && argv[i][1]) {
			cli_usage_error("wait: unknown option %s", argv[i]);
			return CLI_EUSAGE;
		} else if (!ids) {
			ids = argv[i];
			continue;
		} else {
			cli_usage_error("wait: one job id only");
			return CLI_EUSAGE;
		}
		if (cli_parse_seconds(v, &deadline_s))
			return CLI_EUSAGE;
	}
	if (!ids) {
		cli_usage_error("wait needs a job id");
		return CLI_EUSAGE;
	}
	if (cli_parse_id(ids, &id))
		return CLI_EUSAGE;

	for (;;) {
		struct nq_map *req = nq_map_new();
		const struct nq_value *job;
		double el = nq_mono_s() - t0;
		if (!req || nq_map_set_int(req, "id", id)) {
			if (req)
				nq_map_free(req);
			return CLI_EREACH;
		}
		/* after the first answer, a vanished daemon is waited out */
		c->quiet = seen;
		rv = cli_call(c, "status", req, &rep);
		c->quiet = 0;
		if (rv == CLI_EREPLY) {
			if (c->json) {
				cli_json_print(stdout, &rep);
				fputc('\n', stdout);
			}
			nq_value_free(&rep);
			if (tty)
				fputc('\n', stderr);
			return rv;
		}
		if (rv == CLI_EREACH && !seen)
			return rv;
		if (rv == CLI_OK) {
			seen = 1;
			job = nq_map_get(rep.u.map, "job");
			if (!job || job->kind != NQ_MAP) {
				fprintf(stderr, "neuroq: status reply has no "
				                "job map\n");
				nq_value_free(&rep);
				return CLI_EREPLY;
			}
			if (tty)
				draw_bar(id, job->u.map, el);
			else if (logl)
				log_line(&ls, id, job->u.map, el);
			const char *st = cli_map_str(job->u.map, "state", "?");
			if (ended(st))
				break;
			nq_value_free(&rep);
		}
		if (deadline_s >= 0 && nq_mono_s() - t0 >= deadline_s) {
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr,
			        "neuroq: job %lld has not ended after %g s\n",
			        id, deadline_s);
			return CLI_EREACH;
		}
		sleep_s(poll);
	}
	if (tty)
		fputc('\n', stderr);

	const struct nq_map *job = nq_map_get(rep.u.map, "job")->u.map;
	const char *st = cli_map_str(job, "state", "?");
	if (c->json) {
		cli_json_print(stdout, nq_map_get(rep.u.map, "job"));
		fputc('\n', stdout);
	} else {
		printf("%s\n", st);
	}
	if (!strcmp(st, "DONE")) {
		rv = CLI_OK;
	} else if (!strcmp(st, "CANCELED")) {
		rv = CLI_ECANCELED;
	} else {
		double code = cli_map_num(job, "error_code", 0);
		fprintf(stderr, "neuroq: job %lld failed: %s: %s\n", id,
		        code ? nq_errname((int) code) : "EFAILED",
		        cli_map_str(job, "error", ""));
		rv = CLI_EFAILED;
	}
	nq_value_free(&rep);
	return rv;
}
