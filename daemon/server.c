/* server.c — see server.h. Every handler runs on the loop thread. */
#include "server.h"

#include "job_type.h"
#include "log.h"
#include "nq_error.h"
#include "probe.h"
#include "spool.h"
#include "worker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SERVER_LOG_MAX      (1u << 20) /* logs reply: the last MiB */
#define SERVER_LIST_DEFAULT 100

struct req {
	struct daemon *d;
	uint32_t uid;
	const struct nq_map *m;
	struct nq_map *out; /* reply fields */
	char *msg;          /* error message */
	size_t msglen;
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

static int
op_submit(struct req *r)
{
	struct daemon *d = r->d;
	const struct job_type *jt;
	const char *type = NULL, *device = "auto", *idem = "";
	const struct nq_map *params = NULL, *inputs = NULL;
	struct nq_map *empty = NULL, *empty_in = NULL;
	struct job_estimate est;
	struct sched_job sj;
	struct job_row row;
	char tmp[4096] = "";
	int64_t prio = 0;
	int existing = 0;
	int rc;

	if (d->draining)
		return req_fail(r, NQ_ESHUTDOWN,
		                "the daemon is shutting down; submit again "
		                "after it restarts");
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
	if (params == NULL) {
		params = empty = nq_map_new();
		if (empty == NULL)
			return NQ_ENOMEM;
	}
	if (inputs == NULL) {
		inputs = empty_in = nq_map_new();
		if (empty_in == NULL) {
			rc = NQ_ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < inputs->n; i++) {
		if (inputs->vals[i].kind != NQ_ARRAY) {
			rc = req_fail(r, NQ_EBADARRAY,
			              "inputs.%.64s: expected an array {dtype, "
			              "shape, data}",
			              inputs->keys[i]);
			goto out;
		}
		if (!spool_name_ok(inputs->keys[i])) {
			rc = req_fail(
			        r, NQ_EBADPARAM,
			        "inputs: name '%.64s' is not allowed (1..64 "
			        "of A-Z a-z 0-9 _ - ., not starting with .)",
			        inputs->keys[i]);
			goto out;
		}
	}
	rc = jt->validate(params, inputs, r->msg, r->msglen);
	if (rc != 0) {
		if (r->msg[0] == '\0')
			snprintf(r->msg, r->msglen, "%s", nq_strerror(rc));
		goto out;
	}
	memset(&est, 0, sizeof(est));
	rc = jt->estimate(params, inputs, &est);
	if (rc != 0) {
		req_fail(r, rc, "cannot estimate the job's memory: %s",
		         nq_strerror(rc));
		goto out;
	}
	memset(&sj, 0, sizeof(sj));
	sj.owner = r->uid;
	sj.priority = (int) prio;
	sj.host_bytes = est.host_bytes;
	sj.device_bytes = est.device_bytes;
	sj.flops = est.flops;
	snprintf(sj.device_req, sizeof(sj.device_req), "%s", device);
	rc = sched_fits_ever(d->sched, &sj);
	if (rc == NQ_ETOOLARGE) {
		rc = too_large(r, &sj);
		goto out;
	}
	if (rc != 0) {
		rc = req_fail(r, rc,
		              "device: no device '%s' on this server "
		              "(send devices for the list)",
		              device);
		goto out;
	}
	/* files first: a row never points at inputs that are not on disk */
	rc = spool_stage(d->cfg->state_dir, params, inputs, tmp, sizeof(tmp),
	                 r->msg, r->msglen);
	if (rc != 0)
		goto out;
	memset(&row, 0, sizeof(row));
	snprintf(row.type, sizeof(row.type), "%s", jt->name);
	row.state = JOB_QUEUED;
	row.owner = r->uid;
	row.priority = (int) prio;
	snprintf(row.device_req, sizeof(row.device_req), "%s", device);
	row.est_host_bytes = est.host_bytes;
	row.est_device_bytes = est.device_bytes;
	row.est_flops = est.flops;
	snprintf(row.idem, sizeof(row.idem), "%s", idem);
	rc = store_put_job(d->store, &row, &existing);
	if (rc != 0) {
		req_fail(r, rc, "store: %s", store_errmsg(d->store));
		spool_rm_rf(tmp);
		goto out;
	}
	if (existing) {
		spool_rm_rf(tmp);
		goto reply;
	}
	rc = spool_commit(tmp, d->cfg->state_dir, row.id, r->msg, r->msglen);
	if (rc != 0) {
		spool_rm_rf(tmp);
		store_mark_final(d->store, row.id, JOB_FAILED, rc, r->msg);
		goto out;
	}
	sj.id = row.id;
	sj.seq = (uint64_t) row.id;
	rc = sched_enqueue(d->sched, &sj);
	if (rc != 0) {
		store_mark_final(d->store, row.id, JOB_FAILED, rc,
		                 "cannot queue: out of memory");
		req_fail(r, rc, "cannot queue the job: out of memory");
		goto out;
	}
	log_info("job submitted id=%" PRId64 " type=%s owner=%" PRIu32
	         " device=%s priority=%d host_bytes=%" PRIu64
	         " device_bytes=%" PRIu64,
	         row.id, row.type, row.owner, row.device_req, row.priority,
	         row.est_host_bytes, row.est_device_bytes);
	server_publish(d, &row);
	worker_start_more(d);
reply:
	rc = nq_map_set_int(r->out, "id", row.id);
	rc |= nq_map_set_bool(r->out, "existing", existing);
	rc = rc ? NQ_ENOMEM : 0;
out:
	nq_map_free(empty);
	nq_map_free(empty_in);
	return rc;
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

static int
op_result(struct req *r)
{
	struct job_row row;
	const struct nq_value *names;
	struct nq_map *outs;
	char jd[4096];
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
	if (spool_job_dir(r->d->cfg->state_dir, id, jd, sizeof(jd)) != 0)
		return NQ_EINTERNAL;
	outs = nq_map_new();
	if (outs == NULL)
		return NQ_ENOMEM;
	rc = spool_read_outputs(jd, names, outs, r->msg, r->msglen);
	if (rc != 0) {
		nq_map_free(outs);
		return rc;
	}
	return set_map(r->out, "outputs", outs);
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

void
server_handle(void *arg, uint32_t uid, const void *body, size_t len,
              void **reply, size_t *replylen)
{
	struct daemon *d = arg;
	struct nq_value req = {.kind = NQ_NIL};
	char msg[1024] = "";
	const char *op = NULL;
	int64_t ver;
	int rc;
	struct req r = {.d = d, .uid = uid, .msg = msg, .msglen = sizeof(msg)};

	*reply = NULL;
	*replylen = 0;
	/* the transport lets a little more through (net.h) so that this
	 * gets a reply instead of a dropped connection */
	if (len > d->cfg->max_message_bytes) {
		rc = req_fail(&r, NQ_ETOOBIG,
		              "request of %zu bytes exceeds max_message_bytes "
		              "%" PRIu64
		              " (send the inputs as several jobs, or "
		              "ask the admin to raise it)",
		              len, d->cfg->max_message_bytes);
		goto fail;
	}
	rc = nq_decode(body, len, &req, msg, sizeof(msg));
	if (rc != 0)
		goto fail;
	if (req.kind != NQ_MAP) {
		rc = req_fail(&r, NQ_EPROTO, "a request is a msgpack map");
		goto fail;
	}
	r.m = req.u.map;
	rc = nq_get_int(r.m, "v", &ver, msg, sizeof(msg));
	if (rc == 1) {
		rc = req_fail(&r, NQ_EVERSION,
		              "v: missing (the protocol version, %d)",
		              NQ_PROTOCOL_VERSION);
		goto fail;
	}
	if (rc != 0 || ver != NQ_PROTOCOL_VERSION) {
		rc = req_fail(&r, NQ_EVERSION,
		              "v: this daemon speaks protocol version %d",
		              NQ_PROTOCOL_VERSION);
		goto fail;
	}
	rc = nq_get_str(r.m, "op", &op, msg, sizeof(msg));
	if (rc != 0) {
		rc = req_fail(&r, NQ_EBADOP, "op: missing or not a string");
		goto fail;
	}
	for (size_t i = 0; i < sizeof(server_ops) / sizeof(server_ops[0]);
	     i++) {
		if (strcmp(op, server_ops[i].name) != 0)
			continue;
		r.out = nq_map_new();
		if (r.out == NULL) {
			rc = NQ_ENOMEM;
			goto fail;
		}
		rc = server_ops[i].fn(&r);
		if (rc != 0) {
			nq_map_free(r.out);
			goto fail;
		}
		if (nq_map_set_int(r.out, "v", NQ_PROTOCOL_VERSION) ||
		    nq_map_set_bool(r.out, "ok", 1)) {
			nq_map_free(r.out);
			rc = NQ_ENOMEM;
			goto fail;
		}
		if (encode_reply(r.out, reply, replylen) != 0) {
			rc = NQ_ENOMEM;
			*reply = NULL;
			snprintf(msg, sizeof(msg), "cannot encode the reply");
			goto fail;
		}
		log_debug("request op=%s uid=%" PRIu32 " ok=1", op, uid);
		nq_value_free(&req);
		return;
	}
	rc = req_fail(&r, NQ_EBADOP,
	              "op: unknown request '%.32s' (hello, submit, status, "
	              "list, cancel, result, devices, logs)",
	              op);
fail:
	log_debug("request op=%s uid=%" PRIu32 " error=%s message=\"%s\"",
	          op ? op : "?", uid, nq_errname(rc), msg);
	nq_value_free(&req);
	reply_error(rc, msg, reply, replylen);
}
