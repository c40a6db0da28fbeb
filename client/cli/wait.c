/*
 * wait.c — `neuroq wait ID [--timeout S]`: poll status until the job ends.
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
#include "nq_error.h"

void cli_print_job(const struct nq_map *job); /* cmds.c */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
sleep_s(double s)
{
	struct timespec ts = {(time_t) s, (long) ((s - (time_t) s) * 1e9)};

	nanosleep(&ts, NULL);
}

static void
draw_bar(long long id, const struct nq_map *job, double elapsed)
{
	const char *state = cli_map_str(job, "state", "?");
	const char *stage = cli_map_str(job, "stage", "");
	double p = cli_map_num(job, "progress", 0);
	int width = 30, fill;
	char bar[64];

	if (!(p >= 0))
		p = 0;
	if (p > 1)
		p = 1;
	fill = (int) lround(p * width);
	for (int i = 0; i < width; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[width] = 0;
	fprintf(stderr, "\r\033[Kjob %lld %-8s [%s] %3.0f%% %-12.12s %6.1fs",
	        id, state, bar, 100 * p, stage, elapsed);
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
	double deadline_s = -1, t0 = now_s(), poll = 0.25;
	long long id;
	int tty = isatty(2) && !c->json, rv = CLI_EREACH, seen = 0;
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
		double el = now_s() - t0;
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
			const char *st = cli_map_str(job->u.map, "state", "?");
			if (ended(st))
				break;
			nq_value_free(&rep);
		}
		if (deadline_s >= 0 && now_s() - t0 >= deadline_s) {
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
