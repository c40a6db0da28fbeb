/*
 * server.h — the request layer's entry points for main.c: every request
 * net.c receives goes to server_handle (size cap, decode, version, op →
 * ops.h); server_quiesce waits for the work items in flight at shutdown.
 * The daemon's state is daemon.h; a request's life is request.h.
 */
#ifndef SERVER_H
#define SERVER_H

#include <stddef.h>
#include <stdint.h>

struct daemon;
struct net_req;

/* Requests at least this big are decoded in the threadpool. */
#define SERVER_ASYNC_BYTES (1u << 20)

/* net_handler: decode, dispatch, encode; answers now or after its work. */
void server_handle(void *arg, struct net_req *nr, uint32_t uid, void *body,
                   size_t len);
/* Shutting down: requests from now on do all their work on the loop thread
 * (no new work items); done(d) runs once every work item has finished and
 * its request been answered (at once when none is in flight). After that,
 * net_close() may go. */
void server_quiesce(struct daemon *d, void (*done)(struct daemon *d));

#endif
