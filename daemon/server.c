/* server.c — see server.h. Every handler runs on the loop thread; the
 * *_work functions run in the threadpool and touch only their request. */
#include "server.h"

#include "job_type.h"
#include "log.h"
#include "nq_error.h"
#include "probe.h"
#include "spool.h"
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERVER_LOG_MAX      (1u << 20) /* logs reply: the last MiB */
#define SERVER_LIST_DEFAULT 100
/* an op's return value: a work item answers the request later */
#define SERVER_DEFERRED (-1)

/* One request, from receipt to its reply. The loop thread owns it, except
 * while its work item runs in the threadpool (then only that thread). */
struct req {
	struct daemon *d;
	struct net_req *nr;
	uint32_t uid;
	const void *body; /* valid until net_req_release_body / the reply */
	size_t len;
	struct nq_value val;     /* the decoded request */
	const struct nq_map *m;  /* its map */
	const char *op;          /* in val */
	struct nq_map *out;      /* reply fields */
	struct net_msg *encoded; /* a reply a work item encoded */
	char *msg;               /* error message */
	size_t msglen;
	char msgbuf[1024];
	/* the work item */
	uv_work_t work;
	int (*work_fn)(struct req *r);          /* threadpool */
	int (*after_fn)(struct req *r, int rc); /* loop thread */
	int work_rc;
	char path[4096]; /* submit: state dir; result: job dir */
	/* submit, between its checks and its staging's end */
	const struct nq_map *params, *inputs;
	struct nq_map *empty, *empty_in;
	const struct job_type *jt;
	struct job_estimate est;
	struct sched_job sj;
	char idem[128];
	char tmp[4096];
	unsigned delay_ms;
	/* result */
	int64_t id;
	const struct nq_value *names;
};

static int req_fail(struct req *r, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
req_fail(struct req *r, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->msg, r->msglen, fmt, ap);
	va_end(ap);
	return code;
}

static double
us_to_s(int64_t us)
{
	return (double) us / 1e6;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds to finish by linear extrapolation of progress since the start;
 * -1 when unknown (queued, or under 1 % done), 0 once final. */
static double
job_eta_s(const struct job_row *j)
{
	if (job_state_final(j->state))
		return 0;
	if (j->state == JOB_RUNNING && j->progress >= 0.01 &&
	    j->started_us > 0) {
		double el = now_s() - us_to_s(j->started_us);
		if (el > 0)
			return el * (1 - j->progress) / j->progress;
	}
	return -1;
}

static struct nq_map *
job_map(const struct job_row *j)
{
	struct nq_map *m = nq_map_new();
	int rc = 0;

	if (m == NULL)
		return NULL;
	rc |= nq_map_set_int(m, "id", j->id);
	rc |= nq_map_set_str(m, "type", j->type);
	rc |= nq_map_set_str(m, "state", job_state_name(j->state));
	rc |= nq_map_set_int(m, "owner", j->owner);
	rc |= nq_map_set_int(m, "priority", j->priority);
	rc |= nq_map_set_str(m, "device_req", j->device_req);
	rc |= nq_map_set_str(m, "device", j->device);
	rc |= nq_map_set_int(m, "attempts", j->attempts);
	rc |= nq_map_set_float(m, "progress", j->progress);
	rc |= nq_map_set_str(m, "stage", j->stage);
	rc |= nq_map_set_float(m, "eta_s", job_eta_s(j));
	rc |= nq_map_set_float(m, "submitted", us_to_s(j->submitted_us));
	rc |= nq_map_set_float(m, "started", us_to_s(j->started_us));
	rc |= nq_map_set_float(m, "finished", us_to_s(j->finished_us));
	rc |= nq_map_set_int(m, "est_host_bytes", (int64_t) j->est_host_bytes);
	rc |= nq_map_set_int(m, "est_device_bytes",
	                     (int64_t) j->est_device_bytes);
	rc |= nq_map_set_int(m, "error_code", j->error_code);
	rc |= nq_map_set_str(m, "error", j->error);
	rc |= nq_map_set_bool(m, "cancel_requested", j->cancel_requested);
	rc |= nq_map_set_bool(m, "purged", j->purged_us != 0);
	if (rc != 0) {
		nq_map_free(m);
		return NULL;
	}
	return m;
}

static int
set_map(struct nq_map *dst, const char *key, struct nq_map *m)
{
	struct nq_value v;

	if (m == NULL)
		return NQ_ENOMEM;
	v = nq_val_map(m);
	return nq_map_set(dst, key, &v);
}

void
server_publish(struct daemon *d, const struct job_row *j)
{
	struct nq_map *m = nq_map_new();
	struct nq_value v;
	void *buf = NULL;
	size_t len;
	double eta = job_eta_s(j);

	if (m == NULL)
		return;
	if (nq_map_set_int(m, "id", j->id) ||
	    nq_map_set_str(m, "state", job_state_name(j->state)) ||
	    nq_map_set_float(m, "progress", j->progress) ||
	    nq_map_set_str(m, "stage", j->stage) ||
	    nq_map_set_float(m, "eta_s", eta)) {
		nq_map_free(m);
		return;
	}
	v = nq_val_map(m);
	if (nq_encode(&v, &buf, &len) == 0)
		net_publish(d->net, j->id, buf, len);
	free(buf);
	nq_value_free(&v);
}

void
server_publish_id(struct daemon *d, int64_t id)
{
	struct job_row row;

	if (store_get_job(d->store, id, &row) == 0)
		server_publish(d, &row);
}

/* ---- field helpers: absent → default, wrong type → EBADPARAM */

static int
need_id(struct req *r, int64_t *id)
{
	int rc = nq_get_int(r->m, "id", id, r->msg, r->msglen);

	if (rc == 1)
		return req_fail(r, NQ_EBADPARAM, "id: missing (a job id)");
	if (rc != 0)
		return rc;
	if (*id <= 0)
		return req_fail(r, NQ_EBADPARAM,
		                "id: %" PRId64 " is not a job id (ids are > 0)",
		                *id);
	return 0;
}

/* Loads the job; with own=1 only its owner or root may go on. */
static int
load_job(struct req *r, int64_t id, int own, struct job_row *row)
{
	int rc = store_get_job(r->d->store, id, row);

	if (rc == NQ_ENOJOB)
		return req_fail(r, rc, "no job %" PRId64, id);
	if (rc != 0)
		return req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	if (own && r->uid != 0 && row->owner != r->uid)
		return req_fail(r, NQ_EPERM,
		                "job %" PRId64 " belongs to uid %" PRIu32
		                "; only its owner or root may do this",
		                id, row->owner);
	return 0;
}

/* ---- answering, now or after a work item */

static int
encode_reply(struct nq_map *m, void **reply, size_t *len)
{
	struct nq_value v = nq_val_map(m);
	int rc = nq_encode(&v, reply, len);

	nq_value_free(&v);
	return rc;
}

static void
reply_error(int code, const char *message, void **reply, size_t *len)
{
	struct nq_map *m = nq_map_new();

	*reply = NULL;
	if (m == NULL)
		return;
	if (message == NULL || message[0] == '\0')
		message = nq_strerror(code);
	if (nq_map_set_int(m, "v", NQ_PROTOCOL_VERSION) ||
	    nq_map_set_bool(m, "ok", 0) || nq_map_set_int(m, "code", code) ||
	    nq_map_set_str(m, "error", nq_errname(code)) ||
	    nq_map_set_str(m, "message", message)) {
		nq_map_free(m);
		return;
	}
	if (encode_reply(m, reply, len) != 0)
		*reply = NULL;
}

static void
req_free(struct req *r)
{
	nq_map_free(r->out);
	nq_map_free(r->empty);
	nq_map_free(r->empty_in);
	net_msg_free(r->encoded);
	nq_value_free(&r->val);
	free(r);
}

/* Answer r (with r->out, r->encoded, or the error rc and r->msg) and free
 * it. */
static void
req_finish(struct req *r, int rc)
{
	const char *op = r->op ? r->op : "?";
	void *reply = NULL;
	size_t len = 0;

	if (rc == 0 && r->encoded == NULL) {
		if (nq_map_set_int(r->out, "v", NQ_PROTOCOL_VERSION) ||
		    nq_map_set_bool(r->out, "ok", 1)) {
			rc = NQ_ENOMEM;
		} else {
			rc = encode_reply(r->out, &reply, &len);
			r->out = NULL; /* encode_reply freed it */
			if (rc != 0) {
				rc = NQ_ENOMEM;
				reply = NULL;
				snprintf(r->msg, r->msglen,
				         "cannot encode the reply");
			}
		}
	}
	if (rc == 0) {
		log_debug("request op=%s uid=%" PRIu32 " ok=1", op, r->uid);
		if (r->encoded != NULL) {
			net_reply_msg(r->nr, r->encoded);
			r->encoded = NULL;
		} else {
			net_reply(r->nr, reply, len);
		}
	} else {
		log_debug("request op=%s uid=%" PRIu32
		          " error=%s message=\"%s\"",
		          op, r->uid, nq_errname(rc), r->msg);
		reply_error(rc, r->msg, &reply, &len);
		net_reply(r->nr, reply, len);
	}
	req_free(r);
}

static void
server_check_quiet(struct daemon *d)
{
	if (d->stopping && d->inflight == 0 && d->quiet != NULL) {
		void (*cb)(struct daemon *) = d->quiet;
		d->quiet = NULL;
		cb(d);
	}
}

static void
req_work_cb(uv_work_t *w)
{
	struct req *r = w->data;

	r->work_rc = r->work_fn(r);
}

static void
req_after_cb(uv_work_t *w, int status)
{
	struct req *r = w->data;
	struct daemon *d = r->d;
	int rc = r->work_rc;

	if (status != 0) /* UV_ECANCELED: never cancelled, but be safe */
		rc = req_fail(r, NQ_ESHUTDOWN, "the daemon is shutting down");
	/* after_fn may queue the next work item of the same request (decode,
	 * then submit's staging): count it before this one goes */
	rc = r->after_fn(r, rc);
	d->inflight--;
	if (rc != SERVER_DEFERRED)
		req_finish(r, rc);
	server_check_quiet(d);
}

/* Run work(r) in the threadpool, then after(r, its rc) on the loop thread;
 * SERVER_DEFERRED (after's result answers r). While stopping, or if the
 * pool refuses, both run here and now. */
static int
defer(struct req *r, int (*work)(struct req *r),
      int (*after)(struct req *r, int rc))
{
	struct daemon *d = r->d;

	r->work_fn = work;
	r->after_fn = after;
	r->work.data = r;
	if (!d->stopping &&
	    uv_queue_work(d->loop, &r->work, req_work_cb, req_after_cb) == 0) {
		d->inflight++;
		return SERVER_DEFERRED;
	}
	return after(r, work(r));
}

/* ---- ops */

static int
op_hello(struct req *r)
{
	const struct job_type *const *all = job_type_all();
	struct nq_value list = {.kind = NQ_LIST};
	size_t n = 0;
	int rc;

	while (all != NULL && all[n] != NULL)
		n++;
	list.u.list.items = calloc(n + 1, sizeof(struct nq_value));
	if (list.u.list.items == NULL)
		return NQ_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct nq_value *it = &list.u.list.items[i];
		it->kind = NQ_STR;
		it->u.str.s = strdup(all[i]->name);
		it->u.str.len = strlen(all[i]->name);
		list.u.list.n = i + 1;
		if (it->u.str.s == NULL) {
			nq_value_free(&list);
			return NQ_ENOMEM;
		}
	}
	rc = nq_map_set_int(r->out, "version", NQ_PROTOCOL_VERSION);
	rc |= nq_map_set_str(r->out, "daemon", NEUROQ_VERSION);
	rc |= nq_map_set_int(r->out, "uid", r->uid);
	rc |= nq_map_set_str(r->out, "events", r->d->cfg->events);
	rc |= nq_map_set_int(r->out, "max_message_bytes",
	                     (int64_t) r->d->cfg->max_message_bytes);
	rc |= nq_map_set(r->out, "job_types", &list);
	nq_value_free(&list);
	return rc ? NQ_ENOMEM : 0;
}

static int
device_req_ok(const char *s)
{
	if (strcmp(s, "auto") == 0 || strcmp(s, "cpu") == 0 ||
	    strcmp(s, "cuda") == 0)
		return 1;
	if (strncmp(s, "cuda:", 5) != 0 || s[5] == '\0' || strlen(s) > 9)
		return 0;
	for (const char *p = s + 5; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
	}
	return 1;
}

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
	int64_t prio = 0;
	int rc;

	rc = nq_get_str(r->m, "type", &type, r->msg, r->msglen);
	if (rc == 1)
		return req_fail(r, NQ_EBADPARAM, "type: missing (a job type)");
	if (rc != 0)
		return rc;
	jt = job_type_find(type);
	if (jt == NULL)
		return req_fail(r, NQ_EBADTYPE,
		                "unknown job type '%.64s' (send hello for the "
		                "list)",
		                type);
	rc = nq_get_map(r->m, "params", &params, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	rc = nq_get_map(r->m, "inputs", &inputs, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	rc = nq_get_str(r->m, "device", &device, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	if (!device_req_ok(device))
		return req_fail(
		        r, NQ_EBADDEVICE,
		        "device: '%.32s' is not auto, cpu, cuda or cuda:N",
		        device);
	rc = nq_get_int(r->m, "priority", &prio, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	if (prio < -100 || prio > 100)
		return req_fail(r, NQ_EBADPARAM,
		                "priority: %" PRId64 " is outside -100..100",
		                prio);
	rc = nq_get_str(r->m, "idem", &idem, r->msg, r->msglen);
	if (rc > 1)
		return rc;
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
	r->params = params;
	r->inputs = inputs;
	return 0;
}

/* Threadpool: params.mp and in/ into a fresh staging dir (fsynced). */
static int
submit_stage_work(struct req *r)
{
	int rc = spool_stage(r->path, r->params, r->inputs, r->tmp,
	                     sizeof(r->tmp), r->msg, r->msglen);

	/* the request (its inputs) is on disk now: free it here, not on the
	 * loop thread, and before a worker is forked from the daemon */
	r->params = r->inputs = NULL;
	r->m = NULL;
	r->op = "submit";
	nq_value_free(&r->val);

	if (rc == 0 && r->delay_ms > 0) {
		struct timespec ts = {.tv_sec = r->delay_ms / 1000,
		                      .tv_nsec = (long) (r->delay_ms % 1000) *
		                                 1000000};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
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
	rc = nq_map_set_int(r->out, "id", r->id);
	rc |= nq_map_set_bool(r->out, "existing", 1);
	return rc ? NQ_ENOMEM : 0;
}

/* Loop thread, once the files are on disk: the row, the queue. */
static int
submit_done(struct req *r, int rc)
{
	struct daemon *d = r->d;
	struct job_row row;
	int existing = 0;

	if (rc != 0)
		return rc; /* spool_stage removed what it wrote */
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
		return defer(r, submit_discard_work, submit_discarded);
	}
	rc = spool_commit(r->tmp, d->cfg->state_dir, row.id, r->msg, r->msglen);
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
	server_publish(d, &row);
	worker_start_more(d);
	rc = nq_map_set_int(r->out, "id", row.id);
	rc |= nq_map_set_bool(r->out, "existing", 0);
	return rc ? NQ_ENOMEM : 0;
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
	                      d->cfg->state_dir) >= sizeof(r->path))
		return req_fail(r, NQ_EIO, "state dir path too long");
	return defer(r, submit_stage_work, submit_done);
}

/* submit: check (threadpool) → fits? (loop) → stage the files (threadpool)
 * → row, queue, reply (loop). */
static int
op_submit(struct req *r)
{
	if (r->d->draining)
		return req_fail(r, NQ_ESHUTDOWN,
		                "the daemon is shutting down; submit again "
		                "after it restarts");
	return defer(r, submit_check_work, submit_checked);
}

static int
op_status(struct req *r)
{
	struct job_row row;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	/* status is read-only and list --all-users shows every job anyway:
	 * anyone may look at any job */
	if ((rc = load_job(r, id, 0, &row)) != 0)
		return rc;
	return set_map(r->out, "job", job_map(&row));
}

struct list_acc {
	struct nq_value list;
	size_t cap;
	int oom;
};

static int
list_cb(void *arg, const struct job_row *row)
{
	struct list_acc *a = arg;
	struct nq_map *m;

	if (a->list.u.list.n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		struct nq_value *it =
		        realloc(a->list.u.list.items, cap * sizeof(*it));
		if (it == NULL) {
			a->oom = 1;
			return 1;
		}
		a->list.u.list.items = it;
		a->cap = cap;
	}
	m = job_map(row);
	if (m == NULL) {
		a->oom = 1;
		return 1;
	}
	a->list.u.list.items[a->list.u.list.n++] = nq_val_map(m);
	return 0;
}

static int
op_list(struct req *r)
{
	struct store_filter f = {.state = -1};
	struct list_acc acc = {.list = {.kind = NQ_LIST}};
	const char *state = NULL;
	int all = 0, rc;
	int64_t limit = SERVER_LIST_DEFAULT;
	enum job_state st;

	rc = nq_get_str(r->m, "state", &state, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	if (state != NULL) {
		if (job_state_parse(state, &st) != 0)
			return req_fail(
			        r, NQ_EBADPARAM,
			        "state: '%.32s' is not QUEUED, RUNNING, "
			        "DONE, FAILED or CANCELED",
			        state);
		f.state = (int) st;
	}
	rc = nq_get_bool(r->m, "all_users", &all, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	rc = nq_get_int(r->m, "limit", &limit, r->msg, r->msglen);
	if (rc > 1)
		return rc;
	if (limit < 0)
		return req_fail(r, NQ_EBADPARAM,
		                "limit: %" PRId64 " is negative (0 = all)",
		                limit);
	f.any_owner = all;
	f.owner = r->uid;
	f.limit = limit;
	rc = store_list(r->d->store, &f, list_cb, &acc);
	if (rc == 0 && acc.oom)
		rc = NQ_ENOMEM;
	if (rc == 0)
		rc = nq_map_set(r->out, "jobs", &acc.list);
	else if (rc == NQ_EIO)
		req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	nq_value_free(&acc.list);
	return rc;
}

static int
op_cancel(struct req *r)
{
	struct daemon *d = r->d;
	struct job_row row;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	if ((rc = load_job(r, id, 1, &row)) != 0)
		return rc;
	if (row.state == JOB_QUEUED) {
		sched_dequeue(d->sched, id);
		rc = store_mark_final(d->store, id, JOB_CANCELED, NQ_ECANCELED,
		                      "canceled while queued");
		if (rc != 0)
			return req_fail(r, rc, "store: %s",
			                store_errmsg(d->store));
		log_info("job canceled id=%" PRId64 " by=%" PRIu32
		         " state=QUEUED",
		         id, r->uid);
		server_publish_id(d, id);
	} else if (row.state == JOB_RUNNING) {
		store_set_cancel(d->store, id);
		if (worker_cancel(d, id) != 0) {
			/* a row RUNNING without a worker cannot happen
			 * after start-up recovery; end it anyway */
			store_mark_final(d->store, id, JOB_CANCELED,
			                 NQ_ECANCELED, "canceled");
		}
		log_info("job cancel requested id=%" PRId64 " by=%" PRIu32, id,
		         r->uid);
	}
	if ((rc = store_get_job(d->store, id, &row)) != 0)
		return req_fail(r, rc, "store: %s", store_errmsg(d->store));
	return nq_map_set_str(r->out, "state", job_state_name(row.state));
}

/* The job's files went with retention; the row is what is left. */
static int
purged_fail(struct req *r, const struct job_row *row)
{
	int days = r->d->cfg->retention_days;

	/* retention since switched off: say how long it was kept */
	if (days <= 0 && row->purged_us > row->finished_us)
		days = (int) ((row->purged_us - row->finished_us) /
		              86400000000);
	return req_fail(r, NQ_ESTATE,
	                "job %" PRId64 " %s; its results were removed after "
	                "%d days (retention_days)",
	                row->id, job_state_name(row->state), days);
}

/* Threadpool: the outputs, read and encoded into the whole reply. */
static int
result_read_work(struct req *r)
{
	struct nq_map *outs = nq_map_new();
	void *buf = NULL;
	size_t len = 0;
	int rc;

	if (outs == NULL)
		return NQ_ENOMEM;
	rc = spool_read_outputs(r->path, r->names, outs, r->msg, r->msglen);
	if (rc != 0) {
		nq_map_free(outs);
		return rc;
	}
	if ((rc = set_map(r->out, "outputs", outs)) != 0)
		return rc;
	if (nq_map_set_int(r->out, "v", NQ_PROTOCOL_VERSION) ||
	    nq_map_set_bool(r->out, "ok", 1))
		return NQ_ENOMEM;
	if (nq_encode(&(struct nq_value){.kind = NQ_MAP, .u.map = r->out}, &buf,
	              &len) != 0)
		return req_fail(r, NQ_ENOMEM, "cannot encode the reply");
	/* the arrays go here too, not on the loop thread */
	nq_map_free(r->out);
	r->out = NULL;
	r->encoded = net_msg_new(buf, len);
	return r->encoded == NULL ? NQ_ENOMEM : 0;
}

/* Loop thread: a read error because retention removed the files meanwhile
 * says so, as it would have before the read. */
static int
result_done(struct req *r, int rc)
{
	struct job_row row;

	if (rc == 0 || rc == NQ_EBADPARAM || rc == NQ_ENOMEM)
		return rc;
	if (store_get_job(r->d->store, r->id, &row) == 0 && row.purged_us != 0)
		return purged_fail(r, &row);
	return rc;
}

static int
op_result(struct req *r)
{
	struct job_row row;
	const struct nq_value *names;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	names = nq_map_get(r->m, "names");
	if (names != NULL && names->kind == NQ_NIL)
		names = NULL;
	if (names != NULL && names->kind != NQ_LIST)
		return req_fail(r, NQ_EBADPARAM,
		                "names: expected a list of output names");
	if ((rc = load_job(r, id, 1, &row)) != 0)
		return rc;
	if (row.purged_us != 0)
		return purged_fail(r, &row);
	if (row.state == JOB_FAILED)
		return req_fail(r, NQ_ESTATE, "job %" PRId64 " FAILED (%s): %s",
		                id, nq_errname(row.error_code), row.error);
	if (row.state != JOB_DONE)
		return req_fail(r, NQ_ESTATE,
		                "job %" PRId64 " is %s, not DONE; no result",
		                id, job_state_name(row.state));
	if (spool_job_dir(r->d->cfg->state_dir, id, r->path, sizeof(r->path)) !=
	    0)
		return NQ_EINTERNAL;
	/* a DONE job's out/ no longer changes (only retention removes it):
	 * read and encode it off the loop thread */
	r->names = names;
	r->id = id;
	return defer(r, result_read_work, result_done);
}

static int
op_devices(struct req *r)
{
	struct daemon *d = r->d;
	size_t n = sched_device_count(d->sched);
	struct nq_value list = {.kind = NQ_LIST};
	int rc = 0;

	/* figures as of the last probe; a fresh one runs in the background
	 * for the next request */
	probe_refresh(d);
	list.u.list.items = calloc(n + 1, sizeof(struct nq_value));
	if (list.u.list.items == NULL)
		return NQ_ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct sched_device *sd = sched_device_at(d->sched, i);
		const struct device_info *di = NULL;
		struct nq_map *m = nq_map_new();
		struct nq_value ids = {.kind = NQ_LIST};
		int64_t run[256];
		size_t nr;

		for (size_t k = 0; k < d->ndevs; k++) {
			if (strcmp(d->devs[k].name, sd->name) == 0)
				di = &d->devs[k];
		}
		if (m == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		list.u.list.items[i] = nq_val_map(m);
		list.u.list.n = i + 1;
		nr = worker_running_on(d, sd->name, run, 256);
		ids.u.list.items = calloc(nr + 1, sizeof(struct nq_value));
		if (ids.u.list.items == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		for (size_t k = 0; k < nr; k++) {
			ids.u.list.items[k].kind = NQ_INT;
			ids.u.list.items[k].u.i = run[k];
		}
		ids.u.list.n = nr;
		rc |= nq_map_set_str(m, "name", sd->name);
		rc |= nq_map_set_str(m, "kind",
		                     sd->kind == SCHED_CPU ? "cpu" : "cuda");
		rc |= nq_map_set_int(
		        m, "mem_total",
		        (int64_t) (di ? di->mem_total : sd->capacity));
		rc |= nq_map_set_int(m, "mem_free",
		                     (int64_t) (di ? di->mem_free : 0));
		rc |= nq_map_set_int(m, "capacity", (int64_t) sd->capacity);
		rc |= nq_map_set_int(m, "mem_reserved", (int64_t) sd->reserved);
		rc |= nq_map_set_int(
		        m, "mem_unreserved",
		        (int64_t) (sd->capacity > sd->reserved
		                           ? sd->capacity - sd->reserved
		                           : 0));
		rc |= nq_map_set_float(m, "probed_at", di ? di->probed_at : 0);
		rc |= nq_map_set_int(m, "slots", sd->slots);
		rc |= nq_map_set(m, "running", &ids);
		nq_value_free(&ids);
	}
	if (rc == 0)
		rc = nq_map_set(r->out, "devices", &list);
	nq_value_free(&list);
	return rc ? NQ_ENOMEM : 0;
}

static int
op_logs(struct req *r)
{
	struct job_row row;
	char jd[4096];
	char *text = NULL;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	if ((rc = load_job(r, id, 1, &row)) != 0)
		return rc;
	if (row.purged_us != 0)
		return purged_fail(r, &row);
	if (spool_job_dir(r->d->cfg->state_dir, id, jd, sizeof(jd)) != 0)
		return NQ_EINTERNAL;
	rc = spool_read_log(jd, SERVER_LOG_MAX, &text);
	if (rc != 0)
		return rc;
	rc = nq_map_set_str(r->out, "text", text);
	free(text);
	return rc;
}

static const struct {
	const char *name;
	int (*fn)(struct req *r);
} server_ops[] = {
        {"hello", op_hello},     {"submit", op_submit}, {"status", op_status},
        {"list", op_list},       {"cancel", op_cancel}, {"result", op_result},
        {"devices", op_devices}, {"logs", op_logs},
};

/* Threadpool for big requests, else inline. */
static int
decode_work(struct req *r)
{
	int rc = nq_decode(r->body, r->len, &r->val, r->msg, r->msglen);

	/* the message's memory goes here too, not on the loop thread */
	net_req_release_body(r->nr);
	r->body = NULL;
	return rc;
}

/* Loop thread: the decoded request to its op. */
static int
dispatch(struct req *r, int rc)
{
	int64_t ver;

	if (rc != 0)
		return rc;
	if (r->val.kind != NQ_MAP)
		return req_fail(r, NQ_EPROTO, "a request is a msgpack map");
	r->m = r->val.u.map;
	rc = nq_get_int(r->m, "v", &ver, r->msg, r->msglen);
	if (rc == 1)
		return req_fail(r, NQ_EVERSION,
		                "v: missing (the protocol version, %d)",
		                NQ_PROTOCOL_VERSION);
	if (rc != 0 || ver != NQ_PROTOCOL_VERSION)
		return req_fail(r, NQ_EVERSION,
		                "v: this daemon speaks protocol version %d",
		                NQ_PROTOCOL_VERSION);
	rc = nq_get_str(r->m, "op", &r->op, r->msg, r->msglen);
	if (rc != 0) {
		r->op = NULL;
		return req_fail(r, NQ_EBADOP, "op: missing or not a string");
	}
	for (size_t i = 0; i < sizeof(server_ops) / sizeof(server_ops[0]);
	     i++) {
		if (strcmp(r->op, server_ops[i].name) != 0)
			continue;
		r->out = nq_map_new();
		if (r->out == NULL)
			return NQ_ENOMEM;
		return server_ops[i].fn(r);
	}
	return req_fail(r, NQ_EBADOP,
	                "op: unknown request '%.32s' (hello, submit, status, "
	                "list, cancel, result, devices, logs)",
	                r->op);
}

void
server_handle(void *arg, struct net_req *nr, uint32_t uid, const void *body,
              size_t len)
{
	struct daemon *d = arg;
	struct req *r = calloc(1, sizeof(*r));
	int rc;

	if (r == NULL) {
		net_reply(nr, NULL, 0);
		return;
	}
	r->d = d;
	r->nr = nr;
	r->uid = uid;
	r->body = body;
	r->len = len;
	r->val.kind = NQ_NIL;
	r->msg = r->msgbuf;
	r->msglen = sizeof(r->msgbuf);
	/* the transport lets a little more through (net.h) so that this
	 * gets a reply instead of a dropped connection */
	if (len > d->cfg->max_message_bytes) {
		rc = req_fail(r, NQ_ETOOBIG,
		              "request of %zu bytes exceeds max_message_bytes "
		              "%" PRIu64
		              " (send the inputs as several jobs, or "
		              "ask the admin to raise it)",
		              len, d->cfg->max_message_bytes);
	} else if (len >= SERVER_ASYNC_BYTES) {
		rc = defer(r, decode_work, dispatch);
	} else {
		rc = dispatch(r, decode_work(r));
	}
	if (rc != SERVER_DEFERRED)
		req_finish(r, rc);
}

void
server_quiesce(struct daemon *d, void (*done)(struct daemon *d))
{
	d->stopping = 1;
	d->quiet = done;
	if (d->inflight > 0)
		log_notice("waiting for requests in progress requests=%d",
		           d->inflight);
	server_check_quiet(d);
}
