/* net.c — see net.h. */
#include "net.h"

#include "log.h"
#include "nq_error.h"
#include "spool.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/reqrep0/rep.h>

/* RECV: a receive is posted (NNG threads own the slot); WAIT: queued for
 * the loop thread; BUSY: the handler has it, until net_reply; SEND: the
 * reply is being sent (NNG threads own the slot again). */
enum net_state { NET_RECV, NET_WAIT, NET_BUSY, NET_SEND };

/* A context's slot; it is also the struct net_req the handler sees. */
struct net_req {
	struct net *n;
	nng_ctx ctx;
	nng_aio *aio;
	enum net_state state;
	nng_msg *msg; /* the request, from receive until the reply */
};

struct net {
	nng_socket rep, pub;
	int rep_open, pub_open;
	struct net_config cfg;
	struct net_req *slots;
	int nslots;
	/* slots whose message waits for the loop thread; each slot is in at
	 * most once, so a ring of nslots entries never overflows */
	uv_mutex_t mtx;
	int mtx_ok;
	int *ring;
	int head, count;
	uv_async_t async;
	int async_open;
	net_handler handler;
	void *arg;
};

/* What the transport buffers at most (see NET_OVERSIZE_SLACK). */
static size_t
net_recv_cap(const struct net_config *c)
{
	if (c->max_message_bytes > SIZE_MAX - NET_OVERSIZE_SLACK)
		return SIZE_MAX;
	return c->max_message_bytes + (size_t) NET_OVERSIZE_SLACK;
}

static void
net_fail(char *msg, size_t msglen, const char *what, const char *url, int rv)
{
	snprintf(msg, msglen, "%s %s: %s", what, url, nng_strerror(rv));
}

static void
net_cb(void *arg)
{
	struct net_req *s = arg;
	struct net *n = s->n;
	int rv = nng_aio_result(s->aio);

	if (s->state == NET_RECV) {
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
			return;
		if (rv != 0) {
			/* e.g. a message over the transport's cap: NNG
			 * drops it (and the pipe); keep serving */
			nng_ctx_recv(s->ctx, s->aio);
			return;
		}
		s->msg = nng_aio_get_msg(s->aio);
		s->state = NET_WAIT;
		uv_mutex_lock(&n->mtx);
		n->ring[(n->head + n->count) % n->nslots] =
		        (int) (s - n->slots);
		n->count++;
		uv_mutex_unlock(&n->mtx);
		uv_async_send(&n->async);
		return;
	}
	if (s->state == NET_SEND) {
		if (rv != 0) {
			nng_msg *m = nng_aio_get_msg(s->aio);
			if (m != NULL)
				nng_msg_free(m);
			if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
				return;
		}
		s->state = NET_RECV;
		nng_ctx_recv(s->ctx, s->aio);
	}
}

static uint32_t
net_peer_uid(struct net *n, nng_msg *m)
{
	nng_pipe p = nng_msg_get_pipe(m);
	uint64_t uid;

	if (nng_pipe_id(p) > 0 &&
	    nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &uid) == 0 &&
	    uid <= UINT32_MAX)
		return (uint32_t) uid;
	return n->cfg.tcp_owner_uid;
}

static void
net_serve(struct net *n, struct net_req *s)
{
	nng_msg *in = s->msg;

	s->state = NET_BUSY;
	n->handler(n->arg, s, net_peer_uid(n, in), nng_msg_body(in),
	           nng_msg_len(in));
}

struct net_msg *
net_msg_new(void *reply, size_t len)
{
	nng_msg *m = NULL;

	if (reply == NULL)
		return NULL;
	if (nng_msg_alloc(&m, len) != 0)
		m = NULL;
	else if (len > 0)
		memcpy(nng_msg_body(m), reply, len);
	free(reply);
	return (struct net_msg *) m;
}

void
net_reply_msg(struct net_req *s, struct net_msg *out)
{
	if (s->state != NET_BUSY) {
		/* a second answer: a bug in the handler, never the client's */
		log_err("reply dropped reason=not-pending state=%d",
		        (int) s->state);
		if (out != NULL)
			nng_msg_free((nng_msg *) out);
		return;
	}
	if (s->msg != NULL)
		nng_msg_free(s->msg);
	s->msg = NULL;
	if (out != NULL) {
		nng_aio_set_msg(s->aio, (nng_msg *) out);
		s->state = NET_SEND;
		nng_ctx_send(s->ctx, s->aio);
		return;
	}
	log_warn("reply dropped reason=no-memory");
	s->state = NET_RECV;
	nng_ctx_recv(s->ctx, s->aio);
}

void
net_msg_free(struct net_msg *m)
{
	if (m != NULL)
		nng_msg_free((nng_msg *) m);
}

void
net_req_release_body(struct net_req *s)
{
	if (s->state == NET_BUSY && s->msg != NULL) {
		nng_msg_free(s->msg);
		s->msg = NULL;
	}
}

void
net_reply(struct net_req *s, void *reply, size_t len)
{
	net_reply_msg(s, net_msg_new(reply, len));
}

static void
net_async_cb(uv_async_t *h)
{
	struct net *n = h->data;

	for (;;) {
		int idx;
		uv_mutex_lock(&n->mtx);
		if (n->count == 0) {
			uv_mutex_unlock(&n->mtx);
			break;
		}
		idx = n->ring[n->head];
		n->head = (n->head + 1) % n->nslots;
		n->count--;
		uv_mutex_unlock(&n->mtx);
		net_serve(n, &n->slots[idx]);
	}
}

int
net_open(struct net **np, uv_loop_t *loop, const struct net_config *cfg,
         net_handler h, void *arg, char *msg, size_t msglen)
{
	struct net *n = calloc(1, sizeof(*n));
	int rv;

	*np = NULL;
	if (n == NULL)
		goto nomem;
	n->cfg = *cfg;
	n->handler = h;
	n->arg = arg;
	n->nslots = cfg->contexts > 0 ? cfg->contexts : 16;
	n->slots = calloc((size_t) n->nslots, sizeof(*n->slots));
	n->ring = calloc((size_t) n->nslots, sizeof(*n->ring));
	if (n->slots == NULL || n->ring == NULL)
		goto nomem;
	if (uv_mutex_init(&n->mtx) != 0)
		goto nomem;
	n->mtx_ok = 1;
	if ((rv = nng_rep0_open(&n->rep)) != 0)
		goto nngfail;
	n->rep_open = 1;
	if ((rv = nng_socket_set_size(n->rep, NNG_OPT_RECVMAXSZ,
	                              net_recv_cap(&n->cfg))) != 0)
		goto nngfail;
	if ((rv = nng_pub0_open(&n->pub)) != 0)
		goto nngfail;
	n->pub_open = 1;
	for (int i = 0; i < n->nslots; i++) {
		struct net_req *s = &n->slots[i];
		s->n = n;
		if ((rv = nng_aio_alloc(&s->aio, net_cb, s)) != 0)
			goto nngfail;
		if ((rv = nng_ctx_open(&s->ctx, n->rep)) != 0)
			goto nngfail;
	}
	if (uv_async_init(loop, &n->async, net_async_cb) != 0) {
		snprintf(msg, msglen, "uv_async_init failed");
		goto fail;
	}
	n->async.data = n;
	n->async_open = 1;
	*np = n;
	return 0;
nngfail:
	snprintf(msg, msglen, "nng: %s", nng_strerror(rv));
	goto fail;
nomem:
	snprintf(msg, msglen, "out of memory");
fail:
	if (n != NULL)
		net_close(n);
	return NQ_EIO;
}

static int
net_prepare_ipc(const char *url, int dir_mode, char *msg, size_t msglen)
{
	char dir[4096];
	const char *path;
	const char *slash;

	if (strncmp(url, "ipc://", 6) != 0)
		return 0;
	path = url + 6;
	slash = strrchr(path, '/');
	if (slash == NULL || slash == path)
		return 0;
	if ((size_t) (slash - path) >= sizeof(dir)) {
		snprintf(msg, msglen, "socket path too long: %s", url);
		return NQ_EIO;
	}
	memcpy(dir, path, (size_t) (slash - path));
	dir[slash - path] = '\0';
	if (spool_mkdir_p(dir, (mode_t) dir_mode) != 0) {
		snprintf(msg, msglen, "cannot create socket directory %s: %s",
		         dir, strerror(errno));
		return NQ_EIO;
	}
	return 0;
}

static int
net_add_listener(struct net *n, nng_socket sock, const char *url, int dir_mode,
                 char *msg, size_t msglen)
{
	nng_listener l;
	int rv;

	if (net_prepare_ipc(url, dir_mode, msg, msglen) != 0)
		return NQ_EIO;
	if ((rv = nng_listener_create(&l, sock, url)) != 0) {
		net_fail(msg, msglen, "cannot listen on", url, rv);
		return NQ_EIO;
	}
	if (strncmp(url, "ipc://", 6) == 0 &&
	    (rv = nng_listener_set_int(l, NNG_OPT_IPC_PERMISSIONS,
	                               n->cfg.socket_mode)) != 0) {
		net_fail(msg, msglen, "cannot set permissions of", url, rv);
		nng_listener_close(l);
		return NQ_EIO;
	}
	nng_listener_set_size(l, NNG_OPT_RECVMAXSZ, net_recv_cap(&n->cfg));
	if ((rv = nng_listener_start(l, 0)) != 0) {
		net_fail(msg, msglen, "cannot listen on", url, rv);
		if (rv == NNG_EADDRINUSE)
			snprintf(msg + strlen(msg), msglen - strlen(msg),
			         " (another neuroqd running?)");
		nng_listener_close(l);
		return NQ_EIO;
	}
	return 0;
}

int
net_listen(struct net *n, const char *url, int dir_mode, char *msg,
           size_t msglen)
{
	return net_add_listener(n, n->rep, url, dir_mode, msg, msglen);
}

int
net_listen_events(struct net *n, const char *url, int dir_mode, char *msg,
                  size_t msglen)
{
	return net_add_listener(n, n->pub, url, dir_mode, msg, msglen);
}

int
net_start(struct net *n, char *msg, size_t msglen)
{
	for (int i = 0; i < n->nslots; i++) {
		n->slots[i].state = NET_RECV;
		nng_ctx_recv(n->slots[i].ctx, n->slots[i].aio);
	}
	return 0;
}

void
net_publish(struct net *n, int64_t id, const void *body, size_t len)
{
	char topic[48];
	nng_msg *m;
	int tl;

	if (n == NULL || !n->pub_open)
		return;
	tl = snprintf(topic, sizeof(topic), "job.%" PRId64 ".", id);
	if (nng_msg_alloc(&m, 0) != 0)
		return;
	if (nng_msg_append(m, topic, (size_t) tl) != 0 ||
	    nng_msg_append(m, body, len) != 0 ||
	    nng_sendmsg(n->pub, m, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(m);
}

static void
net_free_cb(uv_handle_t *h)
{
	free(h->data);
}

void
net_close(struct net *n)
{
	if (n == NULL)
		return;
	/* closing the sockets fails every pending aio with NNG_ECLOSED;
	 * nng_aio_free then waits for each callback to finish */
	if (n->rep_open)
		nng_close(n->rep);
	if (n->pub_open)
		nng_close(n->pub);
	for (int i = 0; n->slots != NULL && i < n->nslots; i++) {
		struct net_req *s = &n->slots[i];
		if (s->aio != NULL) {
			nng_aio_stop(s->aio);
			nng_aio_free(s->aio);
		}
		/* WAIT or BUSY: a request nobody answered; no reply */
		if (s->msg != NULL)
			nng_msg_free(s->msg);
		s->msg = NULL;
	}
	if (n->mtx_ok)
		uv_mutex_destroy(&n->mtx);
	free(n->slots);
	free(n->ring);
	n->slots = NULL;
	n->ring = NULL;
	if (n->async_open) {
		n->async.data = n;
		uv_close((uv_handle_t *) &n->async, net_free_cb);
	} else {
		free(n);
	}
}
