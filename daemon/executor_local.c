/* executor_local.c — the local executor (executor.h): one neuroq-worker
 * process per started job (uv_spawn), its progress pipe, liveness, cancel
 * (SIGTERM, SIGKILL after a grace period) and what its exit means; and the
 * owner arguments of worker.h. */
#include "worker.h"

#include "child.h"
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "executor.h"
#include "liveness.h"
#include "log.h"
#include "metrics.h"
#include "nq_error.h"
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
                  int parent, struct worker_owner *wo)
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
	if (parent > 0) {
		snprintf(wo->parent, sizeof(wo->parent), "%d", parent);
		wo->argv[a++] = "--parent";
		wo->argv[a++] = wo->parent;
	}
	snprintf(wo->deny[nd++], sizeof(wo->deny[0]), "%s", c->state_dir);
	/* executor = slurm: a submit's check runs here with the service's
	 * group, which opens every job dir of the shared spool */
	if (strcmp(config_spool_root(c), c->state_dir) != 0)
		snprintf(wo->deny[nd++], sizeof(wo->deny[0]), "%s",
		         config_spool_root(c));
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

static size_t
worker_count(const struct daemon *d)
{
	size_t n = 0;

	for (const struct worker *w = d->workers; w != NULL; w = w->next)
		n++;
	return n;
}

static size_t
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
		executor_progress_line(w->d, w->id, line, &w->last_event_ms,
		                       w->stage, sizeof(w->stage));
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

/* The worker exited and its last progress line was read. */
static void
worker_exit_cb(void *arg, int64_t status, int sig)
{
	struct worker *w = arg;
	struct daemon *d = w->d;
	char jd[4096], msg[1024] = "", why[128] = "";
	int code = 0;
	enum job_state st = JOB_FAILED;

	spool_job_dir(d->cfg->state_dir, w->id, jd, sizeof(jd));
	sched_release(d->sched, w->id);
	worker_unlink(d, w);

	if (status == 0 && sig == 0) {
		st = JOB_DONE;
		/* the same verdict as the status == 3 branch below, which must
		 * come after the hung, limit and drain tests */
		// NOLINTNEXTLINE(bugprone-branch-clone)
	} else if (w->cancel && (status == 3 || sig != 0)) {
		/* its owner asked: canceled, also when it then hung or ran
		 * past its limit before the SIGTERM took */
		st = JOB_CANCELED;
		code = NQ_ECANCELED;
		snprintf(msg, sizeof(msg), "canceled");
	} else if (w->over_limit && sig != 0) {
		/* not requeued: it would run past the limit again */
		st = JOB_FAILED;
		code = NQ_ETIMEDOUT;
		snprintf(msg, sizeof(msg),
		         "time limit of %" PRId64 " s exceeded", w->limit_s);
	} else if (w->hung && sig != 0) {
		/* stopped or hung: another attempt, like a crash */
		snprintf(why, sizeof(why),
		         "worker stopped responding (no heartbeat for %d s)",
		         d->cfg->heartbeat_timeout_s);
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
		snprintf(why, sizeof(why), "worker exited with signal %d (%s)",
		         sig, strsignal(sig));
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
	if (why[0] != '\0') {
		/* a hung or crashed worker: requeued, or FAILED once it has
		 * had max_attempts */
		if (executor_retry(d, w->id, w->attempt, why, msg,
		                   sizeof(msg))) {
			log_warn("worker %s id=%" PRId64 " signal=%d "
			         "attempt=%d action=requeue",
			         w->hung ? "hung" : "crashed", w->id, sig,
			         w->attempt);
			goto done;
		}
		st = JOB_FAILED;
		code = NQ_EFAILED;
	}
	log_info("worker exited id=%" PRId64 " pid=%d exit=%" PRId64
	         " signal=%d",
	         w->id, child_pid(w->child), status, sig);
	executor_finish(d, w->id, w->device, st, code, msg);
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
	executor_start_more(d);
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
	worker_owner_args(d, w->owner, spool_read_umask(jd), (int) getpid(),
	                  wo);
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

static int
worker_start(struct daemon *d, const struct executor_job *j, char *msg,
             size_t msglen)
{
	struct worker *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL) {
		snprintf(msg, msglen, "out of memory");
		return NQ_ENOMEM;
	}
	w->d = d;
	w->id = j->id;
	w->grant = j->grant;
	snprintf(w->device, sizeof(w->device), "%s", j->device);
	snprintf(w->type, sizeof(w->type), "%s", j->type);
	w->owner = j->owner;
	w->flops = j->flops;
	w->attempt = j->attempt;
	rc = worker_spawn(d, w, msg, msglen);
	if (rc != 0) {
		free(w);
		return rc;
	}
	uv_update_time(d->loop);
	w->started_ms = w->beat_ms = w->check_ms = uv_now(d->loop);
	uv_timer_init(d->loop, &w->timer);
	w->timer.data = w;
	w->timer_init = 1;
	uv_timer_start(&w->timer, worker_liveness_cb, WORKER_LIVENESS_MS,
	               WORKER_LIVENESS_MS);
	w->next = d->workers;
	d->workers = w;
	log_info("job started id=%" PRId64 " type=%s device=%s "
	         "grant=%" PRIu64 " attempt=%d pid=%d limit_s=%" PRId64,
	         w->id, w->type, w->device, w->grant, w->attempt,
	         child_pid(w->child), w->limit_s);
	events_publish_id(d, w->id);
	return 0;
}

static int64_t
worker_time_limit_s(const struct daemon *d, int64_t id)
{
	for (const struct worker *w = d->workers; w != NULL; w = w->next) {
		if (w->id == id)
			return w->limit_s;
	}
	return 0;
}

static int
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

static void
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

const struct executor_ops executor_local_ops = {
        .name = "local",
        .start = worker_start,
        .cancel = worker_cancel,
        .drain = worker_drain,
        .count = worker_count,
        .running_on = worker_running_on,
        .time_limit_s = worker_time_limit_s,
};
