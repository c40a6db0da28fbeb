/* ops_submit.c — submit (ops.h): check (threadpool) → fits? (loop) →
 * stage the files (threadpool) → the job type's check() as the owner
 * (`neuroq-worker check`, a child on the loop) → row, queue, reply (loop). */
#include "ops.h"

#include "child.h"
#include "config.h"
#include "daemon.h"
#include "devname.h"
#include "diskspace.h"
#include "events.h"
#include "executor.h"
#include "job_type.h"
#include "liveness.h"
#include "log.h"
#include "net.h"
#include "nq_error.h"
#include "quota.h"
#include "request.h"
#include "runas.h"
#include "scheduler.h"
#include "spool.h"
#include "store.h"
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* `neuroq-worker check` may take this long (it opens the owner's files,
 * which may sit on a slow network filesystem), then SIGTERM, SIGKILL; less
 * than the clients' default reply timeout (30 s), so they hear why */
#define SUBMIT_CHECK_MS       20000
#define SUBMIT_CHECK_GRACE_MS 2000

static void
fmt_bytes(char *buf, size_t n, uint64_t b)
{
	if (b >= (1ull << 30))
		snprintf(buf, n, "%.2f GiB", (double) b / (1ull << 30));
	else
		snprintf(buf, n, "%.1f MiB", (double) b / (1ull << 20));
}

static int
too_large(struct req *r, const struct sched_job *sj)
{
	uint64_t cpu = 0, gpu = 0;
	/* what the scheduler admits on the cpu: host + device bytes */
	uint64_t on_cpu = sched_job_bytes(sj, SCHED_CPU);
	char a[32], b[32], c[32], e[32], h[32];

	for (size_t i = 0; i < sched_device_count(r->d->sched); i++) {
		const struct sched_device *dv = sched_device_at(r->d->sched, i);
		uint64_t *m = dv->kind == SCHED_CPU ? &cpu : &gpu;
		if (dv->capacity > *m)
			*m = dv->capacity;
	}
	fmt_bytes(a, sizeof(a), on_cpu);
	fmt_bytes(b, sizeof(b), sj->device_bytes);
	fmt_bytes(c, sizeof(c), cpu);
	fmt_bytes(e, sizeof(e), gpu);
	fmt_bytes(h, sizeof(h), r->d->cfg->headroom_bytes);
	return req_fail(r, NQ_ETOOLARGE,
	                "job does not fit on any device (device %s): estimated "
	                "%" PRIu64 " bytes (%s) on cpu, %" PRIu64
	                " bytes (%s) on a GPU; largest device: cpu %s, "
	                "cuda %s (each less %s headroom)",
	                sj->device_req, on_cpu, a, sj->device_bytes, b, c,
	                gpu ? e : "none", h);
}

/* Threadpool: the request's fields, then the job type's validate() and
 * estimate(), which read every input value (and spikesort's open files):
 * pure functions of the request (job_type.h), no daemon state. */
static int
submit_check_work(struct req *r)
{
	const struct job_type *jt;
	const char *type = NULL, *device = "auto", *idem = "";
	const struct nq_map *params = NULL, *inputs = NULL;
	struct job_estimate est;
	struct sched_job *sj = &r->sj;
	struct devname dn;
	int64_t prio = 0, um, tl = 0;
	int rc;

	if (!nq_has(r->m, "type"))
		return req_fail(r, NQ_EBADPARAM, "type: missing (a job type)");
	rc = nq_get_str(r->m, "type", &type, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	jt = job_type_find(type);
	if (jt == NULL)
		return req_fail(r, NQ_EBADTYPE,
		                "unknown job type '%.64s' (send hello for the "
		                "list)",
		                type);
	rc = nq_get_map(r->m, "params", &params, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	rc = nq_get_map(r->m, "inputs", &inputs, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	rc = nq_get_str(r->m, "device", &device, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	if (devname_parse(device, &dn) != NQ_OK)
		return req_fail(
		        r, NQ_EBADDEVICE,
		        "device: '%.32s' is not auto, cpu, cuda or cuda:N",
		        device);
	rc = nq_get_int(r->m, "priority", &prio, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	if (prio < -100 || prio > 100)
		return req_fail(r, NQ_EBADPARAM,
		                "priority: %" PRId64 " is outside -100..100",
		                prio);
	rc = nq_get_int(r->m, "time_limit_s", &tl, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	if (nq_has(r->m, "time_limit_s") && (tl < 1 || tl > LIVENESS_LIMIT_MAX))
		return req_fail(r, NQ_EBADPARAM,
		                "time_limit_s: %" PRId64
		                " is outside 1..2147483647 seconds",
		                tl);
	rc = nq_get_str(r->m, "idem", &idem, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	um = SPOOL_UMASK_DEFAULT;
	rc = nq_get_int(r->m, "umask", &um, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	if (um < 0 || um > 0777)
		return req_fail(r, NQ_EBADPARAM,
		                "umask: %" PRId64 " is outside 0..0777", um);
	if (!worker_can_run_as(r->uid))
		return req_fail(r, NQ_EPERM,
		                "this daemon runs as uid %u without "
		                "CAP_SETUID/CAP_SETGID: it cannot run a job as "
		                "uid %" PRIu32
		                " (run your own neuroqd, or ask the "
		                "administrator to start it as "
		                "systemd/neuroqd.service does)",
		                (unsigned) geteuid(), r->uid);
	if (r->uid != (uint32_t) geteuid() && !runas_user_known(r->uid))
		return req_fail(r, NQ_EPERM,
		                "uid %" PRIu32 " has no passwd entry on this "
		                "server: a job runs as its owner",
		                r->uid);
	if (strlen(idem) > 127)
		return req_fail(r, NQ_EBADPARAM, "idem: %zu bytes; at most 127",
		                strlen(idem));
	/* r frees these (req_free) */
	if (params == NULL) {
		params = r->empty = nq_map_new();
		if (r->empty == NULL)
			return NQ_ENOMEM;
	}
	if (inputs == NULL) {
		inputs = r->empty_in = nq_map_new();
		if (r->empty_in == NULL)
			return NQ_ENOMEM;
	}
	for (size_t i = 0; i < inputs->n; i++) {
		if (inputs->vals[i].kind != NQ_ARRAY)
			return req_fail(
			        r, NQ_EBADARRAY,
			        "inputs.%.64s: expected an array {dtype, "
			        "shape, data}",
			        inputs->keys[i]);
		if (!spool_name_ok(inputs->keys[i]))
			return req_fail(
			        r, NQ_EBADPARAM,
			        "inputs: name '%.64s' is not allowed (1..64 "
			        "of A-Z a-z 0-9 _ - ., not starting with .)",
			        inputs->keys[i]);
	}
	rc = jt->validate(params, inputs, r->msg, r->msglen);
	if (rc != 0) {
		if (r->msg[0] == '\0')
			snprintf(r->msg, r->msglen, "%s", nq_strerror(rc));
		return rc;
	}
	memset(&est, 0, sizeof(est));
	rc = jt->estimate(params, inputs, &est);
	if (rc != 0)
		return req_fail(r, rc, "cannot estimate the job's memory: %s",
		                nq_strerror(rc));
	memset(sj, 0, sizeof(*sj));
	sj->owner = r->uid;
	sj->priority = (int) prio;
	sj->host_bytes = est.host_bytes;
	sj->device_bytes = est.device_bytes;
	sj->flops = est.flops;
	snprintf(sj->device_req, sizeof(sj->device_req), "%s", device);
	r->jt = jt;
	r->est = est;
	snprintf(r->idem, sizeof(r->idem), "%s", idem);
	r->umask = (unsigned) um;
	/* above the administrator's max_job_seconds: lowered to it */
	r->time_limit_s =
	        liveness_limit_s(tl, est.flops, r->d->cfg->max_job_seconds);
	r->params = params;
	r->inputs = inputs;
	return 0;
}

/* Threadpool: a file of the staging dir could not be written (errno):
 * ENOSPACE naming the filesystem for a full disk, else EIO; the staging dir
 * goes. */
static int
submit_stage_fail(struct req *r, const char *name)
{
	char path[4200];
	int e = errno, rc;

	snprintf(path, sizeof(path), "%s/%s", r->tmp, name);
	rc = diskspace_msg(r->msg, r->msglen, "cannot write", path, e);
	spool_rm_rf(r->tmp);
	return rc;
}

/* Threadpool: params.mp and in/ into a fresh staging dir (fsynced). */
static int
submit_stage_work(struct req *r)
{
	int rc = spool_stage(r->path, r->params, r->inputs, r->tmp,
	                     sizeof(r->tmp), r->msg, r->msglen);

	if (rc == 0 && spool_write_umask(r->tmp, r->umask) != 0)
		rc = submit_stage_fail(r, "umask");
	if (rc == 0 && liveness_write(r->tmp, r->time_limit_s) != 0)
		rc = submit_stage_fail(r, "time_limit");
	if (rc == 0) {
		struct spool_meta m = {.owner = r->uid,
		                       .priority = r->sj.priority,
		                       .host_bytes = r->est.host_bytes,
		                       .device_bytes = r->est.device_bytes,
		                       .flops = r->est.flops};
		snprintf(m.type, sizeof(m.type), "%s", r->jt->name);
		snprintf(m.device_req, sizeof(m.device_req), "%s",
		         r->sj.device_req);
		snprintf(m.idem, sizeof(m.idem), "%s", r->idem);
		if (spool_write_meta(r->tmp, &m) != 0)
			rc = submit_stage_fail(r, "job");
	}
	if (rc == 0)
		spool_fsync_dir(r->tmp); /* umask and job too */

	/* test only: a slow disk, the request still held */
	if (rc == 0 && r->delay_ms > 0) {
		struct timespec ts = {.tv_sec = r->delay_ms / 1000,
		                      .tv_nsec = (long) (r->delay_ms % 1000) *
		                                 1000000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	/* the request (its inputs) is on disk now: free it here, not on the
	 * loop thread, and before a worker is forked from the daemon */
	r->params = r->inputs = NULL;
	r->op = "submit";
	req_release_body(r); /* the decoded request and its message */
	return rc;
}

/* Threadpool: the staged copy of a submit that already had a job. */
static int
submit_discard_work(struct req *r)
{
	spool_rm_rf(r->tmp);
	return 0;
}

static int
submit_discarded(struct req *r, int rc)
{
	if ((rc = nq_map_set_int(r->out, "id", r->id)) != 0)
		return rc;
	return nq_map_set_bool(r->out, "existing", 1);
}

/* Loop thread, once the files are on disk and checked: the row, the
 * queue. */
static int
submit_commit(struct req *r)
{
	struct daemon *d = r->d;
	struct job_row row;
	int existing = 0;
	int rc;
	/* a SIGTERM since the checks: the job still goes in (QUEUED, it runs
	 * after the restart) since its files are complete */
	memset(&row, 0, sizeof(row));
	snprintf(row.type, sizeof(row.type), "%s", r->jt->name);
	row.state = JOB_QUEUED;
	row.owner = r->uid;
	row.priority = r->sj.priority;
	snprintf(row.device_req, sizeof(row.device_req), "%s",
	         r->sj.device_req);
	row.est_host_bytes = r->est.host_bytes;
	row.est_device_bytes = r->est.device_bytes;
	row.est_flops = r->est.flops;
	snprintf(row.idem, sizeof(row.idem), "%s", r->idem);
	row.spool_bytes = r->len; /* quota.h: until the job ends */
	rc = store_put_job(d->store, &row, &existing);
	if (rc != 0) {
		req_fail(r, rc, "store: %s", store_errmsg(d->store));
		spool_rm_rf(r->tmp);
		return rc;
	}
	if (existing) {
		/* a resent submit: its copy of the inputs goes, off the loop
		 * too (unlinking 1 GiB takes a while) */
		r->id = row.id;
		return req_defer(r, submit_discard_work, submit_discarded);
	}
	rc = spool_commit(r->tmp, config_spool_root(d->cfg), row.id, r->msg,
	                  r->msglen);
	if (rc != 0) {
		spool_rm_rf(r->tmp);
		store_mark_final(d->store, row.id, JOB_FAILED, rc, r->msg);
		return rc;
	}
	r->sj.id = row.id;
	r->sj.seq = (uint64_t) row.id;
	rc = sched_enqueue(d->sched, &r->sj);
	if (rc != 0) {
		store_mark_final(d->store, row.id, JOB_FAILED, rc,
		                 "cannot queue: out of memory");
		return req_fail(r, rc, "cannot queue the job: out of memory");
	}
	log_info("job submitted id=%" PRId64 " type=%s owner=%" PRIu32
	         " device=%s priority=%d host_bytes=%" PRIu64
	         " device_bytes=%" PRIu64,
	         row.id, row.type, row.owner, row.device_req, row.priority,
	         row.est_host_bytes, row.est_device_bytes);
	events_publish(d, &row);
	executor_start_more(d);
	if ((rc = nq_map_set_int(r->out, "id", row.id)) != 0 ||
	    (rc = nq_map_set_int(r->out, "time_limit_s", r->time_limit_s)) != 0)
		return rc;
	return nq_map_set_bool(r->out, "existing", 0);
}

/* The submit-time check as the owner: `neuroq-worker check` on the staged
 * dir, a child of the loop (counted in d->inflight, so a graceful stop
 * waits for it: at most SUBMIT_CHECK_MS). */
struct submit_check {
	struct req *r;
	struct child *c;
	char line[1024];
	int got, cut, timed_out;
};

static void
submit_check_line(void *arg, const char *line, size_t len, int cut)
{
	struct submit_check *sc = arg;

	(void) len;
	if (sc->got)
		return;
	snprintf(sc->line, sizeof(sc->line), "%s", line);
	sc->got = 1;
	sc->cut = cut;
}

static void
submit_check_kill(void *arg, int sig, enum child_why why)
{
	struct submit_check *sc = arg;

	(void) why;
	sc->timed_out = 1;
	log_warn("submit check timed out uid=%" PRIu32 " signal=%d", sc->r->uid,
	         sig);
}

/* Threadpool: a staged copy that failed its check goes. */
static int
submit_unstage_work(struct req *r)
{
	spool_rm_rf(r->tmp);
	return 0;
}

static int
submit_unstaged(struct req *r, int rc)
{
	(void) rc;
	return r->check_rc;
}

/* Loop: fail the submit with rc (r->msg set) once its staging is gone. */
static int
submit_check_fail(struct req *r, int rc)
{
	r->check_rc = rc;
	log_info("submit refused by its check uid=%" PRIu32
	         " error=%s message=\"%s\"",
	         r->uid, nq_errname(rc), r->msg);
	return req_defer(r, submit_unstage_work, submit_unstaged);
}

/* "ok H D F" or "error CODE msg" into the request: 0 (r->est, r->sj from
 * the check's figures) or the code with r->msg. */
static int
submit_check_parse(struct req *r, const struct submit_check *sc, int64_t status,
                   int sig)
{
	uint64_t h, dv;
	double fl;
	char name[32];
	int n = 0, code;

	if (sc->timed_out)
		return req_fail(r, NQ_ETIMEDOUT,
		                "the submit-time check of the job's files as "
		                "uid %" PRIu32
		                " took longer than %d s (a slow or hung "
		                "filesystem?)",
		                r->uid, SUBMIT_CHECK_MS / 1000);
	if (sig != 0 || !sc->got)
		return req_fail(r, NQ_EINTERNAL,
		                "the submit-time check of the job's files as "
		                "uid %" PRIu32 " gave no answer (exit %" PRId64
		                ", signal %d)",
		                r->uid, status, sig);
	int nf = -1;
	if (status == 0 && !sc->cut) {
		/* our own worker's line; its whole format is checked below (3
		 * fields, then the end of the line) */
		// NOLINTNEXTLINE(cert-err34-c)
		nf = sscanf(sc->line, "ok %" SCNu64 " %" SCNu64 " %lf%n", &h,
		            &dv, &fl, &n);
	}
	if (nf == 3 && sc->line[n] == '\0') {
		r->est.host_bytes = r->sj.host_bytes = h;
		r->est.device_bytes = r->sj.device_bytes = dv;
		r->est.flops = r->sj.flops = fl;
		return 0;
	}
	if (sscanf(sc->line, "error %31s %n", name, &n) >= 1 && n > 0 &&
	    (code = nq_errcode(name)) > 0)
		return req_fail(r, code, "%s", sc->line + n);
	return req_fail(r, NQ_EINTERNAL,
	                "the submit-time check gave a bad answer (exit %" PRId64
	                ")",
	                status);
}

static void
submit_check_exit(void *arg, int64_t status, int sig)
{
	struct submit_check *sc = arg;
	struct req *r = sc->r;
	struct daemon *d = r->d;
	int rc = submit_check_parse(r, sc, status, sig);

	free(sc);
	if (rc == 0) {
		/* the owner's figures may not fit where the floor did */
		rc = sched_fits_ever(d->sched, &r->sj);
		if (rc == NQ_ETOOLARGE)
			rc = too_large(r, &r->sj);
		else if (rc != 0)
			rc = req_fail(r, rc, "device: no device '%s'",
			              r->sj.device_req);
	}
	rc = rc == 0 ? submit_commit(r) : submit_check_fail(r, rc);
	d->inflight--;
	if (rc != REQ_DEFERRED)
		req_finish(r, rc);
	req_check_quiet(d);
}

static int
submit_check_start(struct req *r)
{
	struct daemon *d = r->d;
	struct submit_check *sc = calloc(1, sizeof(*sc));
	struct worker_owner *wo = calloc(1, sizeof(*wo));
	char *args[8 + WORKER_OWNER_ARGC], err[256];
	struct child_opts o;
	int a = 0, rc = NQ_ENOMEM;

	if (sc == NULL || wo == NULL) {
		req_fail(r, rc, "out of memory");
		goto fail;
	}
	sc->r = r;
	args[a++] = (char *) d->cfg->worker_path;
	args[a++] = "check";
	args[a++] = "--type";
	args[a++] = (char *) r->jt->name;
	args[a++] = "--dir";
	args[a++] = r->tmp;
	worker_owner_args(d, r->uid, r->umask, (int) getpid(), wo);
	for (int i = 0; i < wo->argc; i++)
		args[a++] = wo->argv[i];
	args[a] = NULL;
	memset(&o, 0, sizeof(o));
	o.argv = args;
	o.new_session = 1; /* a Ctrl-C to a foreground neuroqd is not its */
	o.timeout_ms = SUBMIT_CHECK_MS;
	o.timeout_grace_ms = SUBMIT_CHECK_GRACE_MS;
	o.on_line = submit_check_line;
	o.on_kill = submit_check_kill;
	o.on_exit = submit_check_exit;
	o.arg = sc;
	rc = child_spawn(d->loop, &o, &sc->c, err, sizeof(err));
	free(wo);
	wo = NULL;
	if (rc != 0) {
		req_fail(r, rc, "cannot start %.300s: %.150s",
		         d->cfg->worker_path, err);
		goto fail;
	}
	d->inflight++;
	return REQ_DEFERRED;
fail:
	free(sc);
	free(wo);
	return submit_check_fail(r, rc);
}

/* Loop thread, once the files are on disk: the job type's check as the
 * owner, when it has one; then the row. */
static int
submit_done(struct req *r, int rc)
{
	if (rc != 0)
		return rc; /* spool_stage removed what it wrote */
	if (r->jt->check != NULL)
		return submit_check_start(r);
	return submit_commit(r);
}

/* Loop thread: does it fit a device of this server? Then the files. */
static int
submit_checked(struct req *r, int rc)
{
	struct daemon *d = r->d;

	if (rc != 0)
		return rc;
	rc = sched_fits_ever(d->sched, &r->sj);
	if (rc == NQ_ETOOLARGE)
		return too_large(r, &r->sj);
	if (rc != 0)
		return req_fail(r, rc,
		                "device: no device '%s' on this server "
		                "(send devices for the list)",
		                r->sj.device_req);
	/* files first: a row never points at inputs that are not on disk.
	 * Writing them is the slow part: off the loop thread, with copies of
	 * what it needs; from here on only submit_stage_work reads (and
	 * frees) the request, submit_done uses the copies in r */
	r->delay_ms = d->test_spool_delay_ms;
	if ((size_t) snprintf(r->path, sizeof(r->path), "%s",
	                      config_spool_root(d->cfg)) >= sizeof(r->path))
		return req_fail(r, NQ_EIO, "state dir path too long");
	return req_defer(r, submit_stage_work, submit_done);
}

/* The caller's quotas (quota.h), administrators' too: QUEUED jobs, and
 * spool bytes with this submit's message as what it adds. A resend of a
 * submit that made its job (same idem) is never refused. Submits in
 * flight are not counted: at most `contexts` more get through. */
static int
submit_quota(struct req *r)
{
	const struct config *c = r->d->cfg;
	struct quota_limits l = {.max_queued = c->max_queued_jobs_per_user,
	                         .max_bytes = c->max_spool_bytes_per_user};
	struct store_usage u;
	struct quota_use use;
	const char *idem = NULL;
	int64_t id;
	int rc;

	if (l.max_queued == 0 && l.max_bytes == 0)
		return 0;
	if (nq_get_str(r->m, "idem", &idem, r->msg, r->msglen) == 0 &&
	    store_find_idem(r->d->store, r->uid, idem, &id) == 0)
		return 0;
	if ((rc = store_owner_usage(r->d->store, r->uid, &u)) != 0)
		return req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	use.queued = u.queued;
	use.bytes = u.spool_bytes;
	return quota_check(&l, &use, r->len, r->msg, r->msglen);
}

/* The state filesystem's watermark (min_free_bytes), before anything is
 * staged: the message's size stands for what the submit writes. A resend
 * of a submit that made its job is never refused (it writes nothing). */
static int
submit_space(struct req *r)
{
	struct diskspace ds;
	const char *idem = NULL;
	int64_t id;
	int rc;

	if (nq_get_str(r->m, "idem", &idem, r->msg, r->msglen) == 0 &&
	    store_find_idem(r->d->store, r->uid, idem, &id) == 0)
		return 0;
	if (diskspace_stat(r->d->cfg->state_dir, &ds) != 0)
		return 0; /* unknown: staging says what goes wrong */
	rc = diskspace_admit(&ds, r->len, r->d->cfg->min_free_bytes, r->msg,
	                     r->msglen);
	if (rc != 0)
		log_warn("submit refused: not enough free space uid=%" PRIu32
		         " filesystem=%s free_bytes=%" PRIu64
		         " min_free_bytes=%" PRIu64 " need=%zu",
		         r->uid, ds.mount, ds.free_bytes,
		         r->d->cfg->min_free_bytes, (size_t) r->len);
	return rc;
}

/* submit: quotas → check (threadpool) → fits? (loop) → stage the files
 * (threadpool) → row, queue, reply (loop). */
int
ops_submit(struct req *r)
{
	int rc;

	if (r->d->draining)
		return req_fail(r, NQ_ESHUTDOWN,
		                "the daemon is shutting down; submit again "
		                "after it restarts");
	if ((rc = submit_quota(r)) != 0)
		return rc;
	if ((rc = submit_space(r)) != 0)
		return rc;
	r->msg[0] = '\0';
	return req_defer(r, submit_check_work, submit_checked);
}

/* reserve: room in max_upload_bytes for the request of `bytes` this
 * connection sends next (net_reserve), so that a client that asks first
 * never uploads what would be refused; EBUSY when there is none. */
int
ops_reserve(struct req *r)
{
	const struct config *c = r->d->cfg;
	int64_t bytes = -1;
	size_t held;
	int rc;

	if (!nq_has(r->m, "bytes"))
		return req_fail(r, NQ_EBADPARAM,
		                "bytes: missing (the size of the request to "
		                "come)");
	if ((rc = nq_get_int(r->m, "bytes", &bytes, r->msg, r->msglen)) != 0)
		return rc;
	if (bytes < 0 || (uint64_t) bytes > c->max_message_bytes)
		return req_fail(r, bytes < 0 ? NQ_EBADPARAM : NQ_ETOOBIG,
		                "bytes: %" PRId64
		                " is not a request size 0..max_message_bytes "
		                "(%" PRIu64 ")",
		                bytes, c->max_message_bytes);
	if (net_reserve(r->nr, (size_t) bytes, &held) != 0) {
		log_info("request refused reason=busy op=reserve uid=%" PRIu32
		         " bytes=%" PRId64
		         " held=%zu max_upload_bytes=%" PRIu64,
		         r->uid, bytes, held, c->max_upload_bytes);
		return req_fail(
		        r, NQ_EBUSY,
		        "the daemon is busy: uploads in progress hold "
		        "%.1f MiB and a request of %.1f MiB would pass "
		        "max_upload_bytes (%.1f MiB); ask again in a "
		        "moment (the neuroq clients do so by themselves)",
		        (double) held / (1 << 20), (double) bytes / (1 << 20),
		        (double) c->max_upload_bytes / (1 << 20));
	}
	return 0;
}
