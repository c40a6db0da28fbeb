/* executor.c — see executor.h: the facade over the daemon's executor and
 * the end paths every executor shares (moved here from worker.c). */
#include "executor.h"

#include "config.h"
#include "daemon.h"
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

void
executor_close(struct daemon *d)
{
	if (d->exec != NULL && d->exec->close != NULL)
		d->exec->close(d);
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

void
executor_finish(struct daemon *d, int64_t id, const char *device,
                enum job_state st, int code, const char *msg)
{
	char jd[4096];

	spool_job_dir(config_spool_root(d->cfg), id, jd, sizeof(jd));
	/* the spool records every end that is not DONE, also the ones the
	 * daemon decided (crashes, liveness): neuroqd --recover reads it */
	if (st != JOB_DONE)
		spool_write_error(jd, code, msg);
	if (store_mark_final(d->store, id, st, code, msg) != 0)
		log_err("store write failed id=%" PRId64 " error=\"%s\"", id,
		        store_errmsg(d->store));
	executor_count_bytes(d, id, jd);
	log_info("job finished id=%" PRId64 " state=%s device=%s error=%s "
	         "message=\"%s\"",
	         id, job_state_name(st), device, nq_errname(code), msg);
	events_publish_id(d, id);
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

	while (!d->draining && sched_next(d->sched, &sj, &dev, &grant) == 1) {
		const struct sched_device *sd = sched_device_at(d->sched, dev);
		struct executor_job j;
		struct job_row row;
		char msg[512] = "";
		int rc;

		rc = store_get_job(d->store, sj.id, &row);
		if (rc == 0)
			rc = store_mark_running(d->store, sj.id, sd->name);
		if (rc != 0) {
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
			store_mark_final(d->store, sj.id, JOB_FAILED, rc, msg);
			events_publish_id(d, sj.id);
			continue;
		}
	}
}
