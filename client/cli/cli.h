/*
 * cli.h — pieces of the neuroq command-line client shared between files.
 *
 * Exit codes are part of the CLI's contract (scripts test them), so they live
 * here once and `neuroq --help` prints the same table.
 */
#ifndef NQ_CLI_H
#define NQ_CLI_H

#include <stdio.h>

#include "nq_value.h"

enum cli_exit {
	CLI_OK = 0,        /* success; for wait: the job is DONE */
	CLI_EREPLY = 1,    /* the daemon answered with an error */
	CLI_EUSAGE = 2,    /* bad command line */
	CLI_EFAILED = 3,   /* wait: the job FAILED */
	CLI_ECANCELED = 4, /* wait: the job was CANCELED */
	CLI_EREACH = 5     /* cannot reach the daemon, or timed out */
};

struct cli {
	const char *url;
	int json;
	double timeout_s; /* per request */
	int quiet;        /* no messages for transport errors */
	int have_conn;
	unsigned sock; /* nng_socket id (kept opaque to most files) */
};

/* rpc.c: request/reply with the daemon.
 * cli_call() sends {v, op, ...fields of req} and returns:
 *   CLI_OK with *reply (a map, ok=true),
 *   CLI_EREPLY with *reply (ok=false; message already printed unless quiet),
 *   CLI_EREACH (message printed).  req is consumed. */
int cli_call(struct cli *c, const char *op, struct nq_map *req,
             struct nq_value *reply);
void cli_close(struct cli *c);
/* Print "neuroq: NAME: message" for an error reply. */
void cli_print_error_reply(const struct nq_map *reply);
const char *cli_default_url(char *buf, size_t len);

/* json.c: JSON out (NaN/Inf as null; arrays as {dtype, shape, nbytes}). */
void cli_json_print(FILE *f, const struct nq_value *v);
/* json.c: parse a JSON text into a value. 0 or -1 with msg. */
int cli_json_parse(const char *s, struct nq_value *out, char *msg,
                   size_t msglen);

/* param.c: "VALUE" of --param KEY=VALUE to a value (rules in --help). */
int cli_param_value(const char *s, struct nq_value *out, char *msg,
                    size_t msglen);
/* value constructors that cannot fail softly: 0 or -1 (out of memory) */
int cli_val_str(struct nq_value *v, const char *s);

/* cmds.c / wait.c */
int cmd_devices(struct cli *c, int argc, char **argv);
int cmd_submit(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_wait(struct cli *c, int argc, char **argv);
int cmd_result(struct cli *c, int argc, char **argv);
int cmd_cancel(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_logs(struct cli *c, int argc, char **argv);
int cmd_version(struct cli *c, int argc, char **argv);
int cmd_top(struct cli *c, int argc, char **argv);      /* top.c */
int cmd_describe(struct cli *c, int argc, char **argv); /* describe.c */

/* util */
int cli_parse_id(const char *s, long long *id);
int cli_parse_seconds(const char *s, double *out);
const char *cli_map_str(const struct nq_map *m, const char *key,
                        const char *dflt);
double cli_map_num(const struct nq_map *m, const char *key, double dflt);
/* "1.5 GiB" (cmds.c); "1h02m", "3m05s", "42s" (wait.c) */
void cli_human_bytes(char *buf, size_t len, double b);
void cli_fmt_dur(char *buf, size_t n, double s);
void cli_usage_error(const char *fmt, ...)
        __attribute__((format(printf, 1, 2)));

#endif
