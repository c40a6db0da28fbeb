/* ops_info.c — hello and devices (ops.h). */
#include "ops.h"

#include "access.h"
#include "config.h"
#include "daemon.h"
#include "job_type.h"
#include "net.h"
#include "nq_error.h"
#include "probe.h"
#include "request.h"
#include "scheduler.h"
#include "store.h"
#include "worker.h"

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
		const struct device_info *di = NULL;
		struct nq_map *m = nq_map_new();
		struct nq_value ids = {.kind = NQ_LIST};
		int64_t run[256];
		size_t nr, nvis;

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
	return rc;
}
