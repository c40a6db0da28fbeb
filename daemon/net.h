/*
 * net.h — the daemon's sockets: one NNG REP socket (several listeners, N
 * contexts: NNG's "async server" pattern) for requests, one PUB socket for
 * job events.
 *
 * Threads: NNG completes receives on its own threads; those callbacks only
 * queue the message and uv_async_send(). The handler runs on the libuv loop
 * thread, which owns all daemon state, and its reply is handed back to the
 * same context from there.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct net;

/* Called on the loop thread for each request. uid: the peer's uid (ipc) or
 * the configured tcp owner. Returns a malloc'd reply (*reply, *replylen);
 * a NULL reply sends nothing (the client times out). */
typedef void (*net_handler)(void *arg, uint32_t uid, const void *body,
                            size_t len, void **reply, size_t *replylen);

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
/* Close the sockets, wait for NNG callbacks to finish, free everything.
 * Must be called on the loop thread; uv handles are closed (run the loop
 * once more to let them finish). */
void net_close(struct net *n);

#endif
