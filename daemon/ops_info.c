/* ops_info.c — hello, devices, queue and describe (ops.h). */
#include "ops.h"

#include "access.h"
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "executor.h"
#include "job_type.h"
#include "metrics.h"
#include "net.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "probe.h"
#include "request.h"
#include "scheduler.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* hello's events URL: administrators get the socket with every event,
 * other users their own (made now), TCP callers none (their identity is
 * only the configured tcp_owner_uid, and no socket of theirs could check
 * who subscribes); "" when there is none. */
static void
hello_events(struct req *r, char *url, size_t n)
{
	url[0] = '\0';
	if (net_req_anonymous(r->nr))
		return;
	if (access_is_admin(r->d->access, r->uid)) {
		snprintf(url, n, "%s", r->d->cfg->events);
		return;
	}
	net_user_events(r->d->net, r->uid, url, n);
}

/* hello's quota: the caller's use and limits (0 = unlimited). */
static int
hello_quota(struct req *r)
{
	const struct config *c = r->d->cfg;
	struct store_usage u;
	struct nq_map *m;
	struct nq_value v;
	int rc = store_owner_usage(r->d->store, r->uid, &u);

	if (rc != 0)
		return req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	if ((m = nq_map_new()) == NULL)
		return NQ_ENOMEM;
	v = nq_val_map(m);
	if ((rc = nq_map_set_int(m, "queued", u.queued)) ||
	    (rc = nq_map_set_int(m, "max_queued",
	                         c->max_queued_jobs_per_user)) ||
	    (rc = nq_map_set_int(m, "spool_bytes", (int64_t) u.spool_bytes)) ||
	    (rc = nq_map_set_int(m, "max_spool_bytes",
	                         (int64_t) c->max_spool_bytes_per_user))) {
		nq_value_free(&v);
		return rc;
	}
	rc = nq_map_set(r->out, "quota", &v);
	nq_value_free(&v);
	return rc;
}

int
ops_hello(struct req *r)
{
	char events[4096];
	const struct job_type *const *all = job_type_all();
	struct nq_value list = {.kind = NQ_LIST};
	size_t n = 0;
	int rc;

	hello_events(r, events, sizeof(events));
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
	if ((rc = nq_map_set_int(r->out, "version", NQ_PROTOCOL_VERSION)) ||
	    (rc = nq_map_set_str(r->out, "daemon", NEUROQ_VERSION)) ||
	    (rc = nq_map_set_int(r->out, "uid", r->uid)) ||
	    (rc = nq_map_set_bool(r->out, "admin",
	                          access_is_admin(r->d->access, r->uid))) ||
	    (rc = nq_map_set_str(r->out, "events", events)) ||
	    (rc = hello_quota(r)) ||
	    (rc = nq_map_set_int(r->out, "max_message_bytes",
	                         (int64_t) r->d->cfg->max_message_bytes)))
		goto out;
	rc = nq_map_set(r->out, "job_types", &list);
out:
	nq_value_free(&list);
	return rc;
}

/* The probe's figures of the device named name; NULL when none. */
static const struct device_info *
device_find(const struct daemon *d, const char *name)
{
	for (size_t k = 0; k < d->ndevs; k++) {
		if (strcmp(d->devs[k].name, name) == 0)
			return &d->devs[k];
	}
	return NULL;
}

/* One entry of the devices reply into m; takes ids (the running jobs the
 * caller may see), nrun: how many run there in all. */
static int
device_map(struct nq_map *m, const struct sched_device *sd,
           const struct device_info *di, struct nq_value *ids, size_t nrun)
{
	uint64_t unres =
	        sd->capacity > sd->reserved ? sd->capacity - sd->reserved : 0;
	int rc;

	if ((rc = nq_map_set_str(m, "name", sd->name)) ||
	    (rc = nq_map_set_str(m, "kind",
	                         sd->kind == SCHED_CPU ? "cpu" : "cuda")) ||
	    (rc = nq_map_set_int(
	             m, "mem_total",
	             (int64_t) (di ? di->mem_total : sd->capacity))) ||
	    (rc = nq_map_set_int(m, "mem_free",
	                         (int64_t) (di ? di->mem_free : 0))) ||
	    (rc = nq_map_set_int(m, "capacity", (int64_t) sd->capacity)) ||
	    (rc = nq_map_set_int(m, "mem_reserved", (int64_t) sd->reserved)) ||
	    (rc = nq_map_set_int(m, "mem_unreserved", (int64_t) unres)) ||
	    (rc = nq_map_set_float(m, "probed_at", di ? di->probed_at : 0)) ||
	    (rc = nq_map_set_int(m, "slots", sd->slots)) ||
	    (rc = nq_map_set_int(m, "running_count", (int64_t) nrun)))
		return rc;
	return nq_map_set(m, "running", ids);
}

/* Keeps the ids of the jobs uid may see (its own; all for administrators);
 * returns how many. */
static size_t
devices_visible(struct req *r, int64_t *ids, size_t n)
{
	size_t k = 0;
	struct job_row row;

	if (access_is_admin(r->d->access, r->uid))
		return n;
	for (size_t i = 0; i < n; i++) {
		if (store_get_job(r->d->store, ids[i], &row) == 0 &&
		    row.owner == r->uid)
			ids[k++] = ids[i];
	}
	return k;
}

int
ops_devices(struct req *r)
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
		const struct device_info *di = device_find(d, sd->name);
		struct nq_map *m = nq_map_new();
		struct nq_value ids = {.kind = NQ_LIST};
		int64_t run[256];
		size_t nr, nvis;

		if (m == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		list.u.list.items[i] = nq_val_map(m);
		list.u.list.n = i + 1;
		nr = executor_running_on(d, sd->name, run, 256);
		nvis = devices_visible(r, run, nr);
		ids.u.list.items = calloc(nvis + 1, sizeof(struct nq_value));
		if (ids.u.list.items == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		for (size_t k = 0; k < nvis; k++) {
			ids.u.list.items[k].kind = NQ_INT;
			ids.u.list.items[k].u.i = run[k];
		}
		ids.u.list.n = nvis;
		rc = device_map(m, sd, di, &ids, nr);
		nq_value_free(&ids);
	}
	if (rc == 0)
		rc = nq_map_set(r->out, "devices", &list);
	nq_value_free(&list);
	if (rc == 0 && config_is_slurm(d->cfg))
		rc = executor_slurm_describe(d, r->out);
	return rc;
}

/* ---- queue: what `neuroq top` shows --------------------------------- */

#define QUEUE_OP_MAX    200 /* queued jobs listed (the page's too) */
#define QUEUE_OP_RECENT 12  /* finished jobs listed */

/* a growing list of reply maps */
struct qlist {
	struct nq_value v;
	size_t cap;
};

static int
qlist_add(struct qlist *l, struct nq_map *m)
{
	if (m == NULL)
		return NQ_ENOMEM;
	if (l->v.u.list.n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct nq_value *it =
		        realloc(l->v.u.list.items, cap * sizeof(*it));
		if (it == NULL) {
			nq_map_free(m);
			return NQ_ENOMEM;
		}
		l->v.u.list.items = it;
		l->cap = cap;
	}
	l->v.u.list.items[l->v.u.list.n++] = nq_val_map(m);
	return 0;
}

static int
qlist_set(struct nq_map *out, const char *key, struct qlist *l)
{
	int rc;

	if (l->v.u.list.items == NULL &&
	    (l->v.u.list.items = calloc(1, sizeof(struct nq_value))) == NULL)
		return NQ_ENOMEM;
	l->v.kind = NQ_LIST;
	rc = nq_map_set(out, key, &l->v);
	nq_value_free(&l->v);
	l->cap = 0;
	return rc;
}

/* A job of the queue reply (all of it is the caller's or they are an
 * administrator: the privacy filter ran before). NULL: out of memory. */
static struct nq_map *
queue_job(const struct job_row *j)
{
	struct nq_map *m = nq_map_new();
	double now = nq_wall_s();
	double el = j->started_us > 0 ? (job_state_final(j->state)
	                                         ? (double) j->finished_us
	                                         : now * 1e6) -
	                                        (double) j->started_us
	                              : 0;

	if (m == NULL)
		return NULL;
	if (nq_map_set_int(m, "id", j->id) ||
	    nq_map_set_str(m, "type", j->type) ||
	    nq_map_set_str(m, "state", job_state_name(j->state)) ||
	    nq_map_set_int(m, "owner", j->owner) ||
	    nq_map_set_int(m, "priority", j->priority) ||
	    nq_map_set_str(m, "device", j->device) ||
	    nq_map_set_float(m, "progress", j->progress) ||
	    nq_map_set_str(m, "stage", j->stage) ||
	    nq_map_set_float(m, "eta_s", events_eta_s(j)) ||
	    nq_map_set_float(m, "elapsed_s", el > 0 ? el / 1e6 : 0) ||
	    nq_map_set_float(m, "submitted", (double) j->submitted_us / 1e6) ||
	    nq_map_set_float(m, "started", (double) j->started_us / 1e6) ||
	    nq_map_set_float(m, "finished", (double) j->finished_us / 1e6) ||
	    nq_map_set_int(m, "error_code", j->error_code)) {
		nq_map_free(m);
		return NULL;
	}
	return m;
}

struct queue_acc {
	struct req *r;
	int admin;
	struct qlist *l;
	struct job_row *rows; /* recent: collected, sorted after */
	size_t nrows;
	int rc;
};

static int
queue_running_cb(void *arg, const struct job_row *row)
{
	struct queue_acc *a = arg;

	if (!a->admin && row->owner != a->r->uid)
		return 0;
	a->rc = qlist_add(a->l, queue_job(row));
	return a->rc != 0;
}

static int
queue_recent_cb(void *arg, const struct job_row *row)
{
	struct queue_acc *a = arg;

	a->rows[a->nrows++] = *row;
	return 0;
}

static int
finished_desc(const void *x, const void *y)
{
	const struct job_row *a = x, *b = y;

	if (a->finished_us != b->finished_us)
		return a->finished_us < b->finished_us ? 1 : -1;
	return a->id < b->id ? 1 : -1;
}

/* running: every RUNNING job the caller may see, oldest first */
static int
queue_running(struct req *r, int admin)
{
	struct store_filter f = {.state = JOB_RUNNING,
	                         .any_owner = admin,
	                         .owner = r->uid,
	                         .oldest_first = 1};
	struct qlist l = {.v = {.kind = NQ_LIST}};
	struct queue_acc a = {.r = r, .admin = admin, .l = &l};
	int rc = store_list(r->d->store, &f, queue_running_cb, &a);

	if (rc == 0)
		rc = a.rc;
	if (rc == 0)
		return qlist_set(r->out, "running", &l);
	nq_value_free(&l.v);
	return rc;
}

/* queue: the plan (metrics_queue_plan, the page's too), the caller's jobs
 * of it with their place in the whole queue */
static int
queue_plan(struct req *r, int admin)
{
	struct metrics_queued *q = NULL;
	struct qlist l = {.v = {.kind = NQ_LIST}};
	struct job_row row;
	size_t n = 0;
	int rc = metrics_queue_plan(r->d, admin ? -1 : (int64_t) r->uid,
	                            QUEUE_OP_MAX, &q, &n);

	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct nq_map *m;

		if (store_get_job(r->d->store, q[i].e.id, &row) != 0)
			continue; /* gone between the plan and now */
		if ((m = queue_job(&row)) == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		if ((rc = nq_map_set_int(m, "position",
		                         (int64_t) q[i].position)) ||
		    (rc = nq_map_set_str(m, "reason", q[i].reason)) ||
		    (rc = nq_map_set_str(m, "reason_device", q[i].device))) {
			nq_map_free(m);
			break;
		}
		rc = qlist_add(&l, m);
	}
	free(q);
	if (rc == 0)
		rc = nq_map_set_int(r->out, "queue_total",
		                    (int64_t) sched_queued(r->d->sched));
	if (rc == 0)
		return qlist_set(r->out, "queue", &l);
	nq_value_free(&l.v);
	return rc;
}

/* recent: the newest (by id) QUEUE_OP_RECENT jobs of each final state the
 * caller may see (the store's state index), latest finished first */
static int
queue_recent(struct req *r, int admin)
{
	static const int fin[] = {JOB_DONE, JOB_FAILED, JOB_CANCELED};
	struct job_row *rows = calloc(3 * QUEUE_OP_RECENT, sizeof(*rows));
	struct qlist l = {.v = {.kind = NQ_LIST}};
	struct queue_acc a = {.r = r, .admin = admin, .rows = rows};
	int rc = rows == NULL ? NQ_ENOMEM : 0;

	for (size_t k = 0; rc == 0 && k < 3; k++) {
		struct store_filter f = {.state = fin[k],
		                         .any_owner = admin,
		                         .owner = r->uid,
		                         .limit = QUEUE_OP_RECENT};
		rc = store_list(r->d->store, &f, queue_recent_cb, &a);
	}
	if (rc == 0)
		qsort(rows, a.nrows, sizeof(*rows), finished_desc);
	for (size_t i = 0; rc == 0 && i < a.nrows && i < QUEUE_OP_RECENT; i++)
		rc = qlist_add(&l, queue_job(&rows[i]));
	free(rows);
	if (rc == 0)
		return qlist_set(r->out, "recent", &l);
	nq_value_free(&l.v);
	return rc;
}

/* devices: the memory ledger and slots (no job ids: running_count) */
static int
queue_devices(struct req *r)
{
	struct daemon *d = r->d;
	struct qlist l = {.v = {.kind = NQ_LIST}};
	size_t n = sched_device_count(d->sched);
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct sched_device *sd = sched_device_at(d->sched, i);
		const struct device_info *di = device_find(d, sd->name);
		struct nq_map *m = nq_map_new();

		if (m == NULL) {
			rc = NQ_ENOMEM;
			break;
		}
		if ((rc = nq_map_set_str(m, "name", sd->name)) ||
		    (rc = nq_map_set_str(m, "kind",
		                         sd->kind == SCHED_CPU ? "cpu"
		                                               : "cuda")) ||
		    (rc = nq_map_set_int(
		             m, "mem_total",
		             (int64_t) (di ? di->mem_total : sd->capacity))) ||
		    (rc = nq_map_set_int(m, "capacity",
		                         (int64_t) sd->capacity)) ||
		    (rc = nq_map_set_int(m, "mem_reserved",
		                         (int64_t) sd->reserved)) ||
		    (rc = nq_map_set_int(m, "slots", sd->slots)) ||
		    (rc = nq_map_set_int(m, "running_count", sd->running))) {
			nq_map_free(m);
			break;
		}
		rc = qlist_add(&l, m);
	}
	if (rc == 0)
		return qlist_set(r->out, "devices", &l);
	nq_value_free(&l.v);
	return rc;
}

int
ops_queue(struct req *r)
{
	int admin = access_is_admin(r->d->access, r->uid);
	int64_t oq, orun;
	int rc;

	if ((rc = nq_map_set_float(r->out, "now", nq_wall_s())) ||
	    (rc = nq_map_set_bool(r->out, "draining", r->d->draining)) ||
	    (rc = nq_map_set_bool(r->out, "admin", admin)) ||
	    (rc = queue_devices(r)) || (rc = queue_running(r, admin)) ||
	    (rc = queue_plan(r, admin)) || (rc = queue_recent(r, admin)))
		goto fail;
	if (!admin) {
		struct nq_map *m = nq_map_new();
		struct nq_value v;

		rc = store_count_others(r->d->store, r->uid, &oq, &orun);
		if (m == NULL || rc != 0 ||
		    (rc = nq_map_set_int(m, "queued", oq)) ||
		    (rc = nq_map_set_int(m, "running", orun))) {
			nq_map_free(m);
			rc = rc ? rc : NQ_ENOMEM;
			goto fail;
		}
		v = nq_val_map(m);
		rc = nq_map_set(r->out, "others", &v);
	}
fail:
	if (rc == NQ_EIO)
		return req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	return rc;
}

/* The job types' tables (daemon/jobs/params.h): every type, or the one
 * named by "type" (EBADTYPE when unknown). */
int
ops_describe(struct req *r)
{
	struct nq_value list;
	const char *type = NULL;
	int rc = nq_get_str(r->m, "type", &type, r->msg, r->msglen);

	if (rc != 0)
		return rc;
	rc = job_type_describe(type, &list);
	if (rc == NQ_EBADTYPE)
		return req_fail(r, rc,
		                "type: unknown job type '%.32s' (hello lists "
		                "them)",
		                type);
	if (rc != 0)
		return rc;
	rc = nq_map_set(r->out, "types", &list);
	nq_value_free(&list);
	return rc;
}
