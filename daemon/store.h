/*
 * store.h — the durable job table (SQLite, WAL, every write in BEGIN
 * IMMEDIATE). Rows hold metadata; arrays live as .npy files in the job's
 * spool directory (<state_dir>/jobs/<id>/).  Only the loop thread calls this.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum job_state {
	JOB_QUEUED = 0,
	JOB_RUNNING = 1,
	JOB_DONE = 2,
	JOB_FAILED = 3,
	JOB_CANCELED = 4
};

const char *job_state_name(enum job_state s); /* "QUEUED" … */
int job_state_parse(const char *s,
                    enum job_state *out); /* 0 or -1 (case-insensitive) */
int job_state_final(enum job_state s);    /* DONE|FAILED|CANCELED */

struct job_row {
	int64_t id;
	char type[32];
	enum job_state state;
	uint32_t owner;      /* uid */
	int priority;        /* higher runs first within an owner */
	char device_req[32]; /* "auto", "cpu", "cuda", "cuda:N" */
	char device[32];     /* where it runs/ran; "" before */
	int attempts;        /* times it was started */
	double progress;     /* 0..1 */
	char stage[64];
	int64_t submitted_us, started_us,
	        finished_us; /* unix µs; 0 = not yet */
	uint64_t est_host_bytes, est_device_bytes;
	double est_flops;
	int error_code; /* nq_err; 0 */
	char error[512];
	char idem[128]; /* idempotency key, "" = none */
	int cancel_requested;
	int64_t purged_us; /* retention removed its spool dir; 0 = not */
	/* what its spool dir holds (quota.h): the submit's size, then the
	 * dir's once the job ended */
	uint64_t spool_bytes;
	/* executor = slurm: the Slurm job id of the running attempt ("" for
	 * the local executor, and before its sbatch returned), and Slurm's
	 * reason while it keeps the job pending ("" when it runs) */
	char backend_job_id[32];
	char pending_reason[64];
};

struct store;

/* Open or create the database (creates tables, sets WAL). 0 or NQ_EIO with
 * msg. */
int store_open(struct store **out, const char *path, char *msg, size_t msglen);
void store_close(struct store *s);
/* Before store_open: is the database at path whole? PRAGMA quick_check and
 * the schema version against the tables. 0 (also when there is no file
 * yet), NQ_EBADDATA when it is damaged (msg says how), NQ_EIO when it
 * cannot be opened at all. */
int store_verify(const char *path, char *msg, size_t msglen);
/* Ids never go backwards: the next job gets at least next (its spool dir
 * may outlive a database that lost rows). 0 or NQ_EIO. */
int store_raise_next_id(struct store *s, int64_t next);
/* The highest id of a row (0 when none). 0 or NQ_EIO. */
int store_max_id(struct store *s, int64_t *max);
/* neuroqd --recover: a row rebuilt from a spool dir, with its own id (type,
 * state, owner, priority, device_req, attempts, submitted_us, finished_us,
 * the estimate, error_code/error, spool_bytes). 0 or NQ_EIO (the id is
 * taken, ...). */
int store_restore_job(struct store *s, const struct job_row *row);
/* Human text of the last failure of any store_* call (sqlite's message for
 * NQ_EIO); "" when none yet. Valid until the next call. */
const char *store_errmsg(const struct store *s);

/* Insert a QUEUED row (fills row->id, submitted_us). If row->idem is set and
 * (owner, idem) exists already, nothing is inserted: *existing = 1 and
 * row->id is the existing job's id. */
int store_put_job(struct store *s, struct job_row *row, int *existing);
int store_get_job(struct store *s, int64_t id,
                  struct job_row *row); /* 0, NQ_ENOJOB */
/* QUEUED → RUNNING: sets device, started_us, attempts += 1. */
int store_mark_running(struct store *s, int64_t id, const char *device);
/* → DONE / FAILED / CANCELED with error code/text (0/"" for DONE). */
int store_mark_final(struct store *s, int64_t id, enum job_state st,
                     int error_code, const char *error);
/* RUNNING → QUEUED (worker died, drain). Keeps attempts. */
int store_requeue(struct store *s, int64_t id, const char *why);
int store_set_progress(struct store *s, int64_t id, double progress,
                       const char *stage);
int store_set_cancel(struct store *s, int64_t id);
/* A RUNNING job's backend (Slurm) job id and pending reason; both are
 * cleared when it starts again, is requeued (and the reason when it ends).
 * 0, NQ_ESTATE (not RUNNING), NQ_ENOJOB, NQ_EIO. */
int store_set_backend(struct store *s, int64_t id, const char *backend_job_id);
int store_set_pending_reason(struct store *s, int64_t id, const char *reason);

/* Iterate jobs matching a filter, newest first (limit 0 = all). The
 * callback returns nonzero to stop. */
struct store_filter {
	int state;     /* -1 = any, else enum job_state */
	int any_owner; /* 0: only owner */
	uint32_t owner;
	int64_t limit;
	int oldest_first; /* 1: ORDER BY id ASC */
};
int store_list(struct store *s, const struct store_filter *f,
               int (*cb)(void *arg, const struct job_row *row), void *arg);

/* Start-up recovery: a QUEUED or RUNNING row whose cancel was requested
 * becomes CANCELED (ECANCELED); every other RUNNING row goes back to QUEUED,
 * or to FAILED ("worker died N times") once attempts >= max_attempts. Rows
 * with a backend_job_id are left alone: their Slurm job may still run, the
 * slurm executor finds it again (executor_slurm.c). Counts
 * out (any may be NULL). */
int store_recover(struct store *s, int max_attempts, int *requeued,
                  int *failed);
int store_recover2(struct store *s, int max_attempts, int *requeued,
                   int *failed, int *canceled);

/* Retention: final (DONE/FAILED/CANCELED) jobs not yet purged that finished
 * before before_us (unix µs), oldest first, at most limit (0 = all). The
 * callback must not write to the store (collect, then act). */
int store_list_expired(struct store *s, int64_t before_us, int64_t limit,
                       int (*cb)(void *arg, const struct job_row *row),
                       void *arg);
/* Records that a final job's spool dir was removed (purged_us = now). 0,
 * NQ_ENOJOB, or NQ_ESTATE when the job is not final. */
int store_mark_purged(struct store *s, int64_t id);

/* The job an earlier submit of owner with this idempotency key made: 0 with
 * *id, NQ_ENOJOB (none, or idem empty), NQ_EIO. */
int store_find_idem(struct store *s, uint32_t owner, const char *idem,
                    int64_t *id);
/* Records what the job's spool dir holds (quota.h). 0, NQ_ENOJOB, NQ_EIO. */
int store_set_spool_bytes(struct store *s, int64_t id, uint64_t bytes);

/* A user's jobs, for quotas and hello: QUEUED and RUNNING counts, and the
 * spool bytes of those not purged (sums in SQL over the owner's rows). */
struct store_usage {
	int64_t queued, running;
	uint64_t spool_bytes;
};
int store_owner_usage(struct store *s, uint32_t owner, struct store_usage *u);
/* QUEUED and RUNNING jobs of every owner but this one (list all_users for
 * a user who is not an administrator). */
int store_count_others(struct store *s, uint32_t owner, int64_t *queued,
                       int64_t *running);

#endif
