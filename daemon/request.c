/* request.c — see request.h. */
#include "request.h"

#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "nq_error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct req *
req_new(struct daemon *d, struct net_req *nr, uint32_t uid, void *body,
        size_t len)
{
	struct req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->d = d;
	r->nr = nr;
	r->uid = uid;
	r->body = body;
	r->len = len;
	r->val.kind = NQ_NIL;
	r->msg = r->msgbuf;
	r->msglen = sizeof(r->msgbuf);
	return r;
}

int
req_fail(struct req *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, r->msglen, fmt, ap);
	va_end(ap);
	return code;
}

void
req_release_body(struct req *r)
{
	r->m = NULL;
	nq_value_free(&r->val); /* before the bytes it borrows */
	net_req_release_body(r->nr);
	r->body = NULL;
}

static int
encode_reply(struct nq_map *m, void **reply, size_t *len)
{
	struct nq_value v = nq_val_map(m);
	int rc = nq_encode(&v, reply, len);

	nq_value_free(&v);
	return rc;
}

static void
reply_error(int code, const char *message, void **reply, size_t *len)
{
	struct nq_map *m = nq_map_new();

	*reply = NULL;
	if (m == NULL)
		return;
	if (message == NULL || message[0] == '\0')
		message = nq_strerror(code);
	if (nq_map_set_int(m, "v", NQ_PROTOCOL_VERSION) ||
	    nq_map_set_bool(m, "ok", 0) || nq_map_set_int(m, "code", code) ||
	    nq_map_set_str(m, "error", nq_errname(code)) ||
	    nq_map_set_str(m, "message", message)) {
		nq_map_free(m);
		return;
	}
	if (encode_reply(m, reply, len) != 0)
		*reply = NULL;
}

static void
req_free(struct req *r)
{
	nq_map_free(r->out);
	nq_map_free(r->empty);
	nq_map_free(r->empty_in);
	net_msg_free(r->encoded);
	nq_value_free(&r->val);
	free(r);
}

/* Answer r (with r->out, r->encoded, or the error rc and r->msg) and free
 * it. */
void
req_finish(struct req *r, int rc)
{
	const char *op = r->op ? r->op : "?";
	void *reply = NULL;
	size_t len = 0;

	if (rc == 0 && r->encoded == NULL) {
		if (nq_map_set_int(r->out, "v", NQ_PROTOCOL_VERSION) ||
		    nq_map_set_bool(r->out, "ok", 1)) {
			rc = NQ_ENOMEM;
		} else {
			rc = encode_reply(r->out, &reply, &len);
			r->out = NULL; /* encode_reply freed it */
			if (rc != 0) {
				rc = NQ_ENOMEM;
				reply = NULL;
				snprintf(r->msg, r->msglen,
				         "cannot encode the reply");
			}
		}
	}
	metrics_count_request(r->d->metrics, r->op, rc);
	if (rc == 0) {
		log_debug("request op=%s uid=%" PRIu32 " ok=1", op, r->uid);
		if (r->encoded != NULL) {
			net_reply_msg(r->nr, r->encoded);
			r->encoded = NULL;
		} else {
			net_reply(r->nr, reply, len);
		}
	} else {
		log_debug("request op=%s uid=%" PRIu32
		          " error=%s message=\"%s\"",
		          op, r->uid, nq_errname(rc), r->msg);
		reply_error(rc, r->msg, &reply, &len);
		net_reply(r->nr, reply, len);
	}
	req_free(r);
}

void
req_check_quiet(struct daemon *d)
{
	if (d->stopping && d->inflight == 0 && d->quiet != NULL) {
		void (*cb)(struct daemon *) = d->quiet;
		d->quiet = NULL;
		cb(d);
	}
}

static void
req_work_cb(uv_work_t *w)
{
	struct req *r = w->data;

	r->work_rc = r->work_fn(r);
}

static void
req_after_cb(uv_work_t *w, int status)
{
	struct req *r = w->data;
	struct daemon *d = r->d;
	int rc = r->work_rc;

	if (status != 0) /* UV_ECANCELED: never cancelled, but be safe */
		rc = req_fail(r, NQ_ESHUTDOWN, "the daemon is shutting down");
	/* after_fn may queue the next work item of the same request (decode,
	 * then submit's staging): count it before this one goes */
	rc = r->after_fn(r, rc);
	d->inflight--;
	if (rc != REQ_DEFERRED)
		req_finish(r, rc);
	req_check_quiet(d);
}

/* Run work(r) in the threadpool, then after(r, its rc) on the loop thread;
 * REQ_DEFERRED (after's result answers r). While stopping, or if the
 * pool refuses, both run here and now. */
int
req_defer(struct req *r, int (*work)(struct req *r),
          int (*after)(struct req *r, int rc))
{
	struct daemon *d = r->d;

	r->work_fn = work;
	r->after_fn = after;
	r->work.data = r;
	if (!d->stopping &&
	    uv_queue_work(d->loop, &r->work, req_work_cb, req_after_cb) == 0) {
		d->inflight++;
		return REQ_DEFERRED;
	}
	return after(r, work(r));
}
