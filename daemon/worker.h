/*
 * worker.h — neuroq-worker as a job's owner on this machine: the arguments
 * the local executor (executor_local.c, executor.h) and a submit's check
 * pass it, and whether this daemon can run a job as a uid. A worker silent
 * for heartbeat_timeout_s is killed and its job requeued (max_attempts);
 * one past its time limit is killed and the job FAILS with NQ_ETIMEDOUT
 * (liveness.h).
 */
#ifndef WORKER_H
#define WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct daemon;

#define WORKER_KILL_GRACE_MS 10000

/* The arguments that make `neuroq-worker run|check` act as a job's owner:
 * --owner UID --service-gid G (the daemon's gid) --umask U and a --deny
 * for the state dir, the slurm spool (executor = slurm) and the dir of
 * every ipc:// socket (README.md, Worker
 * contract). Passed always: for the daemon's own uid the drop is a no-op.
 * parent > 0 adds --parent PID: the worker is this daemon's child and
 * exits at once when PID is no longer its parent (the daemon died before
 * the worker could arm its parent-death signal); 0 under slurm, where the
 * worker's parent is slurm's. */
#define WORKER_DENY_MAX   (CONFIG_MAX_LISTEN + 3)
#define WORKER_OWNER_ARGC (8 + 2 * WORKER_DENY_MAX)
struct worker_owner {
	char uid[16], gid[16], um[8], parent[16];
	char deny[WORKER_DENY_MAX][CONFIG_PATH_MAX];
	char *argv[WORKER_OWNER_ARGC + 1]; /* NULL-terminated */
	int argc;
};
void worker_owner_args(const struct daemon *d, uint32_t owner, unsigned um,
                       int parent, struct worker_owner *wo);
/* Whether this daemon can run a job as uid: its own, or it holds
 * CAP_SETUID and CAP_SETGID (effective). */
int worker_can_run_as(uint32_t uid);

#endif
