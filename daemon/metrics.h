/*
 * metrics.h — what the monitoring port serves (http.c): the Prometheus text
 * of /metrics and the JSON of the queue page's /api/queue, built together
 * as one snapshot on the loop thread from the store, the scheduler and the
 * workers, plus the few counters that only live as long as the process
 * (requests by op and error code, worker restarts).
 *
 * Only the loop thread calls these. The snapshot is plain bytes: http.c
 * publishes it under its mutex and NNG's threads only copy it.
 *
 * Privacy: the JSON holds aggregate data only (counts per state, type and
 * device; for a job its id, type, state, device, progress, ETA and wait
 * reason), never an owner, parameters, paths or error texts: the HTTP port
 * has no trusted identity. The Prometheus text has per-user counts under
 * the numeric uid (the admin's Prometheus is trusted; bind the port to
 * localhost or firewall it).
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler.h"

struct daemon;
struct metrics;

struct metrics_snapshot {
	char *text; /* Prometheus text format 0.0.4 */
	size_t text_len;
	char *json; /* the page's data */
	size_t json_len;
};

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* A request was answered with code (0 = ok). NULL m: nothing. */
void metrics_count_request(struct metrics *m, const char *op, int code);
/* A worker crashed and its job was started again. NULL m: nothing. */
void metrics_count_restart(struct metrics *m);

/* Builds both documents now (d->metrics must be set). 0 or NQ_ENOMEM /
 * NQ_EIO; free with metrics_snapshot_free. */
int metrics_build(struct daemon *d, struct metrics_snapshot *out);
void metrics_snapshot_free(struct metrics_snapshot *s);

/* One queued job in the order the scheduler would start it: the page's
 * queue and the queue op (ops_info.c) both come from here. */
struct metrics_queued {
	struct sched_plan_entry e; /* id, owner, why, dev, need */
	size_t position;           /* 1-based place in the whole queue */
	const char *device;        /* the device the reason is about; "" */
	char reason[160];          /* sched_wait_text, or the daemon stops */
};

/* The queue in start order (sched_plan), each job with its reason: the
 * first max of every owner's (owner < 0), or the first max of owner's,
 * with their positions in the whole queue. *out: malloc'd (free() it), *n
 * entries. 0 or NQ_ENOMEM. */
int metrics_queue_plan(struct daemon *d, int64_t owner, size_t max,
                       struct metrics_queued **out, size_t *n);

#endif
