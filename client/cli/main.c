/*
 * main.c — neuroq, the command-line client of neuroqd.
 *
 * Global options come before the command; --json and --url are also accepted
 * after it.  `--timeout` before the command bounds each request; after `wait`
 * it bounds the wait.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* clang-format off: the help text is laid out by hand */
static const char usage_text[] =
        "usage: neuroq [--url URL] [--json] [--timeout S] COMMAND [ARGS]\n"
        "\n"
        "commands:\n"
        "  devices                       devices of the daemon and what runs "
        "on them\n"
        "  submit TYPE [options]         submit a job, print its id\n"
        "      --data FILE.npy           the same as --input data=FILE.npy\n"
        "      --input NAME=FILE.npy     an input array (repeatable)\n"
        "      --param KEY=VALUE         a job parameter (repeatable), VALUE "
        "is:\n"
        "                                  [..] {..} \"..\"  JSON\n"
        "                                  true | false    a bool\n"
        "                                  42  -3          an int\n"
        "                                  0.5  1e-3       a float\n"
        "                                  0,0.5,1         a list of floats "
        "(every item\n"
        "                                                  a number), cN,cSb a "
        "list of\n"
        "                                                  strings\n"
        "                                  anything else   a string\n"
        "      --device auto|cpu|cuda|cuda:N   where to run (default auto)\n"
        "      --priority N              -100..100 (default 0; higher runs "
        "first)\n"
        "      --idem KEY                idempotency key: a second submit with "
        "the\n"
        "                                same key returns the first job "
        "(default: a\n"
        "                                fresh key per invocation)\n"
        "  status ID                     the job's state, progress, times, "
        "error\n"
        "  wait ID [--timeout S]         wait until the job ends (progress bar "
        "with ETA\n"
        "                                on a terminal, a line per stage or "
        "10 % in logs);\n"
        "                                prints the final state\n"
        "  result ID --out DIR           write DIR/<name>.npy per output array "
        "and\n"
        "                                DIR/result.json with the scalars; "
        "the job's\n"
        "                                warnings go to stderr\n"
        "  cancel ID                     cancel a queued or running job\n"
        "  list [--state S] [--all-users] [--limit N]   your jobs (or "
        "everyone's)\n"
        "  logs ID                       the job's log\n"
        "  top [--once] [--interval S]   the queue, live (like htop): devices' "
        "memory,\n"
        "                                running jobs with progress and ETA, "
        "the queue\n"
        "                                in start order with why each waits, "
        "recent\n"
        "                                jobs; q or Ctrl-C quits; --once: one "
        "frame\n"
        "  describe [TYPE]               the job types' parameters (type, "
        "default,\n"
        "                                range or choices, meaning), inputs "
        "and outputs\n"
        "  version                       client and daemon versions\n"
        "\n"
        "options:\n"
        "  --url URL      daemon address (env NEUROQ_URL; default\n"
        "                 ipc://$XDG_RUNTIME_DIR/neuroq/neuroq.sock when "
        "XDG_RUNTIME_DIR\n"
        "                 is set, else ipc:///run/neuroq/neuroq.sock);\n"
        "                 ssh://[user@]host[:port][/remote.sock] goes "
        "through your\n"
        "                 ssh login (env NEUROQ_SSH, NEUROQ_SSH_OPTS)\n"
        "  --json         machine-readable output: the daemon's reply maps as "
        "one JSON\n"
        "                 line (arrays described as {dtype, shape, nbytes}; "
        "NaN as null)\n"
        "  --timeout S    seconds to wait for each reply (default 30)\n"
        "\n"
        "exit status:\n"
        "  0  success (wait: the job is DONE)\n"
        "  1  the daemon answered with an error (printed as \"neuroq: ENAME: "
        "message\")\n"
        "  2  usage error (bad command line, unreadable input file)\n"
        "  3  wait: the job FAILED\n"
        "  4  wait: the job was CANCELED\n"
        "  5  cannot reach the daemon, no reply in time, or wait --timeout "
        "expired\n";
/* clang-format on */

static const struct {
	const char *name;
	int (*fn)(struct cli *, int, char **);
} commands[] = {
        {"devices", cmd_devices},   {"submit", cmd_submit},
        {"status", cmd_status},     {"wait", cmd_wait},
        {"result", cmd_result},     {"cancel", cmd_cancel},
        {"list", cmd_list},         {"logs", cmd_logs},
        {"version", cmd_version},   {"top", cmd_top},
        {"describe", cmd_describe},
};

int
main(int argc, char **argv)
{
	struct cli c = {0};
	char urlbuf[4096];
	int i, rv, nrest = 0;
	char **rest;
	const char *cmd = NULL;

	c.timeout_s = 30;
	c.url = NULL;
	rest = calloc((size_t) argc + 1, sizeof(*rest));
	if (!rest)
		return CLI_EREACH;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			free(rest);
			return CLI_OK;
		} else if (!strcmp(a, "--json")) {
			c.json = 1;
		} else if (!strcmp(a, "--url") || !strncmp(a, "--url=", 6)) {
			if (a[5] == '=') {
				c.url = a + 6;
			} else if (i + 1 < argc) {
				c.url = argv[++i];
			} else {
				cli_usage_error("--url needs a value");
				goto usage;
			}
		} else if (!cmd && (!strcmp(a, "--timeout") ||
		                    !strncmp(a, "--timeout=", 10))) {
			const char *v = a[9] == '=' ? a + 10 : NULL;
			if (!v && i + 1 < argc)
				v = argv[++i];
			if (!v) {
				cli_usage_error("--timeout needs a value");
				goto usage;
			}
			if (cli_parse_seconds(v, &c.timeout_s))
				goto usage;
			if (c.timeout_s <= 0) {
				cli_usage_error("--timeout must be > 0");
				goto usage;
			}
		} else if (!cmd) {
			if (a[0] == '-') {
				cli_usage_error("unknown option %s", a);
				goto usage;
			}
			cmd = a;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	if (!cmd) {
		fputs(usage_text, stderr);
		goto usage;
	}
	if (!c.url)
		c.url = cli_default_url(urlbuf, sizeof(urlbuf));
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(cmd, commands[k].name) == 0) {
			rv = commands[k].fn(&c, nrest, rest);
			cli_close(&c);
			free(rest);
			fflush(stdout);
			return rv;
		}
	}
	cli_usage_error("unknown command \"%s\"", cmd);
usage:
	free(rest);
	return CLI_EUSAGE;
}
