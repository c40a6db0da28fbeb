/* server.c — see server.h: a request's size cap, its decoding (in the
 * threadpool when big), the protocol version and the op (ops.h). */
#include "server.h"

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "net.h"
#include "nq_error.h"
#include "ops.h"
#include "request.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *name;
	int (*fn)(struct req *r);
} server_ops[] = {
        {"hello", ops_hello},     {"submit", ops_submit},
        {"status", ops_status},   {"list", ops_list},
        {"cancel", ops_cancel},   {"result", ops_result},
        {"devices", ops_devices}, {"logs", ops_logs},
        {"queue", ops_queue},     {"describe", ops_describe},
        {"reserve", ops_reserve},
};

/* Threadpool for big requests, else inline. Big arrays stay in the
 * message (decoded in place, no copy): it goes with r->val
 * (req_release_body, or the reply); a failed decode frees it here, off the
 * loop thread. */
static int
decode_work(struct req *r)
{
	int rc = nq_decode_inplace(r->body, r->len, &r->val, r->msg, r->msglen);

	if (rc != 0)
		req_release_body(r);
	return rc;
}

/* Loop thread: the decoded request to its op. */
static int
dispatch(struct req *r, int rc)
{
	int64_t ver;

	if (rc != 0)
		return rc;
	if (r->val.kind != NQ_MAP)
		return req_fail(r, NQ_EPROTO, "a request is a msgpack map");
	r->m = r->val.u.map;
	if (!nq_has(r->m, "v"))
		return req_fail(r, NQ_EVERSION,
		                "v: missing (the protocol version, %d)",
		                NQ_PROTOCOL_VERSION);
	rc = nq_get_int(r->m, "v", &ver, r->msg, r->msglen);
	if (rc != 0 || ver != NQ_PROTOCOL_VERSION)
		return req_fail(r, NQ_EVERSION,
		                "v: this daemon speaks protocol version %d",
		                NQ_PROTOCOL_VERSION);
	r->op = NULL;
	rc = nq_get_str(r->m, "op", &r->op, r->msg, r->msglen);
	if (rc != 0 || r->op == NULL) {
		r->op = NULL;
		return req_fail(r, NQ_EBADOP, "op: missing or not a string");
	}
	for (size_t i = 0; i < sizeof(server_ops) / sizeof(server_ops[0]);
	     i++) {
		if (strcmp(r->op, server_ops[i].name) != 0)
			continue;
		r->out = nq_map_new();
		if (r->out == NULL)
			return NQ_ENOMEM;
		return server_ops[i].fn(r);
	}
	return req_fail(r, NQ_EBADOP,
	                "op: unknown request '%.32s' (hello, submit, status, "
	                "list, cancel, result, devices, logs, queue, "
	                "describe, reserve)",
	                r->op);
}

void
server_handle(void *arg, struct net_req *nr, uint32_t uid, void *body,
              size_t len)
{
	struct daemon *d = arg;
	struct req *r = req_new(d, nr, uid, body, len);
	size_t held;
	int rc;

	if (r == NULL) {
		net_reply(nr, NULL, 0);
		return;
	}
	if (net_req_busy(nr, &held)) {
		/* refused on receipt (net.h): its bytes are gone already */
		log_info("request refused reason=busy uid=%" PRIu32
		         " bytes=%zu held=%zu max_upload_bytes=%" PRIu64,
		         uid, len, held, d->cfg->max_upload_bytes);
		rc = req_fail(
		        r, NQ_EBUSY,
		        "the daemon is busy: other uploads in progress "
		        "hold %.1f MiB and this request of %.1f MiB would "
		        "pass max_upload_bytes (%.1f MiB); send it again "
		        "in a moment (the neuroq clients do so by "
		        "themselves)",
		        (double) held / (1 << 20), (double) len / (1 << 20),
		        (double) d->cfg->max_upload_bytes / (1 << 20));
	} else if (len > d->cfg->max_message_bytes) {
		/* the transport lets a little more through (net.h) so that
		 * this gets a reply instead of a dropped connection */
		rc = req_fail(r, NQ_ETOOBIG,
		              "request of %zu bytes exceeds max_message_bytes "
		              "%" PRIu64
		              " (send the inputs as several jobs, or "
		              "ask the admin to raise it)",
		              len, d->cfg->max_message_bytes);
	} else if (len >= SERVER_ASYNC_BYTES) {
		rc = req_defer(r, decode_work, dispatch);
	} else {
		rc = dispatch(r, decode_work(r));
	}
	if (rc != REQ_DEFERRED)
		req_finish(r, rc);
}

void
server_quiesce(struct daemon *d, void (*done)(struct daemon *d))
{
	d->stopping = 1;
	d->quiet = done;
	if (d->inflight > 0)
		log_notice("waiting for requests in progress requests=%d",
		           d->inflight);
	req_check_quiet(d);
}
