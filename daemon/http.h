/*
 * http.h — the monitoring port (config http_listen, off by default): NNG's
 * own HTTP server serves /metrics (Prometheus text), /api/queue (the queue
 * page's JSON) and the page itself (daemon/web/, embedded at build time).
 *
 * Threads: NNG calls the handlers on its own threads, and the daemon's
 * state belongs to the loop thread. So the handlers never touch the store,
 * the scheduler or the workers: they copy the latest snapshot (metrics.h)
 * under a mutex when it is younger than a second (20 times its build time
 * when that is longer: a big store), else they park the
 * request and wake the loop (uv_async), which builds a fresh snapshot,
 * publishes it and answers the parked requests with copies of it.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>

struct daemon;
struct http;

/* Start serving on "host:port" (or "http://host:port"); port 0 picks a
 * free one (logged). Loop thread. 0 or NQ_EIO / NQ_EBADPARAM with msg. */
int http_open(struct http **out, struct daemon *d, const char *listen,
              char *msg, size_t msglen);
/* Answer parked requests (503), stop the server, close the loop handle
 * (run the loop once more to finish the close). NULL: nothing. */
void http_close(struct http *h);

#endif
