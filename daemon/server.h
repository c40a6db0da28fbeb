/*
 * server.h — the daemon's state (owned by the loop thread) and the request
 * handlers of proto/PROTOCOL.md.
 *
 * Cheap requests are answered on the loop thread. The big ones do their
 * bulk work in libuv's threadpool and answer from the after-work callback on
 * the loop thread: decoding a request of SERVER_ASYNC_BYTES or more;
 * submit's field checks with the job type's validate()/estimate() (they
 * read every input value), then its spool_stage (input files + fsync);
 * result's reading and encoding of the outputs. A work item touches only
 * its own request (and copies of what it needs), never the store, the
 * scheduler or the workers; the loop keeps the order "files, then row".
 */
#ifndef SERVER_H
#define SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "devices.h"
#include "net.h"
#include "sched.h"
#include "store.h"

struct worker;
struct probe;

struct daemon {
	uv_loop_t *loop;
	const struct config *cfg;
	struct store *store;
	struct sched *sched;
	struct net *net;
	struct device_info devs[DEVICES_MAX];
	size_t ndevs;
	struct worker *workers; /* running jobs (worker.c) */
	int draining;           /* no new submits, no new starts */
	double started;         /* unix seconds */
	struct probe *probe;    /* the background device probe (probe.c) */
	uint64_t probe_last_ms; /* uv_now() when the last one started */
	int inflight;           /* requests with a threadpool work item */
	int stopping;           /* server_quiesce: no more work items */
	void (*quiet)(struct daemon *d);
	/* NEUROQ_TEST_SPOOL_DELAY_MS, read once at start (tests only): a
	 * submit's staging work item sleeps this long after writing */
	unsigned test_spool_delay_ms;
};

/* Requests at least this big are decoded in the threadpool. */
#define SERVER_ASYNC_BYTES (1u << 20)

/* net_handler: decode, dispatch, encode; answers now or after its work. */
void server_handle(void *arg, struct net_req *req, uint32_t uid,
                   const void *body, size_t len);
/* Shutting down: requests from now on do all their work on the loop thread
 * (no new work items); done(d) runs once every work item has finished and
 * its request been answered (at once when none is in flight). After that,
 * net_close() may go. */
void server_quiesce(struct daemon *d, void (*done)(struct daemon *d));
/* Publish the job's current state on the events socket. */
void server_publish(struct daemon *d, const struct job_row *row);
/* Re-read the row and publish it. */
void server_publish_id(struct daemon *d, int64_t id);

#endif
