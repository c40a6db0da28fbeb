/* net.c — see net.h. */
#include "net.h"

#include "access.h"
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

#include "nq_clock.h"

#define NET_URL_MAX 4096

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
	nng_msg *msg;  /* the request, from receive until the reply */
	int anonymous; /* it came without a peer uid (tcp) */
	nng_pipe pipe; /* where it came from */
	/* what it counts in net's held/nbig until its body goes (mtx) */
	size_t held;
	int big;
	/* refused on receipt (max_upload_bytes): msg NULL, its size and what
	 * the others held then */
	int busy;
	size_t busy_len, busy_held;
};

/* Upload reservations (net_reserve): at most this many at once, each kept
 * until its request arrives, its connection closes or this long passes. */
#define NET_RESV_MAX 64
#define NET_RESV_MS  (300 * 1000)

struct net_resv {
	uint32_t pipe; /* nng_pipe_id */
	size_t bytes;
	int64_t until_ms;
};

/* Refused subscribers are logged at most this often per socket. */
#define NET_REFUSE_LOG_MS 10000

/* One events PUB socket: the administrators' (every event) or a user's. */
struct net_events {
	struct net *n;
	nng_socket sock;
	int open;
	int admin;    /* administrators only, every job's events */
	uint32_t uid; /* else: this user's socket */
	char url[NET_URL_MAX];
	int64_t refuse_logged_ms; /* NNG threads: __atomic */
};

struct net {
	nng_socket rep;
	int rep_open;
	struct net_events admin_ev;
	/* per-user sockets (loop thread; their pipe callbacks only read
	 * their own entry), in <user_dir>/events-<uid>.sock */
	struct net_events *user_ev[NET_USER_EVENTS_MAX];
	int nuser;
	char user_dir[NET_URL_MAX];
	int user_dir_mode;
	struct net_config cfg;
	struct net_req *slots;
	int nslots;
	/* slots whose message waits for the loop thread; each slot is in at
	 * most once, so a ring of nslots entries never overflows */
	uv_mutex_t mtx;
	int mtx_ok;
	int *ring;
	int head, count;
	/* the bytes of the requests whose body is held (received, not yet
	 * released) and how many of them are NET_BUSY_MIN_BYTES or more */
	size_t held;
	int nbig;
	/* reservations: counted in held and nbig until their request comes */
	struct net_resv resv[NET_RESV_MAX];
	int nresv;
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

/* Under n->mtx: would holding a len-byte request as well pass
 * max_upload_bytes? Never for a small one, nor for one that would be the
 * only big request held (so any request up to max_message_bytes is served
 * when it comes alone). */
static int
net_over_budget(const struct net *n, size_t len)
{
	size_t max = n->cfg.max_upload_bytes;

	return max > 0 && len >= NET_BUSY_MIN_BYTES && n->nbig > 0 &&
	       (n->held > max || len > max - n->held);
}

/* Any thread: the slot's body is gone, its bytes no longer count. */
static void
net_unhold(struct net_req *s)
{
	struct net *n = s->n;

	if (s->held == 0 && !s->big)
		return;
	uv_mutex_lock(&n->mtx);
	n->held -= s->held;
	n->nbig -= s->big;
	uv_mutex_unlock(&n->mtx);
	s->held = 0;
	s->big = 0;
}

/* Under n->mtx: reservation i goes (its bytes no longer count). */
static void
net_resv_drop(struct net *n, int i)
{
	n->held -= n->resv[i].bytes;
	n->nbig--;
	n->resv[i] = n->resv[--n->nresv];
}

/* Under n->mtx: the live reservation of a connection (expired ones go
 * first), or -1. */
static int
net_resv_find(struct net *n, uint32_t pipe)
{
	int64_t now = nq_mono_ms();
	int found = -1;

	for (int i = n->nresv - 1; i >= 0; i--) {
		if (n->resv[i].until_ms <= now)
			net_resv_drop(n, i);
	}
	for (int i = 0; i < n->nresv; i++) {
		if (n->resv[i].pipe == pipe)
			found = i;
	}
	return found;
}

/* NNG thread: a connection closed; its reservation goes with it. */
static void
net_rep_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct net *n = arg;
	int i;

	(void) ev;
	uv_mutex_lock(&n->mtx);
	if ((i = net_resv_find(n, (uint32_t) nng_pipe_id(p))) >= 0)
		net_resv_drop(n, i);
	uv_mutex_unlock(&n->mtx);
}

int
net_reserve(struct net_req *s, size_t bytes, size_t *held)
{
	struct net *n = s->n;
	uint32_t pipe = (uint32_t) nng_pipe_id(s->pipe);
	int i, rc = 0;

	*held = 0;
	if (n->cfg.max_upload_bytes == 0 || bytes < NET_BUSY_MIN_BYTES)
		return 0; /* nothing to hold back */
	uv_mutex_lock(&n->mtx);
	if ((i = net_resv_find(n, pipe)) >= 0)
		net_resv_drop(n, i); /* a new one replaces it */
	if (net_over_budget(n, bytes) || n->nresv == NET_RESV_MAX) {
		*held = n->held;
		rc = NQ_EBUSY;
	} else {
		n->resv[n->nresv++] = (struct net_resv){
		        .pipe = pipe,
		        .bytes = bytes,
		        .until_ms = nq_mono_ms() + NET_RESV_MS};
		n->held += bytes;
		n->nbig++;
	}
	uv_mutex_unlock(&n->mtx);
	return rc;
}

/* NNG thread: a received request is held (counted) or, over the budget,
 * freed at once and marked busy; either way queued for the loop. A request
 * its connection reserved room for (net_reserve) takes that room. */
static void
net_received(struct net *n, struct net_req *s, nng_msg *m)
{
	size_t len = nng_msg_len(m);
	int i, reserved = 0;

	s->pipe = nng_msg_get_pipe(m);
	s->busy = 0;
	s->msg = NULL;
	s->state = NET_WAIT;
	uv_mutex_lock(&n->mtx);
	if (len >= NET_BUSY_MIN_BYTES &&
	    (i = net_resv_find(n, (uint32_t) nng_pipe_id(s->pipe))) >= 0) {
		reserved = len <= n->resv[i].bytes;
		net_resv_drop(n, i);
	}
	if (!reserved && net_over_budget(n, len)) {
		s->busy = 1;
		s->busy_len = len;
		s->busy_held = n->held;
	} else {
		s->msg = m;
		s->held = len;
		s->big = len >= NET_BUSY_MIN_BYTES;
		n->held += len;
		n->nbig += s->big;
		m = NULL;
	}
	n->ring[(n->head + n->count) % n->nslots] = (int) (s - n->slots);
	n->count++;
	uv_mutex_unlock(&n->mtx);
	if (m != NULL)
		nng_msg_free(m);
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
		net_received(n, s, nng_aio_get_msg(s->aio));
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

/* The kernel's uid of an ipc peer: 0 with *uid, or -1 (tcp: none). */
static int
net_pipe_uid(nng_pipe p, uint32_t *uid)
{
	uint64_t u;

	if (nng_pipe_id(p) > 0 &&
	    nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, &u) == 0 &&
	    u <= UINT32_MAX) {
		*uid = (uint32_t) u;
		return 0;
	}
	return -1;
}

static void
net_serve(struct net *n, struct net_req *s)
{
	nng_msg *in = s->msg;
	uint32_t uid;

	s->state = NET_BUSY;
	s->anonymous = net_pipe_uid(s->pipe, &uid) != 0;
	if (s->anonymous)
		uid = n->cfg.tcp_owner_uid;
	if (in == NULL) /* busy */
		n->handler(n->arg, s, uid, NULL, s->busy_len);
	else
		n->handler(n->arg, s, uid, nng_msg_body(in), nng_msg_len(in));
}

int
net_req_anonymous(const struct net_req *s)
{
	return s->anonymous;
}

int
net_req_busy(const struct net_req *s, size_t *held)
{
	if (!s->busy)
		return 0;
	*held = s->busy_held;
	return 1;
}

/* NNG thread, before a subscriber's pipe joins an events socket: only the
 * socket's user (and root) or, on the administrators' socket, only
 * administrators; a pipe without a peer uid never. */
static void
net_events_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct net_events *e = arg;
	uint32_t uid = UINT32_MAX;
	int64_t now, last;
	int known = net_pipe_uid(p, &uid) == 0;

	(void) ev;
	if (known && (e->admin ? access_is_admin(e->n->cfg.access, uid)
	                       : (uid == e->uid || uid == 0)))
		return;
	nng_pipe_close(p);
	now = nq_mono_ms();
	last = __atomic_load_n(&e->refuse_logged_ms, __ATOMIC_RELAXED);
	if (last != 0 && now - last < NET_REFUSE_LOG_MS)
		return;
	__atomic_store_n(&e->refuse_logged_ms, now, __ATOMIC_RELAXED);
	if (known)
		log_notice("events subscriber refused url=%s uid=%" PRIu32
		           " reason=%s",
		           e->url, uid,
		           e->admin ? "not-an-administrator" : "not-its-user");
	else
		log_notice(
		        "events subscriber refused url=%s reason=no-peer-uid",
		        e->url);
}

/* Opens a PUB socket with its pipe check (nothing listens yet). */
static int
net_events_open(struct net *n, struct net_events *e, int admin, uint32_t uid)
{
	int rv;

	e->n = n;
	e->admin = admin;
	e->uid = uid;
	if ((rv = nng_pub0_open(&e->sock)) != 0)
		return rv;
	e->open = 1;
	return nng_pipe_notify(e->sock, NNG_PIPE_EV_ADD_PRE, net_events_pipe_cb,
	                       e);
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
	net_unhold(s);
	s->busy = 0;
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
		net_unhold(s);
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
	if ((rv = nng_pipe_notify(n->rep, NNG_PIPE_EV_REM_POST, net_rep_pipe_cb,
	                          n)) != 0)
		goto nngfail;
	if ((rv = net_events_open(n, &n->admin_ev, 1, 0)) != 0)
		goto nngfail;
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
	if (strncmp(url, "ipc://", 6) != 0)
		log_warn("listening WITHOUT AUTHENTICATION url=%s "
		         "owner_uid=%" PRIu32
		         ": every caller there is that uid and sees its jobs "
		         "(tcp_unauthenticated = yes); remote users with their "
		         "own identity use ssh:// URLs",
		         url, n->cfg.tcp_owner_uid);
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
	const char *slash;
	int rc;

	if (strncmp(url, "ipc://", 6) != 0) {
		snprintf(msg, msglen,
		         "events %s: not an ipc:// URL (subscribers' uids are "
		         "checked)",
		         url);
		return NQ_EIO;
	}
	rc = net_add_listener(n, n->admin_ev.sock, url, dir_mode, msg, msglen);
	if (rc != 0)
		return rc;
	snprintf(n->admin_ev.url, sizeof(n->admin_ev.url), "%s", url);
	/* the users' sockets go beside it */
	slash = strrchr(url + 6, '/');
	if (slash != NULL && slash > url + 6 &&
	    (size_t) (slash - url) < sizeof(n->user_dir)) {
		memcpy(n->user_dir, url, (size_t) (slash - url));
		n->user_dir[slash - url] = '\0';
		n->user_dir_mode = dir_mode;
	}
	return 0;
}

int
net_user_events(struct net *n, uint32_t uid, char *url, size_t urllen)
{
	struct net_events *e;
	char msg[512];
	int rv, w;

	url[0] = '\0';
	for (int i = 0; i < n->nuser; i++) {
		if (n->user_ev[i]->uid == uid) {
			snprintf(url, urllen, "%s", n->user_ev[i]->url);
			return 0;
		}
	}
	if (n->user_dir[0] == '\0')
		return NQ_ENOTSUP;
	if (n->nuser >= NET_USER_EVENTS_MAX) {
		log_warn("no events socket for uid=%" PRIu32
		         " reason=limit max=%d",
		         uid, NET_USER_EVENTS_MAX);
		return NQ_ENOMEM;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NQ_ENOMEM;
	w = snprintf(e->url, sizeof(e->url), "%s/events-%" PRIu32 ".sock",
	             n->user_dir, uid);
	if (w < 0 || (size_t) w >= sizeof(e->url) || (size_t) w >= urllen) {
		free(e);
		return NQ_EIO;
	}
	if ((rv = net_events_open(n, e, 0, uid)) != 0) {
		log_err("cannot open events socket uid=%" PRIu32
		        " error=\"%s\"",
		        uid, nng_strerror(rv));
		goto fail;
	}
	if (net_add_listener(n, e->sock, e->url, n->user_dir_mode, msg,
	                     sizeof(msg)) != 0) {
		log_err("cannot open events socket uid=%" PRIu32
		        " error=\"%s\"",
		        uid, msg);
		goto fail;
	}
	n->user_ev[n->nuser++] = e;
	log_info("events socket url=%s uid=%" PRIu32, e->url, uid);
	snprintf(url, urllen, "%s", e->url);
	return 0;
fail:
	if (e->open)
		nng_close(e->sock);
	free(e);
	return NQ_EIO;
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

static void
net_publish_on(struct net_events *e, const char *topic, size_t tl,
               const void *body, size_t len)
{
	nng_msg *m;

	if (!e->open || nng_msg_alloc(&m, 0) != 0)
		return;
	if (nng_msg_append(m, topic, tl) != 0 ||
	    nng_msg_append(m, body, len) != 0 ||
	    nng_sendmsg(e->sock, m, NNG_FLAG_NONBLOCK) != 0)
		nng_msg_free(m);
}

void
net_publish(struct net *n, uint32_t owner, int64_t id, const void *body,
            size_t len)
{
	char topic[48];
	int tl;

	if (n == NULL)
		return;
	tl = snprintf(topic, sizeof(topic), "job.%" PRId64 ".", id);
	net_publish_on(&n->admin_ev, topic, (size_t) tl, body, len);
	for (int i = 0; i < n->nuser; i++) {
		if (n->user_ev[i]->uid == owner) {
			net_publish_on(n->user_ev[i], topic, (size_t) tl, body,
			               len);
			break;
		}
	}
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
	if (n->admin_ev.open)
		nng_close(n->admin_ev.sock);
	/* nng_close returns once the socket's pipes (and their callbacks)
	 * are gone */
	for (int i = 0; i < n->nuser; i++) {
		nng_close(n->user_ev[i]->sock);
		free(n->user_ev[i]);
	}
	n->nuser = 0;
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
		if (n->mtx_ok)
			net_unhold(s);
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
