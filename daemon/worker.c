/* worker.c — see worker.h. */
#include "worker.h"

#include "child.h"
#include "config.h"
#include "daemon.h"
#include "diskspace.h"
#include "events.h"
#include "liveness.h"
#include "log.h"
#include "metrics.h"
#include "nq_error.h"
#include "quota.h"
#include "scheduler.h"
#include "spool.h"
#include "store.h"

#include <inttypes.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKER_EVENT_MS 250 /* progress events: at most ~4/s per job */

struct worker {
	struct worker *next;
	struct daemon *d;
	int64_t id;
	uint32_t owner;
	char device[32];
	char type[32];
	uint64_t grant;
	double flops; /* the estimate's: the default time limit */
	int attempt;
	struct child *child;
	int cancel;   /* we sent SIGTERM to cancel */
	int draining; /* we sent SIGTERM to drain */
	uint64_t last_event_ms;
	char stage[64];
	/* liveness (liveness.h): checked every WORKER_LIVENESS_MS */
	uv_timer_t timer;
	int timer_init;
	uint64_t started_ms, beat_ms; /* uv_now(): spawn, last stdout line */
	uint64_t check_ms;            /* the last check */
	int64_t limit_s;              /* this attempt's time limit */
	int hung;                     /* we sent SIGKILL: no heartbeat */
	int over_limit;               /* we sent SIGKILL: past limit_s */
	/* its "error CODE msg" line: the error file could not be written */
	int line_code;
	char line_msg[256];
};

/* A job's end that the store did not take (a full disk): kept here and
 * written again by the retry timer until it lands (README.md, Disk full). */
struct worker_end {
	struct worker_end *next;
	int64_t id;
	enum job_state st;
	int code;
	int spooled; /* its error file is written (not for DONE) */
	char msg[1024];
};

#define WORKER_RETRY_MS 2000 /* pending ends, held starts */
/* d->starts_held: why starts wait (logged once, when that changes) */
#define WORKER_HELD_SPACE 1 /* below min_free_bytes */
#define WORKER_HELD_STORE 2 /* the store could not mark a job RUNNING */

#define WORKER_LIVENESS_MS 500

static void (*worker_drain_done)(struct daemon *d);

/* dir of path into out (a socket's dir); 0, or -1 when it has none */
static int
worker_dirname(const char *path, char *out, size_t n)
{
	const char *slash = strrchr(path, '/');
	size_t len;

	if (slash == NULL)
		return -1;
	len = slash == path ? 1 : (size_t) (slash - path);
	if (len >= n)
		return -1;
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

void
worker_owner_args(const struct daemon *d, uint32_t owner, unsigned um,
                  struct worker_owner *wo)
{
	const struct config *c = d->cfg;
	size_t nd = 0;
	int a = 0;

	snprintf(wo->uid, sizeof(wo->uid), "%" PRIu32, owner);
	snprintf(wo->gid, sizeof(wo->gid), "%u", (unsigned) getegid());
	snprintf(wo->um, sizeof(wo->um), "%03o", um & 0777u);
	wo->argv[a++] = "--owner";
	wo->argv[a++] = wo->uid;
	wo->argv[a++] = "--service-gid";
	wo->argv[a++] = wo->gid;
	wo->argv[a++] = "--umask";
	wo->argv[a++] = wo->um;
	snprintf(wo->deny[nd++], sizeof(wo->deny[0]), "%s", c->state_dir);
	for (int i = 0; i <= c->nlisten; i++) {
		const char *u = i < c->nlisten ? c->listen[i] : c->events;
		if (strncmp(u, "ipc://", 6) == 0 && nd < WORKER_DENY_MAX &&
		    worker_dirname(u + 6, wo->deny[nd], sizeof(wo->deny[0])) ==
		            0)
			nd++;
	}
	for (size_t i = 0; i < nd; i++) {
		wo->argv[a++] = "--deny";
		wo->argv[a++] = wo->deny[i];
	}
	wo->argv[a] = NULL;
	wo->argc = a;
}

int
worker_can_run_as(uint32_t uid)
{
	struct __user_cap_header_struct h = {
	        .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct cd[2];

	if (uid == (uint32_t) geteuid())
		return 1;
	memset(cd, 0, sizeof(cd));
	if (syscall(SYS_capget, &h, cd) != 0)
		return 0;
	return (cd[CAP_SETUID / 32].effective >> (CAP_SETUID % 32) & 1) &&
	       (cd[CAP_SETGID / 32].effective >> (CAP_SETGID % 32) & 1);
}

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

	/* < 1 on no number; range checked below */
	// NOLINTNEXTLINE(cert-err34-c)
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
	struct worker *w = arg;

	(void) len;
	/* any line is a sign of life; "heartbeat" is nothing more */
	w->beat_ms = uv_now(w->d->loop);
	if (!cut && strncmp(line, "error ", 6) == 0) {
		char name[32];
		int n = 0, code;
		if (sscanf(line, "error %31s %n", name, &n) >= 1 && n > 0 &&
		    (code = nq_errcode(name)) > 0) {
			w->line_code = code;
			snprintf(w->line_msg, sizeof(w->line_msg), "%s",
			         line + n);
		}
		return;
	}
	if (!cut)
		worker_progress_line(w, line);
}

/* Every WORKER_LIVENESS_MS: a worker silent for heartbeat_timeout_s or past
 * its time limit is killed; its exit (worker_exit_cb) says which. */
static void
worker_liveness_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct daemon *d = w->d;
	uint64_t now = uv_now(d->loop);
	enum liveness l;

	uint64_t prev = w->check_ms;

	w->check_ms = now;
	if (w->cancel || w->draining || w->hung || w->over_limit)
		return; /* a SIGTERM's grace period ends in SIGKILL anyway */
	/* the loop itself was stalled (timers run before the pipes are read):
	 * the worker's lines may be waiting, read them first */
	if (now - prev > 4 * WORKER_LIVENESS_MS)
		return;
	l = liveness_check(now, w->started_ms, w->beat_ms,
	                   (uint64_t) d->cfg->heartbeat_timeout_s * 1000,
	                   w->limit_s);
	if (l == LIVENESS_OK)
		return;
	if (l == LIVENESS_OVER_LIMIT) {
		w->over_limit = 1;
		log_warn("worker past its time limit id=%" PRId64
		         " pid=%d limit_s=%" PRId64 " action=kill",
		         w->id, child_pid(w->child), w->limit_s);
	} else {
		w->hung = 1;
		log_warn("worker not responding id=%" PRId64 " pid=%d "
		         "silent_ms=%" PRIu64 " action=kill",
		         w->id, child_pid(w->child), now - w->beat_ms);
	}
	uv_timer_stop(t);
	child_kill(w->child, SIGKILL, 0);
}

static void
worker_free_cb(uv_handle_t *h)
{
	free(h->data);
}

/* free w, once its timer is closed */
static void
worker_free(struct worker *w)
{
	if (!w->timer_init) {
		free(w);
		return;
	}
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *) &w->timer, worker_free_cb);
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

static void worker_retry_cb(uv_timer_t *t);

/* The retry timer runs while a job's end waits for the store or starts are
 * held (a full disk); it stops itself when neither. */
static void
worker_retry_arm(struct daemon *d)
{
	if (!d->retry_init) {
		uv_timer_init(d->loop, &d->retry_timer);
		d->retry_timer.data = d;
		d->retry_init = 1;
	}
	if (!uv_is_active((uv_handle_t *) &d->retry_timer))
		uv_timer_start(&d->retry_timer, worker_retry_cb,
		               WORKER_RETRY_MS, WORKER_RETRY_MS);
}

/* One try at writing e: the spool's error file (what a restart and
 * neuroqd --recover read; until it is on disk), then the row. 0 once the
 * store has it (or will never take it: the job is not running any more). */
static int
worker_end_try(struct daemon *d, struct worker_end *e)
{
	char jd[4096];
	int rc;

	spool_job_dir(d->cfg->state_dir, e->id, jd, sizeof(jd));
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
		worker_count_bytes(d, e->id, jd);
	events_publish_id(d, e->id);
	return 0;
}

/* A job ended: its row, or, when the store cannot take it (a full disk),
 * an entry in d->ends that the retry timer writes until it lands. The job
 * is never left RUNNING with no worker and nothing to finish it. */
static void
worker_end(struct daemon *d, int64_t id, enum job_state st, int code,
           const char *msg)
{
	struct worker_end *e = calloc(1, sizeof(*e));
	struct worker_end one = {.id = id, .st = st, .code = code};
	int rc;

	snprintf(one.msg, sizeof(one.msg), "%s", msg);
	rc = worker_end_try(d, &one);
	if (rc == 0) {
		free(e);
		return;
	}
	log_err("cannot record the job's end, retrying every %d s "
	        "id=%" PRId64 " state=%s error=\"%s\"",
	        WORKER_RETRY_MS / 1000, id, job_state_name(st),
	        store_errmsg(d->store));
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
	worker_retry_arm(d);
}

/* Held starts: the state filesystem is below min_free_bytes. Logged when
 * that changes, not at every try. 1 when starts must wait. */
static int
worker_space_low(struct daemon *d)
{
	struct diskspace ds;
	uint64_t min = d->cfg->min_free_bytes;

	if (min == 0 || diskspace_stat(d->cfg->state_dir, &ds) != 0)
		return 0;
	if (ds.free_bytes >= min)
		return 0;
	if (d->starts_held != WORKER_HELD_SPACE)
		log_warn("starts held: the state filesystem is below its "
		         "watermark; queued jobs wait filesystem=%s "
		         "free_bytes=%" PRIu64 " min_free_bytes=%" PRIu64,
		         ds.mount, ds.free_bytes, min);
	return 1;
}

static void
worker_retry_cb(uv_timer_t *t)
{
	struct daemon *d = t->data;
	struct worker_end **p = &d->ends;

	while (*p != NULL) {
		struct worker_end *e = *p;
		if (worker_end_try(d, e) == 0) {
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
		worker_start_more(d); /* clears starts_held when they go */
	if (d->ends == NULL && (!d->starts_held || d->draining))
		uv_timer_stop(t);
}

int
worker_pending_end(const struct daemon *d, int64_t id, int *state, int *code,
                   const char **msg)
{
	for (const struct worker_end *e = d->ends; e != NULL; e = e->next) {
		if (e->id == id) {
			*state = (int) e->st;
			*code = e->code;
			*msg = e->msg;
			return 1;
		}
	}
	return 0;
}

void
worker_close(struct daemon *d)
{
	while (d->ends != NULL) {
		struct worker_end *e = d->ends;
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
	} else if (w->over_limit && sig != 0) {
		/* not requeued: it would run past the limit again */
		st = JOB_FAILED;
		code = NQ_ETIMEDOUT;
		snprintf(msg, sizeof(msg),
		         "time limit of %" PRId64 " s exceeded", w->limit_s);
	} else if (w->hung && sig != 0) {
		/* stopped or hung: another attempt, like a crash */
		struct job_row row;
		int attempts = w->attempt;
		char why[128];
		snprintf(why, sizeof(why),
		         "worker stopped responding (no heartbeat for %d s)",
		         d->cfg->heartbeat_timeout_s);
		if (store_get_job(d->store, w->id, &row) == 0)
			attempts = row.attempts;
		if (attempts < d->cfg->max_attempts) {
			log_warn("worker hung id=%" PRId64 " attempt=%d "
			         "action=requeue",
			         w->id, attempts);
			if (worker_requeue(d, w->id, why) == 0) {
				metrics_count_restart(d->metrics);
				events_publish_id(d, w->id);
				goto done;
			}
		}
		st = JOB_FAILED;
		code = NQ_EFAILED;
		snprintf(msg, sizeof(msg), "%s; %d attempt%s", why, attempts,
		         attempts == 1 ? "" : "s");
		/* the same verdict as the status == 3 branch below, which must
		 * come after the drain test */
		// NOLINTNEXTLINE(bugprone-branch-clone)
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
		if (spool_read_error(jd, &code, msg, sizeof(msg)) == 0) {
			; /* the worker's own words */
		} else if (w->line_code > 0) {
			/* it could not write them: a full disk */
			code = w->line_code;
			snprintf(msg, sizeof(msg), "%s", w->line_msg);
		} else {
			code = status == 2 ? NQ_EINTERNAL : NQ_EFAILED;
			snprintf(msg, sizeof(msg),
			         "worker exited with status %" PRId64
			         " and no error file",
			         status);
		}
		if (code == NQ_ECANCELED)
			st = JOB_CANCELED;
	}
	log_info("job finished id=%" PRId64 " state=%s device=%s "
	         "exit=%" PRId64 " signal=%d error=%s message=\"%s\"",
	         w->id, job_state_name(st), w->device, status, sig,
	         nq_errname(code), msg);
	worker_end(d, w->id, st, code, msg);
done:
	worker_free(w); /* the child is gone with this callback */
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
	char *args[16 + WORKER_OWNER_ARGC];
	struct worker_owner *wo = calloc(1, sizeof(*wo));
	struct child_opts o;
	int a = 0, rc;

	if (wo == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}

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
	/* as the job's owner, with the umask kept from its submit */
	worker_owner_args(d, w->owner, spool_read_umask(jd), wo);
	for (int i = 0; i < wo->argc; i++)
		args[a++] = wo->argv[i];
	args[a] = NULL;
	/* what the submit asked for (or the default), under today's max */
	w->limit_s = liveness_limit_s(liveness_read(jd), w->flops,
	                              d->cfg->max_job_seconds);

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
	free(wo); /* uv_spawn copied the arguments */
	if (rc != 0)
		snprintf(msg, msglen, "cannot start %.300s: %.150s",
		         d->cfg->worker_path, err);
	return rc == 0 ? 0 : NQ_EINTERNAL;
}

static void
worker_resume(struct daemon *d)
{
	log_notice("starts resumed: the state filesystem has room again");
	d->starts_held = 0;
}

void
worker_start_more(struct daemon *d)
{
	struct sched_job sj;
	size_t dev;
	uint64_t grant;

	if (d->draining)
		return;
	/* below the watermark a start would only fail its job (or the
	 * store's write): the queue waits, the retry timer looks again */
	if (worker_space_low(d)) {
		d->starts_held = WORKER_HELD_SPACE;
		worker_retry_arm(d);
		return;
	}
	if (d->starts_held == WORKER_HELD_SPACE)
		worker_resume(d);
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
		if (rc == NQ_ENOSPACE || rc == NQ_EIO || rc == NQ_ENOMEM) {
			/* the store cannot write (a full disk): the job stays
			 * QUEUED, in its place, and starts when it can */
			if (d->starts_held != WORKER_HELD_STORE)
				log_err("cannot start job, kept queued; "
				        "retrying every %d s id=%" PRId64
				        " error=\"%s\"",
				        WORKER_RETRY_MS / 1000, sj.id,
				        store_errmsg(d->store));
			sched_release(d->sched, sj.id);
			free(w);
			if (sched_enqueue(d->sched, &sj) != 0)
				log_err("out of memory: job waits for a "
				        "restart id=%" PRId64,
				        sj.id);
			d->starts_held = WORKER_HELD_STORE;
			worker_retry_arm(d);
			return;
		}
		if (d->starts_held)
			worker_resume(d);
		if (rc != 0) {
			/* no longer QUEUED (canceled, gone): not ours to run */
			log_err("cannot start job id=%" PRId64 " error=\"%s\"",
			        sj.id, store_errmsg(d->store));
			sched_release(d->sched, sj.id);
			free(w);
			continue;
		}
		snprintf(w->type, sizeof(w->type), "%s", row.type);
		w->owner = row.owner;
		w->flops = row.est_flops;
		w->attempt = row.attempts + 1;
		rc = worker_spawn(d, w, msg, sizeof(msg));
		if (rc != 0) {
			log_err("worker spawn failed id=%" PRId64
			        " error=\"%s\"",
			        sj.id, msg);
			sched_release(d->sched, sj.id);
			worker_end(d, sj.id, JOB_FAILED, rc, msg);
			free(w);
			continue;
		}
		uv_update_time(d->loop);
		w->started_ms = w->beat_ms = w->check_ms = uv_now(d->loop);
		uv_timer_init(d->loop, &w->timer);
		w->timer.data = w;
		w->timer_init = 1;
		uv_timer_start(&w->timer, worker_liveness_cb,
		               WORKER_LIVENESS_MS, WORKER_LIVENESS_MS);
		w->next = d->workers;
		d->workers = w;
		log_info("job started id=%" PRId64 " type=%s device=%s "
		         "grant=%" PRIu64 " attempt=%d pid=%d limit_s=%" PRId64,
		         w->id, w->type, w->device, w->grant, w->attempt,
		         child_pid(w->child), w->limit_s);
		events_publish_id(d, w->id);
	}
	/* nothing to start, or all started: no start waits for the store */
	if (d->starts_held && !d->draining)
		worker_resume(d);
}

int64_t
worker_time_limit_s(const struct daemon *d, int64_t id)
{
	for (const struct worker *w = d->workers; w != NULL; w = w->next) {
		if (w->id == id)
			return w->limit_s;
	}
	return 0;
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
