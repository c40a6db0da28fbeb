/* executor.c — see executor.h: the facade over the daemon's executor and
 * the end paths every executor shares (moved here from worker.c). */
#include "executor.h"

#include "config.h"
#include "daemon.h"
#include "diskspace.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "nq_error.h"
#include "quota.h"
#include "scheduler.h"
#include "spool.h"
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
executor_open(struct daemon *d, char *msg, size_t msglen)
{
	d->exec = config_is_slurm(d->cfg) ? &executor_slurm_ops
	                                  : &executor_local_ops;
	if (d->exec->open == NULL)
		return 0;
	return d->exec->open(d, msg, msglen);
}

static void executor_ends_close(struct daemon *d);

void
executor_close(struct daemon *d)
{
	if (d->exec != NULL && d->exec->close != NULL)
		d->exec->close(d);
	executor_ends_close(d);
}

int
executor_cancel(struct daemon *d, int64_t id)
{
	return d->exec->cancel(d, id);
}

void
executor_drain(struct daemon *d, void (*done)(struct daemon *d))
{
	d->exec->drain(d, done);
}

size_t
executor_count(const struct daemon *d)
{
	return d->exec == NULL ? 0 : d->exec->count(d);
}

size_t
executor_running_on(const struct daemon *d, const char *device, int64_t *ids,
                    size_t max)
{
	return d->exec->running_on(d, device, ids, max);
}

int64_t
executor_time_limit_s(const struct daemon *d, int64_t id)
{
	return d->exec->time_limit_s(d, id);
}

int
executor_requeue(struct daemon *d, int64_t id, const char *why)
{
	struct job_row row;
	struct sched_job sj;
	int rc;

	rc = store_requeue(d->store, id, why);
	if (rc == 0)
		rc = store_get_job(d->store, id, &row);
	if (rc != 0)
		return rc;
	memset(&sj, 0, sizeof(sj));
	sj.id = id;
	sj.owner = row.owner;
	sj.priority = row.priority;
	sj.seq = (uint64_t) id;
	sj.host_bytes = row.est_host_bytes;
	sj.device_bytes = row.est_device_bytes;
	sj.flops = row.est_flops;
	snprintf(sj.device_req, sizeof(sj.device_req), "%s", row.device_req);
	return sched_enqueue(d->sched, &sj);
}

int
executor_retry(struct daemon *d, int64_t id, int attempt, const char *why,
               char *msg, size_t msglen)
{
	struct job_row row;
	int attempts = attempt;

	if (store_get_job(d->store, id, &row) == 0)
		attempts = row.attempts;
	if (attempts < d->cfg->max_attempts) {
		if (executor_requeue(d, id, why) == 0) {
			metrics_count_restart(d->metrics);
			events_publish_id(d, id);
			return 1;
		}
	}
	snprintf(msg, msglen, "%s; %d attempt%s", why, attempts,
	         attempts == 1 ? "" : "s");
	return 0;
}

/* A job that ended holds its inputs and outputs in the spool: what its
 * owner's quota counts from now on (quota.h). */
static void
executor_count_bytes(struct daemon *d, int64_t id, const char *jd)
{
	uint64_t bytes = 0;

	if (quota_dir_bytes(jd, &bytes) != 0)
		log_warn("cannot measure the spool dir id=%" PRId64
		         " counted=%" PRIu64,
		         id, bytes);
	if (store_set_spool_bytes(d->store, id, bytes) != 0)
		log_err("store write failed id=%" PRId64 " error=\"%s\"", id,
		        store_errmsg(d->store));
}

/* A job's end that the store did not take (a full disk): kept in d->ends
 * and written again by the retry timer until it lands (README.md, Disk
 * full). */
struct executor_end {
	struct executor_end *next;
	int64_t id;
	enum job_state st;
	int code;
	int spooled; /* its error file is written (not for DONE) */
	char msg[1024];
};

#define EXECUTOR_RETRY_MS 2000 /* pending ends, held starts */
/* d->starts_held: why starts wait (logged once, when that changes) */
#define EXECUTOR_HELD_SPACE 1 /* below min_free_bytes */
#define EXECUTOR_HELD_STORE 2 /* the store could not mark a job RUNNING */

static void executor_retry_cb(uv_timer_t *t);

/* The retry timer runs while a job's end waits for the store or starts are
 * held (a full disk); it stops itself when neither. */
static void
executor_retry_arm(struct daemon *d)
{
	if (!d->retry_init) {
		uv_timer_init(d->loop, &d->retry_timer);
		d->retry_timer.data = d;
		d->retry_init = 1;
	}
	if (!uv_is_active((uv_handle_t *) &d->retry_timer))
		uv_timer_start(&d->retry_timer, executor_retry_cb,
		               EXECUTOR_RETRY_MS, EXECUTOR_RETRY_MS);
}

/* One try at writing e: the spool's error file (what a restart and
 * neuroqd --recover read; until it is on disk), then the row. 0 once the
 * store has it (or will never take it: the job is not running any more). */
static int
executor_end_try(struct daemon *d, struct executor_end *e)
{
	char jd[4096];
	int rc;

	spool_job_dir(config_spool_root(d->cfg), e->id, jd, sizeof(jd));
	/* the spool records every end that is not DONE, also the ones the
	 * daemon decided (crashes, liveness): neuroqd --recover reads it */
	if (e->st != JOB_DONE && !e->spooled &&
	    spool_write_error(jd, e->code, e->msg) == 0)
		e->spooled = 1;
	rc = store_mark_final(d->store, e->id, e->st, e->code, e->msg);
	if (rc == NQ_ENOSPACE || rc == NQ_EIO || rc == NQ_ENOMEM)
		return rc;
	if (rc != 0)
		log_warn("job end not recorded id=%" PRId64 " state=%s "
		         "error=\"%s\"",
		         e->id, job_state_name(e->st), store_errmsg(d->store));
	else
		executor_count_bytes(d, e->id, jd);
	events_publish_id(d, e->id);
	return 0;
}

void
executor_finish(struct daemon *d, int64_t id, const char *device,
                enum job_state st, int code, const char *msg)
{
	struct executor_end one = {.id = id, .st = st, .code = code}, *e;

	log_info("job finished id=%" PRId64 " state=%s device=%s error=%s "
	         "message=\"%s\"",
	         id, job_state_name(st), device, nq_errname(code), msg);
	snprintf(one.msg, sizeof(one.msg), "%s", msg);
	if (executor_end_try(d, &one) == 0)
		return;
	/* the store cannot take it (a full disk): never left RUNNING with
	 * nothing to finish it, the retry timer writes it when it can */
	log_err("cannot record the job's end, retrying every %d s "
	        "id=%" PRId64 " state=%s error=\"%s\"",
	        EXECUTOR_RETRY_MS / 1000, id, job_state_name(st),
	        store_errmsg(d->store));
	e = malloc(sizeof(*e));
	if (e == NULL) {
		/* a restart requeues the RUNNING row (or reads its error
		 * file): the job runs again, it is not lost */
		log_err("out of memory: job end kept on disk only id=%" PRId64,
		        id);
		return;
	}
	*e = one;
	e->next = d->ends;
	d->ends = e;
	executor_retry_arm(d);
}

/* Held starts: the state filesystem is below min_free_bytes. Logged when
 * that changes, not at every try. 1 when starts must wait. */
static int
executor_space_low(struct daemon *d)
{
	struct diskspace ds;
	uint64_t min = d->cfg->min_free_bytes;

	if (min == 0 || diskspace_stat(d->cfg->state_dir, &ds) != 0)
		return 0;
	if (ds.free_bytes >= min)
		return 0;
	if (d->starts_held != EXECUTOR_HELD_SPACE)
		log_warn("starts held: the state filesystem is below its "
		         "watermark; queued jobs wait filesystem=%s "
		         "free_bytes=%" PRIu64 " min_free_bytes=%" PRIu64,
		         ds.mount, ds.free_bytes, min);
	return 1;
}

static void
executor_resume(struct daemon *d)
{
	log_notice("starts resumed: the state filesystem has room again");
	d->starts_held = 0;
}

static void
executor_retry_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct executor_end **p = &d->ends;

	while (*p != NULL) {
		struct executor_end *e = *p;
		if (executor_end_try(d, e) == 0) {
			log_notice("job end recorded id=%" PRId64 " state=%s "
			           "error=%s",
			           e->id, job_state_name(e->st),
			           nq_errname(e->code));
			*p = e->next;
			free(e);
			continue;
		}
		log_debug("job end still not recorded id=%" PRId64
		          " error=\"%s\"",
		          e->id, store_errmsg(d->store));
		p = &e->next;
	}
	if (d->starts_held && !d->draining)
		executor_start_more(d); /* clears starts_held when they go */
	if (d->ends == NULL && (!d->starts_held || d->draining))
		uv_timer_stop(t);
}

int
executor_pending_end(const struct daemon *d, int64_t id, int *state, int *code,
                     const char **msg)
{
	for (const struct executor_end *e = d->ends; e != NULL; e = e->next) {
		if (e->id == id) {
			*state = (int) e->st;
			*code = e->code;
			*msg = e->msg;
			return 1;
		}
	}
	return 0;
}

/* At stop: the retry timer closed; ends still waiting are logged (a
 * restart requeues their jobs, or reads their error files). */
static void
executor_ends_close(struct daemon *d)
{
	while (d->ends != NULL) {
		struct executor_end *e = d->ends;
		d->ends = e->next;
		log_err("job end not recorded at stop; the restart requeues "
		        "the job (or reads its error file) id=%" PRId64
		        " state=%s",
		        e->id, job_state_name(e->st));
		free(e);
	}
	if (d->retry_init) {
		uv_timer_stop(&d->retry_timer);
		uv_close((uv_handle_t *) &d->retry_timer, NULL);
		d->retry_init = 0;
	}
}

void
executor_progress_line(struct daemon *d, int64_t id, const char *line,
                       uint64_t *last_ms, char *stage, size_t stagelen)
{
	double frac;
	char st[64] = "";
	int n = 0;

	/* < 1 on no number; range checked below */
	// NOLINTNEXTLINE(cert-err34-c)
	if (sscanf(line, "progress %lf %n", &frac, &n) < 1 || n == 0)
		return;
	snprintf(st, sizeof(st), "%s", line + n);
	if (!(frac >= 0))
		frac = 0;
	if (frac > 1)
		frac = 1;
	if (store_set_progress(d->store, id, frac, st) != 0)
		return;
	uint64_t now = uv_now(d->loop);
	if (now - *last_ms >= EXECUTOR_EVENT_MS || strcmp(st, stage) != 0) {
		*last_ms = now;
		snprintf(stage, stagelen, "%s", st);
		events_publish_id(d, id);
	}
}

void
executor_start_more(struct daemon *d)
{
	struct sched_job sj;
	size_t dev;
	uint64_t grant;

	if (d->draining)
		return;
	/* below the watermark a start would only fail its job (or the
	 * store's write): the queue waits, the retry timer looks again */
	if (executor_space_low(d)) {
		d->starts_held = EXECUTOR_HELD_SPACE;
		executor_retry_arm(d);
		return;
	}
	if (d->starts_held == EXECUTOR_HELD_SPACE)
		executor_resume(d);
	while (!d->draining && sched_next(d->sched, &sj, &dev, &grant) == 1) {
		const struct sched_device *sd = sched_device_at(d->sched, dev);
		struct executor_job j;
		struct job_row row;
		char msg[512] = "";
		int rc;

		rc = store_get_job(d->store, sj.id, &row);
		if (rc == 0)
			rc = store_mark_running(d->store, sj.id, sd->name);
		if (rc == NQ_ENOSPACE || rc == NQ_EIO || rc == NQ_ENOMEM) {
			/* the store cannot write (a full disk): the job stays
			 * QUEUED, in its place, and starts when it can */
			if (d->starts_held != EXECUTOR_HELD_STORE)
				log_err("cannot start job, kept queued; "
				        "retrying every %d s id=%" PRId64
				        " error=\"%s\"",
				        EXECUTOR_RETRY_MS / 1000, sj.id,
				        store_errmsg(d->store));
			sched_release(d->sched, sj.id);
			if (sched_enqueue(d->sched, &sj) != 0)
				log_err("out of memory: job waits for a "
				        "restart id=%" PRId64,
				        sj.id);
			d->starts_held = EXECUTOR_HELD_STORE;
			executor_retry_arm(d);
			return;
		}
		if (d->starts_held)
			executor_resume(d);
		if (rc != 0) {
			/* no longer QUEUED (canceled, gone): not ours to run */
			log_err("cannot start job id=%" PRId64 " error=\"%s\"",
			        sj.id, store_errmsg(d->store));
			sched_release(d->sched, sj.id);
			continue;
		}
		memset(&j, 0, sizeof(j));
		j.id = sj.id;
		j.owner = row.owner;
		snprintf(j.type, sizeof(j.type), "%s", row.type);
		snprintf(j.device, sizeof(j.device), "%s", sd->name);
		j.kind = sd->kind;
		j.grant = grant;
		j.host_bytes = row.est_host_bytes;
		j.device_bytes = row.est_device_bytes;
		j.flops = row.est_flops;
		j.attempt = row.attempts + 1;
		rc = d->exec->start(d, &j, msg, sizeof(msg));
		if (rc != 0) {
			log_err("job start failed id=%" PRId64 " executor=%s "
			        "error=\"%s\"",
			        sj.id, d->exec->name, msg);
			sched_release(d->sched, sj.id);
			executor_finish(d, sj.id, sd->name, JOB_FAILED, rc,
			                msg);
			continue;
		}
	}
	/* nothing to start, or all started: no start waits for the store */
	if (d->starts_held && !d->draining)
		executor_resume(d);
}
