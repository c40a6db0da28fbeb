/* worker.c — see worker.h. */
#include "worker.h"

#include "child.h"
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKER_EVENT_MS 250 /* progress events: at most ~4/s per job */

struct worker {
	struct worker *next;
	struct daemon *d;
	int64_t id;
	char device[32];
	char type[32];
	uint64_t grant;
	int attempt;
	struct child *child;
	int cancel;   /* we sent SIGTERM to cancel */
	int draining; /* we sent SIGTERM to drain */
	uint64_t last_event_ms;
	char stage[64];
};

static void (*worker_drain_done)(struct daemon *d);

size_t
worker_count(const struct daemon *d)
{
	size_t n = 0;

	for (const struct worker *w = d->workers; w != NULL; w = w->next)
		n++;
	return n;
}

size_t
worker_running_on(const struct daemon *d, const char *device, int64_t *ids,
                  size_t max)
{
	size_t n = 0;

	for (const struct worker *w = d->workers; w != NULL; w = w->next) {
		if (strcmp(w->device, device) == 0 && n < max)
			ids[n++] = w->id;
	}
	return n;
}

static struct worker *
worker_find(struct daemon *d, int64_t id)
{
	for (struct worker *w = d->workers; w != NULL; w = w->next) {
		if (w->id == id)
			return w;
	}
	return NULL;
}

static void
worker_unlink(struct daemon *d, struct worker *w)
{
	for (struct worker **p = &d->workers; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			return;
		}
	}
}

static void
worker_progress_line(struct worker *w, const char *line)
{
	struct daemon *d = w->d;
	double frac;
	char stage[64] = "";
	int n = 0;

	/* NOLINTNEXTLINE(cert-err34-c): < 1 on no number; range checked below */
	if (sscanf(line, "progress %lf %n", &frac, &n) < 1 || n == 0)
		return;
	snprintf(stage, sizeof(stage), "%s", line + n);
	if (!(frac >= 0))
		frac = 0;
	if (frac > 1)
		frac = 1;
	if (store_set_progress(d->store, w->id, frac, stage) != 0)
		return;
	uint64_t now = uv_now(d->loop);
	if (now - w->last_event_ms >= WORKER_EVENT_MS ||
	    strcmp(stage, w->stage) != 0) {
		w->last_event_ms = now;
		snprintf(w->stage, sizeof(w->stage), "%s", stage);
		events_publish_id(d, w->id);
	}
}

/* progress lines: "progress <frac> <stage>"; a longer line than the
 * protocol's is not one of them */
static void
worker_line_cb(void *arg, const char *line, size_t len, int cut)
{
	(void) len;
	if (!cut)
		worker_progress_line(arg, line);
}

static void
worker_kill_cb(void *arg, int sig, enum child_why why)
{
	struct worker *w = arg;

	(void) sig;
	(void) why; /* only child_kill()'s grace period: no timeout is set */
	log_warn("worker killed id=%" PRId64 " pid=%d reason=grace-over", w->id,
	         child_pid(w->child));
}

static int
worker_requeue(struct daemon *d, int64_t id, const char *why)
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

/* A job that ended holds its inputs and outputs in the spool: what its
 * owner's quota counts from now on (quota.h). */
static void
worker_count_bytes(struct daemon *d, int64_t id, const char *jd)
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

/* The worker exited and its last progress line was read. */
static void
worker_exit_cb(void *arg, int64_t status, int sig)
{
	struct worker *w = arg;
	struct daemon *d = w->d;
	char jd[4096], msg[1024] = "";
	int code = 0;
	enum job_state st;

	spool_job_dir(d->cfg->state_dir, w->id, jd, sizeof(jd));
	sched_release(d->sched, w->id);
	worker_unlink(d, w);

	if (status == 0 && sig == 0) {
		st = JOB_DONE;
		/* NOLINTNEXTLINE(bugprone-branch-clone): before the drain test */
	} else if (w->cancel && (status == 3 || sig != 0)) {
		st = JOB_CANCELED;
		code = NQ_ECANCELED;
		snprintf(msg, sizeof(msg), "canceled");
	} else if (w->draining && (status == 3 || sig != 0)) {
		/* the daemon stops: the job starts over after the restart */
		if (store_requeue(d->store, w->id, "daemon stopped") == 0)
			log_info("job requeued id=%" PRId64 " reason=drain",
			         w->id);
		goto done;
	} else if (status == 3) {
		/* SIGTERM from someone else (an admin): a cancel too */
		st = JOB_CANCELED;
		code = NQ_ECANCELED;
		snprintf(msg, sizeof(msg), "canceled");
	} else if (sig != 0) {
		/* a crash (CUDA fault, OOM killer ...): another attempt
		 * unless it keeps crashing */
		struct job_row row;
		int attempts = w->attempt;
		if (store_get_job(d->store, w->id, &row) == 0)
			attempts = row.attempts;
		if (attempts < d->cfg->max_attempts) {
			char why[64];
			snprintf(why, sizeof(why), "worker killed by signal %d",
			         sig);
			log_warn("worker crashed id=%" PRId64 " signal=%d "
			         "attempt=%d action=requeue",
			         w->id, sig, attempts);
			if (worker_requeue(d, w->id, why) == 0) {
				metrics_count_restart(d->metrics);
				events_publish_id(d, w->id);
				goto done;
			}
		}
		st = JOB_FAILED;
		code = NQ_EFAILED;
		snprintf(msg, sizeof(msg),
		         "worker exited with signal %d (%s); %d attempt%s", sig,
		         strsignal(sig), attempts, attempts == 1 ? "" : "s");
	} else {
		st = JOB_FAILED;
		if (spool_read_error(jd, &code, msg, sizeof(msg)) != 0) {
			code = status == 2 ? NQ_EINTERNAL : NQ_EFAILED;
			snprintf(msg, sizeof(msg),
			         "worker exited with status %" PRId64
			         " and no error file",
			         status);
		}
		if (code == NQ_ECANCELED)
			st = JOB_CANCELED;
	}
	if (store_mark_final(d->store, w->id, st, code, msg) != 0)
		log_err("store write failed id=%" PRId64 " error=\"%s\"", w->id,
		        store_errmsg(d->store));
	worker_count_bytes(d, w->id, jd);
	log_info("job finished id=%" PRId64 " state=%s device=%s "
	         "exit=%" PRId64 " signal=%d error=%s message=\"%s\"",
	         w->id, job_state_name(st), w->device, status, sig,
	         nq_errname(code), msg);
	events_publish_id(d, w->id);
done:
	free(w); /* the child is gone with this callback */
	if (d->draining) {
		if (d->workers == NULL && worker_drain_done != NULL) {
			void (*cb)(struct daemon *) = worker_drain_done;
			worker_drain_done = NULL;
			cb(d);
		}
		return;
	}
	worker_start_more(d);
}

static int
worker_spawn(struct daemon *d, struct worker *w, char *msg, size_t msglen)
{
	char jd[4096], grant[32], attempt[16], err[256];
	char *args[16];
	struct child_opts o;
	int a = 0, rc;

	spool_job_dir(d->cfg->state_dir, w->id, jd, sizeof(jd));
	snprintf(grant, sizeof(grant), "%" PRIu64, w->grant);
	snprintf(attempt, sizeof(attempt), "%d", w->attempt);
	args[a++] = (char *) d->cfg->worker_path;
	args[a++] = "run";
	args[a++] = "--type";
	args[a++] = w->type;
	args[a++] = "--dir";
	args[a++] = jd;
	args[a++] = "--device";
	args[a++] = w->device;
	args[a++] = "--grant";
	args[a++] = grant;
	args[a++] = "--attempt";
	args[a++] = attempt;
	args[a] = NULL;

	memset(&o, 0, sizeof(o));
	o.argv = args;
	/* own session: a Ctrl-C meant for a foreground neuroqd must not
	 * cancel the jobs; the daemon decides (drain requeues them) */
	o.new_session = 1;
	o.max_line = 255; /* progress lines are short; longer ones are not */
	o.on_line = worker_line_cb;
	o.on_kill = worker_kill_cb;
	o.on_exit = worker_exit_cb;
	o.arg = w;
	rc = child_spawn(d->loop, &o, &w->child, err, sizeof(err));
	if (rc != 0)
		snprintf(msg, msglen, "cannot start %.300s: %.150s",
		         d->cfg->worker_path, err);
	return rc == 0 ? 0 : NQ_EINTERNAL;
}

void
worker_start_more(struct daemon *d)
{
	struct sched_job sj;
	size_t dev;
	uint64_t grant;

	while (!d->draining && sched_next(d->sched, &sj, &dev, &grant) == 1) {
		const struct sched_device *sd = sched_device_at(d->sched, dev);
		struct job_row row;
		struct worker *w;
		char msg[512] = "";
		int rc;

		w = calloc(1, sizeof(*w));
		if (w == NULL) {
			sched_release(d->sched, sj.id);
			worker_requeue(d, sj.id, "out of memory");
			return;
		}
		w->d = d;
		w->id = sj.id;
		w->grant = grant;
		snprintf(w->device, sizeof(w->device), "%s", sd->name);
		rc = store_get_job(d->store, sj.id, &row);
		if (rc == 0)
			rc = store_mark_running(d->store, sj.id, sd->name);
		if (rc != 0) {
			log_err("cannot start job id=%" PRId64 " error=\"%s\"",
			        sj.id, store_errmsg(d->store));
			sched_release(d->sched, sj.id);
			free(w);
			continue;
		}
		snprintf(w->type, sizeof(w->type), "%s", row.type);
		w->attempt = row.attempts + 1;
		rc = worker_spawn(d, w, msg, sizeof(msg));
		if (rc != 0) {
			log_err("worker spawn failed id=%" PRId64
			        " error=\"%s\"",
			        sj.id, msg);
			sched_release(d->sched, sj.id);
			store_mark_final(d->store, sj.id, JOB_FAILED, rc, msg);
			events_publish_id(d, sj.id);
			free(w);
			continue;
		}
		w->next = d->workers;
		d->workers = w;
		log_info("job started id=%" PRId64 " type=%s device=%s "
		         "grant=%" PRIu64 " attempt=%d pid=%d",
		         w->id, w->type, w->device, w->grant, w->attempt,
		         child_pid(w->child));
		events_publish_id(d, w->id);
	}
}

int
worker_cancel(struct daemon *d, int64_t id)
{
	struct worker *w = worker_find(d, id);

	if (w == NULL)
		return NQ_ENOJOB;
	if (!w->cancel) {
		w->cancel = 1;
		child_kill(w->child, SIGTERM, WORKER_KILL_GRACE_MS);
	}
	return 0;
}

void
worker_drain(struct daemon *d, void (*done)(struct daemon *d))
{
	if (d->workers == NULL) {
		done(d);
		return;
	}
	worker_drain_done = done;
	for (struct worker *w = d->workers; w != NULL; w = w->next) {
		w->draining = 1;
		child_kill(w->child, SIGTERM, WORKER_KILL_GRACE_MS);
	}
}
