/*
 * worker.h — running jobs: one neuroq-worker process per started job
 * (uv_spawn), its progress pipe, cancel (SIGTERM, SIGKILL after a grace
 * period), and what its exit means for the job row.
 */
#ifndef WORKER_H
#define WORKER_H

#include <stddef.h>
#include <stdint.h>

struct daemon;

#define WORKER_KILL_GRACE_MS 10000

/* Start every job the scheduler admits now (nothing while draining). */
void worker_start_more(struct daemon *d);
/* Cancel a running job. 0, or NQ_ENOJOB when no worker runs it. */
int worker_cancel(struct daemon *d, int64_t id);
/* Drain: SIGTERM every worker; each exit requeues its job (not counted as
 * a crash). done() runs once no worker is left (at once if none). */
void worker_drain(struct daemon *d, void (*done)(struct daemon *d));
/* Ids of the jobs running on a device (up to max); returns the count. */
size_t worker_running_on(const struct daemon *d, const char *device,
                         int64_t *ids, size_t max);
size_t worker_count(const struct daemon *d);

#endif
