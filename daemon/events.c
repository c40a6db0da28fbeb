/* events.c — see events.h. */
#include "events.h"

#include "daemon.h"
#include "net.h"
#include "nq_clock.h"
#include "nq_value.h"
#include "store.h"

#include <stdlib.h>

double
events_eta_s(const struct job_row *j)
{
	if (job_state_final(j->state))
		return 0;
	if (j->state == JOB_RUNNING && j->progress >= 0.01 &&
	    j->started_us > 0) {
		double el = nq_wall_s() - (double) j->started_us / 1e6;
		if (el > 0)
			return el * (1 - j->progress) / j->progress;
	}
	return -1;
}

void
events_publish(struct daemon *d, const struct job_row *j)
{
	struct nq_map *m = nq_map_new();
	struct nq_value v;
	void *buf = NULL;
	size_t len;
	double eta = events_eta_s(j);

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
		net_publish(d->net, j->owner, j->id, buf, len);
	free(buf);
	nq_value_free(&v);
}

void
events_publish_id(struct daemon *d, int64_t id)
{
	struct job_row row;

	if (store_get_job(d->store, id, &row) == 0)
		events_publish(d, &row);
}
