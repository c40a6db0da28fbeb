/*
 * worker.h — running jobs: one neuroq-worker process per started job
 * (uv_spawn), its progress pipe, cancel (SIGTERM, SIGKILL after a grace
 * period), and what its exit means for the job row.
 */
#ifndef WORKER_H
#define WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

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
/* The time limit (s) of the running attempt of job id; 0 when none runs
 * it. A worker silent for heartbeat_timeout_s is killed and its job
 * requeued (max_attempts); one past its limit is killed and the job FAILS
 * with NQ_ETIMEDOUT (liveness.h). */
int64_t worker_time_limit_s(const struct daemon *d, int64_t id);
/* A full disk (README.md, Disk full): 1 with the end of job id that the
 * store has not taken yet (its row still says RUNNING; the retry timer
 * writes it every 2 s until it lands), 0 when none waits. */
int worker_pending_end(const struct daemon *d, int64_t id, int *state,
                       int *code, const char **msg);
/* At stop: the retry timer closed; ends still waiting are logged (a
 * restart requeues their jobs, or reads their error files). */
void worker_close(struct daemon *d);

/* The arguments that make `neuroq-worker run|check` act as a job's owner:
 * --owner UID --service-gid G (the daemon's gid) --umask U and a --deny
 * for the state dir and the dir of every ipc:// socket (README.md, Worker
 * contract). Passed always: for the daemon's own uid the drop is a no-op. */
#define WORKER_DENY_MAX   (CONFIG_MAX_LISTEN + 2)
#define WORKER_OWNER_ARGC (6 + 2 * WORKER_DENY_MAX)
struct worker_owner {
	char uid[16], gid[16], um[8];
	char deny[WORKER_DENY_MAX][CONFIG_PATH_MAX];
	char *argv[WORKER_OWNER_ARGC + 1]; /* NULL-terminated */
	int argc;
};
void worker_owner_args(const struct daemon *d, uint32_t owner, unsigned um,
                       struct worker_owner *wo);
/* Whether this daemon can run a job as uid: its own, or it holds
 * CAP_SETUID and CAP_SETGID (effective). */
int worker_can_run_as(uint32_t uid);

#endif
