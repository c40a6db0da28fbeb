/*
 * net.h — the daemon's sockets: one NNG REP socket (several listeners, N
 * contexts: NNG's "async server" pattern) for requests, one PUB socket for
 * job events.
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
 * the configured tcp owner. body stays valid (and must not be changed) until
 * the request is answered with net_reply(), on the loop thread, exactly
 * once: before returning or later. */
typedef void (*net_handler)(void *arg, struct net_req *req, uint32_t uid,
                            const void *body, size_t len);

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
/* The handler is done with the body (it decoded it): its memory goes now,
 * not at the reply. Loop thread, or the one thread the handler passed the
 * request to (net touches a request only at net_reply/net_close). */
void net_req_release_body(struct net_req *req);

/* The transport accepts messages up to max_message_bytes + this, so that a
 * request a little over the limit still reaches the handler and gets an
 * ETOOBIG reply; beyond it NNG drops the message and closes the connection
 * without a reply (it never buffers more than this). */
#define NET_OVERSIZE_SLACK (64ull << 20)

struct net_config {
	int contexts;
	size_t max_message_bytes; /* the handler enforces it (ETOOBIG) */
	int socket_mode;          /* ipc socket file permissions */
	uint32_t tcp_owner_uid;
};

/* Opens both sockets (nothing listens yet). 0 or NQ_EIO with msg. */
int net_open(struct net **n, uv_loop_t *loop, const struct net_config *cfg,
             net_handler h, void *arg, char *msg, size_t msglen);
/* Add a request listener / the events listener. For ipc:// URLs the socket's
 * directory is created (dir_mode) when missing. 0 or NQ_EIO with msg. */
int net_listen(struct net *n, const char *url, int dir_mode, char *msg,
               size_t msglen);
int net_listen_events(struct net *n, const char *url, int dir_mode, char *msg,
                      size_t msglen);
/* Start receiving on every context. */
int net_start(struct net *n, char *msg, size_t msglen);
/* Publish "job.<id>." + body on the events socket (never blocks). */
void net_publish(struct net *n, int64_t id, const void *body, size_t len);
/* Close the sockets, wait for NNG callbacks to finish, free everything;
 * requests not yet answered are freed without a reply (their net_req and
 * body are gone: the handler must not answer them after this). Must be
 * called on the loop thread; uv handles are closed (run the loop once more
 * to let them finish). */
void net_close(struct net *n);

#endif
