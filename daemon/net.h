/*
 * net.h — the daemon's sockets: one NNG REP socket (several listeners, N
 * contexts: NNG's "async server" pattern) for requests, and PUB sockets for
 * job events: the configured one, for administrators, with every job's
 * events, and one per user (made at their first hello, at most
 * NET_USER_EVENTS_MAX) with only that user's. NNG PUB cannot filter per
 * subscriber, so each socket checks who connects instead: a pipe whose
 * peer uid (ipc only) is not allowed is closed before it is added
 * (NNG_PIPE_EV_ADD_PRE), on NNG's thread, with access.h.
 *
 * Threads: NNG completes receives on its own threads; those callbacks only
 * queue the message and uv_async_send(). The handler runs on the libuv loop
 * thread, which owns all daemon state. It answers each request exactly once
 * with net_reply(), at once or later (after work in the threadpool); the
 * request's context receives nothing else until then.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct net;
/* One request being handled (one busy context). */
struct net_req;
/* A reply ready for the transport (see net_msg_new). */
struct net_msg;

/* Called on the loop thread for each request. uid: the peer's uid (ipc) or
 * the configured tcp owner. body is the handler's (it may change it: decode
 * in place) and stays valid until net_req_release_body() or the answer,
 * net_reply(), on the loop thread, exactly once: before returning or later.
 * A request refused for max_upload_bytes (net_req_busy) comes with body
 * NULL and its len: answer it (EBUSY) like any other. */
typedef void (*net_handler)(void *arg, struct net_req *req, uint32_t uid,
                            void *body, size_t len);

/* Loop thread: answer req with a malloc'd reply (freed here); a NULL reply
 * sends nothing (the client times out). The context then receives again. */
void net_reply(struct net_req *req, void *reply, size_t len);
/* Any thread: copy a malloc'd reply into a transport message and free it
 * (so that a big reply is copied off the loop thread). NULL when out of
 * memory (reply freed too). */
struct net_msg *net_msg_new(void *reply, size_t len);
/* Loop thread: answer req with a net_msg_new() message (NULL sends nothing). */
void net_reply_msg(struct net_req *req, struct net_msg *m);
/* Any thread: free a message that will not be sent. */
void net_msg_free(struct net_msg *m);
/* The handler is done with the body (and with anything decoded in place
 * from it): its memory goes now, not at the reply, and it no longer counts
 * towards max_upload_bytes. Loop thread, or the one thread the handler
 * passed the request to (net touches a request only at net_reply/net_close). */
void net_req_release_body(struct net_req *req);
/* 1 when the request was refused on receipt because the requests held at
 * that moment (received, their body not yet released) and it would have
 * passed max_upload_bytes: its body was freed at once, *held says what the
 * others held; 0 otherwise. */
int net_req_busy(const struct net_req *req, size_t *held);

/* Requests smaller than this are never refused for max_upload_bytes (their
 * bytes count all the same): status, list, ... always get through. */
#define NET_BUSY_MIN_BYTES (1u << 20)
/* Loop thread: room for a request of `bytes` that req's connection will
 * send next (the `reserve` op), counted in max_upload_bytes by the same
 * rule as a request, so that a client that asks first never sends bytes
 * the daemon would refuse. The room goes when that request arrives (it is
 * then held as usual, whatever else is held), when the connection closes
 * or after 300 s; a new reservation replaces the connection's old one.
 * 0 (also for a small request, or no limit), or NQ_EBUSY with *held. */
int net_reserve(struct net_req *req, size_t bytes, size_t *held);

/* The transport accepts messages up to max_message_bytes + this, so that a
 * request a little over the limit still reaches the handler and gets an
 * ETOOBIG reply; beyond it NNG drops the message and closes the connection
 * without a reply (it never buffers more than this). */
#define NET_OVERSIZE_SLACK (64ull << 20)

struct access;

/* Per-user events sockets at most; later users get none (hello says ""). */
#define NET_USER_EVENTS_MAX 1024

struct net_config {
	int contexts;
	size_t max_message_bytes; /* the handler enforces it (ETOOBIG) */
	/* the bytes of requests held at once (0: no limit): a request of at
	 * least NET_BUSY_MIN_BYTES that would pass it is refused on receipt
	 * (net_req_busy) unless no other such request is held */
	size_t max_upload_bytes;
	int socket_mode; /* ipc socket file permissions */
	uint32_t tcp_owner_uid;
	struct access *access; /* who is an administrator (outlives net) */
};

/* Opens both sockets (nothing listens yet). 0 or NQ_EIO with msg. */
int net_open(struct net **n, uv_loop_t *loop, const struct net_config *cfg,
             net_handler h, void *arg, char *msg, size_t msglen);
/* Add a request listener / the administrators' events listener (ipc://
 * only: its directory also takes the per-user sockets). For ipc:// URLs
 * the socket's directory is created (dir_mode) when missing; a listener
 * on any other transport is logged as unauthenticated (a warning). 0 or
 * NQ_EIO with msg. */
int net_listen(struct net *n, const char *url, int dir_mode, char *msg,
               size_t msglen);
int net_listen_events(struct net *n, const char *url, int dir_mode, char *msg,
                      size_t msglen);
/* Start receiving on every context. */
int net_start(struct net *n, char *msg, size_t msglen);
/* Publish "job.<id>." + body on the administrators' events socket and on
 * the owner's, if it has one (never blocks). */
void net_publish(struct net *n, uint32_t owner, int64_t id, const void *body,
                 size_t len);
/* The URL of uid's own events socket into url, made (listening) when it
 * is not there yet: <events dir>/events-<uid>.sock. Only uid and root may
 * subscribe to it. 0; NQ_ENOTSUP (no events dir), NQ_ENOMEM (already
 * NET_USER_EVENTS_MAX sockets) or NQ_EIO with url "". Loop thread. */
int net_user_events(struct net *n, uint32_t uid, char *url, size_t urllen);
/* 1 when the request came over a transport that carries no identity (tcp):
 * its uid is the configured tcp_owner_uid. */
int net_req_anonymous(const struct net_req *req);
/* Close the sockets, wait for NNG callbacks to finish, free everything;
 * requests not yet answered are freed without a reply (their net_req and
 * body are gone: the handler must not answer them after this). Must be
 * called on the loop thread; uv handles are closed (run the loop once more
 * to let them finish). */
void net_close(struct net *n);

#endif
