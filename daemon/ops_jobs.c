/* ops_jobs.c — status, list, cancel, result and logs (ops.h): the
 * requests about one job, or the list of them. */
#include "ops.h"

#include "access.h"
#include "config.h"
#include "daemon.h"
#include "events.h"
#include "executor.h"
#include "log.h"
#include "net.h"
#include "nq_error.h"
#include "request.h"
#include "scheduler.h"
#include "spool.h"
#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPS_LOG_MAX      (1u << 20) /* logs reply: the last MiB */
#define OPS_LIST_DEFAULT 100

static double
us_to_s(int64_t us)
{
	return (double) us / 1e6;
}

/* The job's fields as status and list send them, into *out. 0 or an
 * nq_error code (NQ_ENOMEM) with *out NULL. */
static int
job_map(const struct daemon *d, const struct job_row *j, struct nq_map **out)
{
	struct nq_map *m = nq_map_new();
	struct job_row ended;
	const char *emsg;
	int rc, st, code;

	*out = NULL;
	if (m == NULL)
		return NQ_ENOMEM;
	/* a full disk: the job ended, its row could not say so yet (worker.c
	 * writes it when it can); answer with the end, not RUNNING */
	if (j->state == JOB_RUNNING &&
	    executor_pending_end(d, j->id, &st, &code, &emsg)) {
		ended = *j;
		ended.state = (enum job_state) st;
		ended.error_code = code;
		snprintf(ended.error, sizeof(ended.error), "%s", emsg);
		j = &ended;
	}
	if ((rc = nq_map_set_int(m, "id", j->id)) ||
	    (rc = nq_map_set_str(m, "type", j->type)) ||
	    (rc = nq_map_set_str(m, "state", job_state_name(j->state))) ||
	    (rc = nq_map_set_int(m, "owner", j->owner)) ||
	    (rc = nq_map_set_int(m, "priority", j->priority)) ||
	    (rc = nq_map_set_str(m, "device_req", j->device_req)) ||
	    (rc = nq_map_set_str(m, "device", j->device)) ||
	    (rc = nq_map_set_int(m, "attempts", j->attempts)) ||
	    (rc = nq_map_set_float(m, "progress", j->progress)) ||
	    (rc = nq_map_set_str(m, "stage", j->stage)) ||
	    (rc = nq_map_set_float(m, "eta_s", events_eta_s(j))) ||
	    (rc = nq_map_set_int(m, "time_limit_s",
	                         j->state == JOB_RUNNING
	                                 ? executor_time_limit_s(d, j->id)
	                                 : 0)) ||
	    (rc = nq_map_set_float(m, "submitted", us_to_s(j->submitted_us))) ||
	    (rc = nq_map_set_float(m, "started", us_to_s(j->started_us))) ||
	    (rc = nq_map_set_float(m, "finished", us_to_s(j->finished_us))) ||
	    (rc = nq_map_set_int(m, "est_host_bytes",
	                         (int64_t) j->est_host_bytes)) ||
	    (rc = nq_map_set_int(m, "est_device_bytes",
	                         (int64_t) j->est_device_bytes)) ||
	    (rc = nq_map_set_int(m, "error_code", j->error_code)) ||
	    (rc = nq_map_set_str(m, "error", j->error)) ||
	    /* a stop still to come: the row keeps the request (start-up
	     * recovery reads it), a final job has nothing left to stop */
	    (rc = nq_map_set_bool(m, "cancel_requested",
	                          j->cancel_requested &&
	                                  !job_state_final(j->state))) ||
	    (rc = nq_map_set_bool(m, "purged", j->purged_us != 0)) ||
	    (rc = nq_map_set_str(m, "pending_reason", j->pending_reason)) ||
	    (rc = nq_map_set_str(m, "backend_job_id", j->backend_job_id))) {
		nq_map_free(m);
		return rc;
	}
	*out = m;
	return 0;
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

/* ---- field helpers: absent → default, wrong type → EBADPARAM */

static int
need_id(struct req *r, int64_t *id)
{
	int rc;

	*id = 0;
	if (!nq_has(r->m, "id"))
		return req_fail(r, NQ_EBADPARAM, "id: missing (a job id)");
	if ((rc = nq_get_int(r->m, "id", id, r->msg, r->msglen)) != 0)
		return rc;
	if (*id <= 0)
		return req_fail(r, NQ_EBADPARAM,
		                "id: %" PRId64 " is not a job id (ids are > 0)",
		                *id);
	return 0;
}

/* Loads the job for its owner or an administrator (access.h); anyone
 * else gets EPERM with nothing about the job but its id. */
static int
load_job(struct req *r, int64_t id, struct job_row *row)
{
	int rc = store_get_job(r->d->store, id, row);

	if (rc == NQ_ENOJOB)
		return req_fail(r, rc, "no job %" PRId64, id);
	if (rc != 0)
		return req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	if (!access_may_see(r->d->access, r->uid, row->owner)) {
		memset(row, 0, sizeof(*row));
		return req_fail(r, NQ_EPERM,
		                "job %" PRId64 " is not yours; only its owner "
		                "or an administrator may see or change it",
		                id);
	}
	return 0;
}

int
ops_status(struct req *r)
{
	struct job_row row;
	struct nq_map *m;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	if ((rc = load_job(r, id, &row)) != 0)
		return rc;
	if ((rc = job_map(r->d, &row, &m)) != 0)
		return rc;
	return set_map(r->out, "job", m);
}

struct list_acc {
	struct nq_value list;
	size_t cap;
	int rc; /* the first failure */
	const struct daemon *d;
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
			a->rc = NQ_ENOMEM;
			return 1;
		}
		a->list.u.list.items = it;
		a->cap = cap;
	}
	if ((a->rc = job_map(a->d, row, &m)) != 0)
		return 1;
	a->list.u.list.items[a->list.u.list.n++] = nq_val_map(m);
	return 0;
}

/* list all_users, not an administrator: others: {queued, running}. */
static int
list_others(struct req *r)
{
	struct nq_map *m = nq_map_new();
	int64_t queued, running;
	int rc = store_count_others(r->d->store, r->uid, &queued, &running);

	if (m == NULL || rc != 0) {
		nq_map_free(m);
		return m == NULL ? NQ_ENOMEM : rc;
	}
	if ((rc = nq_map_set_int(m, "queued", queued)) ||
	    (rc = nq_map_set_int(m, "running", running))) {
		nq_map_free(m);
		return rc;
	}
	return set_map(r->out, "others", m);
}

int
ops_list(struct req *r)
{
	struct store_filter f = {.state = -1};
	struct list_acc acc = {.list = {.kind = NQ_LIST}, .d = r->d};
	const char *state = NULL;
	int all = 0, admin, rc;
	int64_t limit = OPS_LIST_DEFAULT;
	enum job_state st;

	rc = nq_get_str(r->m, "state", &state, r->msg, r->msglen);
	if (rc != 0)
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
	if (rc != 0)
		return rc;
	rc = nq_get_int(r->m, "limit", &limit, r->msg, r->msglen);
	if (rc != 0)
		return rc;
	if (limit < 0)
		return req_fail(r, NQ_EBADPARAM,
		                "limit: %" PRId64 " is negative (0 = all)",
		                limit);
	/* everyone's jobs for administrators; for the others their own and
	 * how many other jobs wait and run */
	admin = all && access_is_admin(r->d->access, r->uid);
	f.any_owner = admin;
	f.owner = r->uid;
	f.limit = limit;
	rc = store_list(r->d->store, &f, list_cb, &acc);
	if (rc == 0)
		rc = acc.rc;
	if (rc == 0)
		rc = nq_map_set(r->out, "jobs", &acc.list);
	if (rc == 0 && all && !admin)
		rc = list_others(r);
	if (rc == NQ_EIO)
		req_fail(r, rc, "store: %s", store_errmsg(r->d->store));
	nq_value_free(&acc.list);
	return rc;
}

int
ops_cancel(struct req *r)
{
	struct daemon *d = r->d;
	struct job_row row;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	if ((rc = load_job(r, id, &row)) != 0)
		return rc;
	if (row.state == JOB_QUEUED) {
		sched_dequeue(d->sched, id);
		char jd[4096];
		/* the spool records it too (neuroqd --recover reads it) */
		if (spool_job_dir(config_spool_root(d->cfg), id, jd,
		                  sizeof(jd)) == 0)
			spool_write_error(jd, NQ_ECANCELED,
			                  "canceled while queued");
		rc = store_mark_final(d->store, id, JOB_CANCELED, NQ_ECANCELED,
		                      "canceled while queued");
		if (rc != 0)
			return req_fail(r, rc, "store: %s",
			                store_errmsg(d->store));
		log_info("job canceled id=%" PRId64 " by=%" PRIu32
		         " state=QUEUED",
		         id, r->uid);
		events_publish_id(d, id);
	} else if (row.state == JOB_RUNNING) {
		store_set_cancel(d->store, id);
		if (executor_cancel(d, id) != 0) {
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

int
ops_result(struct req *r)
{
	struct job_row row;
	const struct nq_value *names;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	/* nil is not absent (PROTOCOL.md §2) */
	names = nq_map_get(r->m, "names");
	if (names != NULL && names->kind != NQ_LIST)
		return req_fail(r, NQ_EBADPARAM,
		                "names: expected a list of output names%s",
		                names->kind == NQ_NIL
		                        ? ", got nil (leave names out for "
		                          "every output)"
		                        : "");
	if ((rc = load_job(r, id, &row)) != 0)
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
	if (spool_job_dir(config_spool_root(r->d->cfg), id, r->path,
	                  sizeof(r->path)) != 0)
		return NQ_EINTERNAL;
	/* a DONE job's out/ no longer changes (only retention removes it):
	 * read and encode it off the loop thread */
	r->names = names;
	r->id = id;
	return req_defer(r, result_read_work, result_done);
}

int
ops_logs(struct req *r)
{
	struct job_row row;
	char jd[4096];
	char *text = NULL;
	int64_t id;
	int rc;

	if ((rc = need_id(r, &id)) != 0)
		return rc;
	if ((rc = load_job(r, id, &row)) != 0)
		return rc;
	if (row.purged_us != 0)
		return purged_fail(r, &row);
	if (spool_job_dir(config_spool_root(r->d->cfg), id, jd, sizeof(jd)) !=
	    0)
		return NQ_EINTERNAL;
	rc = spool_read_log(jd, OPS_LOG_MAX, &text);
	if (rc != 0)
		return rc;
	rc = nq_map_set_str(r->out, "text", text);
	free(text);
	return rc;
}
