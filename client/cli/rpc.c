/*
 * rpc.c — one REQ socket to the daemon's control socket (for an ssh:// URL,
 * through an ssh_tunnel to it).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "cli.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "ssh_tunnel.h"

/* A request refused with EBUSY (the daemon's max_upload_bytes is taken by
 * other uploads) is sent again after 0.1-0.2 s, doubling up to 5 s, each
 * pause randomised, for up to this long; then the EBUSY is the answer. */
#define BUSY_RETRY_S  300.0
#define BUSY_FIRST_MS 200
#define BUSY_MAX_MS   5000

/* The CLI makes one connection per process: one tunnel. */
static struct ssh_tunnel tunnel;

/* Transport trouble; `wait` retries quietly across daemon restarts. */
static void reach_err(const struct cli *c, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
reach_err(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	if (c->quiet)
		return;
	fputs("neuroq: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *
cli_default_url(char *buf, size_t len)
{
	const char *env = getenv("NEUROQ_URL");
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (env && *env)
		return env;
	if (xdg && *xdg) {
		snprintf(buf, len, "ipc://%s/neuroq/neuroq.sock", xdg);
		return buf;
	}
	return "ipc:///run/neuroq/neuroq.sock";
}

static void
tunnel_atexit(void)
{
	ssh_tunnel_close(&tunnel);
}

static void
tunnel_on_signal(int sig)
{
	ssh_tunnel_kill_now(&tunnel);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ssh:// URL: start the tunnel (once; again when ssh died) and return the
 * local ipc:// URL to dial; other URLs as they are.  NULL on failure
 * (message printed). */
static const char *
tunnel_url(struct cli *c)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
	static int hooked;
	char msg[768];

	if (!ssh_url_is(c->url))
		return c->url;
	if (ssh_tunnel_alive(&tunnel))
		return tunnel.url;
	ssh_tunnel_close(&tunnel);
	/* hooked before ssh starts: a signal at any moment cleans up */
	if (!hooked) {
		hooked = 1;
		atexit(tunnel_atexit);
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
			struct sigaction sa, old;
			if (sigaction(sigs[i], NULL, &old) != 0 ||
			    old.sa_handler != SIG_DFL)
				continue;
			memset(&sa, 0, sizeof(sa));
			sa.sa_handler = tunnel_on_signal;
			sigemptyset(&sa.sa_mask);
			sigaction(sigs[i], &sa, NULL);
		}
	}
	if (ssh_tunnel_open(&tunnel, c->url, c->timeout_s, msg, sizeof(msg))) {
		reach_err(c, "cannot reach the daemon at %s: %s", c->url, msg);
		return NULL;
	}
	return tunnel.url;
}

static int
cli_connect(struct cli *c)
{
	nng_socket s;
	const char *url;
	int rv;

	if (c->have_conn && ssh_url_is(c->url) && !ssh_tunnel_alive(&tunnel))
		cli_close(c); /* the ssh connection dropped: a new one */
	if (c->have_conn)
		return 0;
	if (!(url = tunnel_url(c)))
		return CLI_EREACH;
	if ((rv = nng_req0_open(&s)) != 0) {
		reach_err(c, "cannot open a socket: %s", nng_strerror(rv));
		return CLI_EREACH;
	}
	/* Results can be hundreds of MB (N×N covariances); the daemon is the
	 * party we trust here, so no receive cap. */
	nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO,
	                  (nng_duration) (c->timeout_s * 1000.0));
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO,
	                  (nng_duration) (c->timeout_s * 1000.0));
	/* A synchronous dial fails at once when no daemon listens, which is
	 * what a user wants to hear; later reconnects (daemon restarts during
	 * `wait`) are handled by the dialer in the background. */
	if ((rv = nng_dial(s, url, NULL, 0)) != 0) {
		reach_err(c, "cannot reach the daemon at %s: %s", c->url,
		          nng_strerror(rv));
		nng_close(s);
		return CLI_EREACH;
	}
	c->sock = nng_socket_id(s);
	c->have_conn = 1;
	return 0;
}

void
cli_close(struct cli *c)
{
	if (c->have_conn) {
		nng_socket s = NNG_SOCKET_INITIALIZER;
		s.id = c->sock;
		nng_close(s);
		c->have_conn = 0;
	}
	ssh_tunnel_close(&tunnel);
}

void
cli_print_error_reply(const struct nq_map *reply)
{
	const char *name = cli_map_str(reply, "error", NULL);
	const char *msg = cli_map_str(reply, "message", "");
	double code = cli_map_num(reply, "code", 0);

	if (!name)
		name = nq_errname((int) code);
	fprintf(stderr, "neuroq: %s: %s\n", name, msg);
}

/* Over the daemon's max_message_bytes (plus a margin) NNG just drops the
 * pipe and the user would see a timeout; ask hello for the limit first when a
 * request is big, and say what is wrong. */
#define BIG_REQUEST (1u << 20)

static int
check_size(struct cli *c, size_t len, struct nq_value *reply)
{
	struct nq_value h;
	struct nq_map *m;
	char msg[160];
	double max;

	if (cli_call(c, "hello", NULL, &h) != CLI_OK) {
		nq_value_free(&h);
		return 0; /* let the real request report the trouble */
	}
	max = cli_map_num(h.u.map, "max_message_bytes", 0);
	nq_value_free(&h);
	if (!(max > 0 && (double) len > max))
		return 0;
	snprintf(msg, sizeof(msg),
	         "request of %zu bytes exceeds the daemon's "
	         "max_message_bytes %.0f",
	         len, max);
	/* the same shape as the daemon's error reply, for --json */
	if ((m = nq_map_new()) != NULL) {
		nq_map_set_int(m, "v", NQ_PROTOCOL_VERSION);
		nq_map_set_bool(m, "ok", 0);
		nq_map_set_int(m, "code", NQ_ETOOBIG);
		nq_map_set_str(m, "error", nq_errname(NQ_ETOOBIG));
		nq_map_set_str(m, "message", msg);
		*reply = nq_val_map(m);
	}
	fprintf(stderr, "neuroq: ETOOBIG: %s\n", msg);
	return CLI_EREPLY;
}

/* 1 when reply is an EBUSY refusal worth another try (the pause slept),
 * else 0. */
static int
busy_again(struct cli *c, const struct nq_value *reply, double t0,
           int *pause_ms, int *told)
{
	const struct nq_value *ok = nq_map_get(reply->u.map, "ok");
	struct timespec ts;
	int ms;

	if ((ok && ok->kind == NQ_BOOL && ok->u.b) ||
	    (int) cli_map_num(reply->u.map, "code", 0) != NQ_EBUSY)
		return 0;
	/* half to all of the pause: refused clients come back apart */
	ms = *pause_ms / 2 + (int) ((nq_mono_ms() ^ (int64_t) getpid() * 7919) %
	                            (*pause_ms / 2 + 1));
	if (nq_mono_s() - t0 + ms / 1000.0 > BUSY_RETRY_S)
		return 0;
	if (!*told && !c->quiet)
		fprintf(stderr,
		        "neuroq: the daemon is busy with other uploads; "
		        "sending again in a moment\n");
	*told = 1;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long) (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	*pause_ms = *pause_ms * 2 > BUSY_MAX_MS ? BUSY_MAX_MS : *pause_ms * 2;
	return 1;
}

/* One request's bytes out, its reply in (*reply: a map, ok or not):
 * CLI_OK, or CLI_EREACH (message printed). */
static int
rpc_once(struct cli *c, const void *buf, size_t len, struct nq_value *reply)
{
	nng_socket s = NNG_SOCKET_INITIALIZER;
	void *rbuf = NULL;
	size_t rlen = 0;
	char err[256];
	int rv;

	s.id = c->sock;
	if ((rv = nng_send(s, (void *) buf, len, 0)) != 0) {
		reach_err(c, "sending to %s: %s", c->url, nng_strerror(rv));
		return CLI_EREACH;
	}
	if ((rv = nng_recv(s, &rbuf, &rlen, NNG_FLAG_ALLOC)) != 0) {
		if (rv == NNG_ETIMEDOUT)
			reach_err(c,
			          "no reply from the daemon at %s within %g s "
			          "(--timeout)",
			          c->url, c->timeout_s);
		else
			reach_err(c, "receiving from %s: %s", c->url,
			          nng_strerror(rv));
		return CLI_EREACH;
	}
	rv = nq_decode(rbuf, rlen, reply, err, sizeof(err));
	nng_free(rbuf, rlen);
	if (rv != 0 || reply->kind != NQ_MAP) {
		fprintf(stderr, "neuroq: malformed reply from the daemon: %s\n",
		        rv ? err : "not a map");
		nq_value_free(reply);
		return CLI_EREACH;
	}
	return CLI_OK;
}

/* A big request asks for room first (the reserve op): *reply is then the
 * reserve's reply when it is a refusal (EBUSY: try again; anything else is
 * ignored, e.g. EBADOP from an older daemon), else NIL. */
static int
rpc_reserve(struct cli *c, size_t len, struct nq_value *reply)
{
	struct nq_map *m = nq_map_new();
	struct nq_value v;
	void *buf = NULL;
	size_t blen = 0;
	int rc;

	memset(reply, 0, sizeof(*reply));
	if (m == NULL || nq_map_set_int(m, "v", NQ_PROTOCOL_VERSION) ||
	    nq_map_set_str(m, "op", "reserve") ||
	    nq_map_set_int(m, "bytes", (int64_t) len)) {
		nq_map_free(m);
		return CLI_OK; /* then without */
	}
	v = nq_val_map(m);
	rc = nq_encode(&v, &buf, &blen);
	nq_value_free(&v);
	if (rc != 0)
		return CLI_OK;
	rc = rpc_once(c, buf, blen, reply);
	free(buf);
	if (rc == CLI_OK &&
	    (int) cli_map_num(reply->u.map, "code", 0) != NQ_EBUSY)
		nq_value_free(reply);
	return rc;
}

int
cli_call(struct cli *c, const char *op, struct nq_map *req,
         struct nq_value *reply)
{
	double t0 = nq_mono_s();
	int pause_ms = BUSY_FIRST_MS, told = 0;
	struct nq_value v = {0};
	void *buf = NULL;
	size_t len = 0;
	const struct nq_value *ok;
	int ret = CLI_EREACH;

	memset(reply, 0, sizeof(*reply));
	if (!req && !(req = nq_map_new()))
		goto nomem;
	if (nq_map_set_int(req, "v", NQ_PROTOCOL_VERSION) ||
	    nq_map_set_str(req, "op", op)) {
		nq_map_free(req);
		goto nomem;
	}
	v = nq_val_map(req);
	if (nq_encode(&v, &buf, &len) != 0) {
		nq_value_free(&v);
		goto nomem;
	}
	nq_value_free(&v);
	if ((ret = cli_connect(c)) != 0)
		goto out;
	if (len > BIG_REQUEST && (ret = check_size(c, len, reply)) != 0)
		goto out;
again:
	if (len > BIG_REQUEST && strcmp(op, "reserve") != 0) {
		if ((ret = rpc_reserve(c, len, reply)) != CLI_OK)
			goto out;
		if (reply->kind == NQ_MAP)
			goto refused;
	}
	if ((ret = rpc_once(c, buf, len, reply)) != CLI_OK)
		goto out;
refused:
	if (busy_again(c, reply, t0, &pause_ms, &told)) {
		nq_value_free(reply);
		goto again;
	}
	ok = nq_map_get(reply->u.map, "ok");
	if (ok && ok->kind == NQ_BOOL && ok->u.b) {
		ret = CLI_OK;
	} else {
		cli_print_error_reply(reply->u.map);
		ret = CLI_EREPLY;
	}
out:
	free(buf);
	return ret;
nomem:
	fprintf(stderr, "neuroq: out of memory\n");
	return CLI_EREACH;
}
