/*
 * executor.h — where started jobs run. The scheduler picks a job and a
 * device (scheduler.h); an executor runs it there and reports its end
 * through the shared paths below, which mark the row DONE / FAILED /
 * CANCELED or requeue it (max_attempts) exactly alike for every executor.
 *
 * Two executors, chosen by the config's `executor`:
 *   local  one neuroq-worker process per job on this machine's devices
 *          (executor_local.c; worker.h has its owner arguments);
 *   slurm  one sbatch per job on a Slurm cluster, the job dir on a shared
 *          spool, reconciled by one batched squeue per slurm_poll_s
 *          (executor_slurm.c; the pure parts in slurm.h).
 * The scheduler, store, protocol and clients are the same for both.
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include <stddef.h>
#include <stdint.h>

#include "scheduler.h"
#include "store.h"

struct daemon;

/* What a start gets: the job as the scheduler admitted it. */
struct executor_job {
	int64_t id;
	uint32_t owner;
	char type[32];
	char device[32];          /* the scheduler's device name */
	enum sched_dev_kind kind; /* of that device */
	uint64_t grant;           /* bytes reserved there */
	uint64_t host_bytes, device_bytes;
	double flops; /* the estimate's: the default time limit */
	int attempt;  /* 1 for the first start */
};

struct executor_ops {
	const char *name;
	/* After the queue is loaded: take over what the backend still runs
	 * (slurm: RUNNING rows with a backend_job_id). 0 or an nq error. */
	int (*open)(struct daemon *d, char *msg, size_t msglen);
	/* Run the job (its row is RUNNING). 0, or an nq error with msg: the
	 * caller releases it and marks it FAILED. */
	int (*start)(struct daemon *d, const struct executor_job *j, char *msg,
	             size_t msglen);
	/* Stop a running job gracefully, then hard. 0 or NQ_ENOJOB. */
	int (*cancel)(struct daemon *d, int64_t id);
	/* The daemon stops: done() once nothing of ours is in flight. */
	void (*drain)(struct daemon *d, void (*done)(struct daemon *d));
	size_t (*count)(const struct daemon *d);
	size_t (*running_on)(const struct daemon *d, const char *device,
	                     int64_t *ids, size_t max);
	int64_t (*time_limit_s)(const struct daemon *d, int64_t id);
	/* Shutdown: let go of timers and children. */
	void (*close)(struct daemon *d);
};

extern const struct executor_ops executor_local_ops;
extern const struct executor_ops executor_slurm_ops;

/* The daemon's executor (d->exec) from its config, then its open(). */
int executor_open(struct daemon *d, char *msg, size_t msglen);
void executor_close(struct daemon *d);

/* Start every job the scheduler admits now (nothing while draining). */
void executor_start_more(struct daemon *d);
/* Cancel a running job. 0, or NQ_ENOJOB when the executor has no such job. */
int executor_cancel(struct daemon *d, int64_t id);
void executor_drain(struct daemon *d, void (*done)(struct daemon *d));
size_t executor_count(const struct daemon *d);
/* Ids of the jobs running on a device (up to max); returns the count. */
size_t executor_running_on(const struct daemon *d, const char *device,
                           int64_t *ids, size_t max);
/* The time limit (s) of the running attempt of job id; 0 when none. */
int64_t executor_time_limit_s(const struct daemon *d, int64_t id);

/* --- the shared paths an executor reports through ------------------- */

/* RUNNING -> QUEUED and back into the scheduler. 0 or an nq error. */
int executor_requeue(struct daemon *d, int64_t id, const char *why);
/* An attempt died in a way worth another (crash, hang, node failure):
 * requeued while the job's attempts < max_attempts (returns 1; counted as a
 * restart, published); else 0 with msg "<why>; N attempts" for
 * executor_finish. attempt: the executor's count when the row has none.
 * The caller logs why. */
int executor_retry(struct daemon *d, int64_t id, int attempt, const char *why,
                   char *msg, size_t msglen);
/* The job ended (the caller released its reservation: sched_release):
 * an `error` file for every end
 * but DONE (neuroqd --recover reads it), the row final, its spool bytes
 * counted (quota.h), a log line and an event. */
/* A job ended: its row (and, when not DONE, the spool's error file); when
 * the store cannot take it (a full disk) the end is kept and a retry timer
 * writes it every 2 s until it lands (README.md, Disk full). */
void executor_finish(struct daemon *d, int64_t id, const char *device,
                     enum job_state st, int code, const char *msg);
/* 1 with the end of job id that the store has not taken yet (its row still
 * says RUNNING), 0 when none waits. */
int executor_pending_end(const struct daemon *d, int64_t id, int *state,
                         int *code, const char **msg);
/* A worker's stdout line: "progress <frac> <stage>" goes to the row; an
 * event at most every EXECUTOR_EVENT_MS per job, or when the stage
 * changes (last_ms and stage are the caller's per-job memory). */
#define EXECUTOR_EVENT_MS 250
void executor_progress_line(struct daemon *d, int64_t id, const char *line,
                            uint64_t *last_ms, char *stage, size_t stagelen);

/* --- executor = slurm ------------------------------------------------ */

struct config;
struct device_info;
struct nq_map;
/* Start-up, instead of devices_discover: one sinfo; the scheduler gets
 * "cpu" (capacity: the largest node's memory) and, when the nodes have
 * GPU gres, one GPU pool "cuda:0" (Slurm picks the node and the GPU; the
 * worker reads that GPU's memory); test devices fake:N:SIZE in the
 * config's `devices` stand for the GPUs instead. Slots are unlimited:
 * Slurm queues. 0, or an nq error with msg. */
int executor_slurm_devices(const struct config *c, struct sched *s,
                           struct device_info *out, size_t *n, char *msg,
                           size_t msglen);
/* The devices reply's "slurm" entry: partitions with nodes, gpus,
 * gpus_used, gpu_type, cpus, cpus_used, node_mem_max from the last sinfo
 * (a fresh one starts in the background, at most every 10 s). */
int executor_slurm_describe(struct daemon *d, struct nq_map *out);

#endif
