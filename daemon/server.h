/*
 * server.h — the daemon's state (owned by the loop thread) and the request
 * handlers of proto/PROTOCOL.md.
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
};

/* net_handler: decode, dispatch, encode. */
void server_handle(void *arg, uint32_t uid, const void *body, size_t len,
                   void **reply, size_t *replylen);
/* Publish the job's current state on the events socket. */
void server_publish(struct daemon *d, const struct job_row *row);
/* Re-read the row and publish it. */
void server_publish_id(struct daemon *d, int64_t id);

#endif
