/*
 * metrics.c — see metrics.h. One pass over the store's rows (newest
 * first) gathers everything the two documents need; the counters that
 * must survive a restart (jobs submitted, their errors, the queue-wait and
 * run-time histograms, device-seconds) are computed from the rows, so they
 * never go back on a restart; the process-lifetime ones are counters that
 * Prometheus sees reset with neuroq_start_time_seconds.
 *
 * The cost is one store_list() over every row per snapshot; http.c builds
 * a snapshot only when someone asks and the last one is older than a
 * second. neuroq_metrics_build_seconds reports what the last one took.
 */
#include "metrics.h"

#include "daemon.h"
#include "job_type.h"
#include "nq_clock.h"
#include "nq_error.h"
#include "nq_json.h"
#include "scheduler.h"
#include "store.h"
#include "worker.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

/* the protocol's ops (server.c); anything else counts as "other" */
static const char *const metrics_ops[] = {
        "hello",   "submit", "status", "list",     "cancel",  "result",
        "devices", "logs",   "queue",  "describe", "reserve", "other",
};
#define METRICS_NOPS  (sizeof(metrics_ops) / sizeof(metrics_ops[0]))
#define METRICS_CODES 65 /* codes 0..63; 64: any other */

struct metrics {
	uint64_t req[METRICS_NOPS][METRICS_CODES];
	uint64_t restarts;
	double last_build_s; /* what the previous build took */
};

struct metrics *
metrics_new(void)
{
	return calloc(1, sizeof(struct metrics));
}

void
metrics_free(struct metrics *m)
{
	free(m);
}

static size_t
code_index(int code)
{
	return code >= 0 && code < METRICS_CODES - 1 ? (size_t) code
	                                             : METRICS_CODES - 1;
}

static const char *
code_name(size_t i)
{
	return i == METRICS_CODES - 1 ? "EUNKNOWN" : nq_errname((int) i);
}

void
metrics_count_request(struct metrics *m, const char *op, int code)
{
	size_t i = METRICS_NOPS - 1;

	if (m == NULL)
		return;
	for (size_t k = 0; op != NULL && k + 1 < METRICS_NOPS; k++) {
		if (strcmp(op, metrics_ops[k]) == 0) {
			i = k;
			break;
		}
	}
	m->req[i][code_index(code)]++;
}

void
metrics_count_restart(struct metrics *m)
{
	if (m != NULL)
		m->restarts++;
}

/* ---- the rows, gathered ------------------------------------------- */

/* seconds; the same for queue wait and run time, minutes to a day */
static const double bucket_le[] = {0.1, 0.5,  1,    5,    15,    60,    300,
                                   900, 1800, 3600, 7200, 14400, 43200, 86400};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

struct hist {
	uint64_t n[NBUCKETS]; /* per bucket, not cumulative; above: count */
	uint64_t count;
	double sum;
};

static void
hist_add(struct hist *h, double v)
{
	for (size_t i = 0; i < NBUCKETS; i++) {
		if (v <= bucket_le[i]) {
			h->n[i]++;
			break;
		}
	}
	h->count++;
	h->sum += v;
}

#define MAX_TYPES 32 /* more job types than this count as "other" */
#define NSTATES   5
#define RECENT    12  /* finished jobs on the page */
#define QUEUE_MAX 200 /* queued jobs listed on the page */

struct type_agg {
	char name[32];
	uint64_t state[NSTATES];
	uint64_t submitted;
	uint64_t err[METRICS_CODES];
	struct hist wait, run;
};

struct user_agg {
	uint32_t uid;
	uint64_t queued, running;
	double device_s;
};

struct jrow {
	int64_t id;
	char type[32];
	char device[32];
	enum job_state state;
	double progress;
	int64_t started_us, finished_us;
};

struct scan {
	struct type_agg types[MAX_TYPES + 1];
	size_t ntypes;
	struct user_agg *users;
	size_t nusers, capusers, ulast;
	struct jrow *running;
	size_t nrun, caprun;
	struct jrow *queued; /* newest first: ids descending */
	size_t nqueued, capqueued;
	struct jrow recent[RECENT]; /* newest finished first */
	size_t nrecent;
	int err;
};

static struct type_agg *
type_get(struct scan *sc, const char *name)
{
	for (size_t i = 0; i < sc->ntypes; i++) {
		if (strcmp(sc->types[i].name, name) == 0)
			return &sc->types[i];
	}
	if (sc->ntypes == MAX_TYPES)
		name = "other";
	if (sc->ntypes <= MAX_TYPES) {
		struct type_agg *t = &sc->types[sc->ntypes++];
		snprintf(t->name, sizeof(t->name), "%s", name);
		return t;
	}
	return &sc->types[MAX_TYPES];
}

static struct user_agg *
user_get(struct scan *sc, uint32_t uid)
{
	if (sc->ulast < sc->nusers && sc->users[sc->ulast].uid == uid)
		return &sc->users[sc->ulast];
	for (size_t i = 0; i < sc->nusers; i++) {
		if (sc->users[i].uid == uid) {
			sc->ulast = i;
			return &sc->users[i];
		}
	}
	if (sc->nusers == sc->capusers) {
		size_t cap = sc->capusers ? sc->capusers * 2 : 16;
		struct user_agg *u = realloc(sc->users, cap * sizeof(*u));
		if (u == NULL)
			return NULL;
		sc->users = u;
		sc->capusers = cap;
	}
	memset(&sc->users[sc->nusers], 0, sizeof(sc->users[0]));
	sc->users[sc->nusers].uid = uid;
	sc->ulast = sc->nusers;
	return &sc->users[sc->nusers++];
}

static int
jrow_push(struct jrow **v, size_t *n, size_t *cap, const struct jrow *r)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 32;
		struct jrow *nv = realloc(*v, ncap * sizeof(*nv));
		if (nv == NULL)
			return NQ_ENOMEM;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = *r;
	return 0;
}

static void
recent_add(struct scan *sc, const struct jrow *r)
{
	size_t i = sc->nrecent;

	if (i == RECENT) {
		if (r->finished_us <= sc->recent[RECENT - 1].finished_us)
			return;
		i = RECENT - 1;
	} else {
		sc->nrecent++;
	}
	while (i > 0 && sc->recent[i - 1].finished_us < r->finished_us) {
		sc->recent[i] = sc->recent[i - 1];
		i--;
	}
	sc->recent[i] = *r;
}

static int
scan_row(void *arg, const struct job_row *row)
{
	struct scan *sc = arg;
	struct type_agg *t = type_get(sc, row->type);
	struct user_agg *u = user_get(sc, row->owner);
	struct jrow jr;

	if (u == NULL) {
		sc->err = NQ_ENOMEM;
		return 1;
	}
	memset(&jr, 0, sizeof(jr));
	jr.id = row->id;
	snprintf(jr.type, sizeof(jr.type), "%s", t->name);
	snprintf(jr.device, sizeof(jr.device), "%s", row->device);
	jr.state = row->state;
	jr.progress = row->progress;
	jr.started_us = row->started_us;
	jr.finished_us = row->finished_us;

	if ((unsigned) row->state < NSTATES)
		t->state[row->state]++;
	t->submitted++;
	if (row->error_code != 0)
		t->err[code_index(row->error_code)]++;
	if (row->started_us > 0 && row->started_us >= row->submitted_us)
		hist_add(&t->wait,
		         (double) (row->started_us - row->submitted_us) / 1e6);
	if (job_state_final(row->state)) {
		if (row->started_us > 0 &&
		    row->finished_us >= row->started_us) {
			double run =
			        (double) (row->finished_us - row->started_us) /
			        1e6;
			hist_add(&t->run, run);
			u->device_s += run;
		}
		recent_add(sc, &jr);
	} else if (row->state == JOB_RUNNING) {
		u->running++;
		sc->err = jrow_push(&sc->running, &sc->nrun, &sc->caprun, &jr);
	} else if (row->state == JOB_QUEUED) {
		u->queued++;
		sc->err = jrow_push(&sc->queued, &sc->nqueued, &sc->capqueued,
		                    &jr);
	}
	return sc->err != 0;
}

static void
scan_free(struct scan *sc)
{
	free(sc->users);
	free(sc->running);
	free(sc->queued);
}

/* a queued job's row (ids descending); NULL when the store lacks it */
static const struct jrow *
queued_find(const struct scan *sc, int64_t id)
{
	size_t lo = 0, hi = sc->nqueued;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sc->queued[mid].id == id)
			return &sc->queued[mid];
		if (sc->queued[mid].id > id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- Prometheus text ---------------------------------------------- */

struct mbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void mb_printf(struct mbuf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->err)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->err = NQ_EINTERNAL;
			return;
		}
		if ((size_t) n < room) {
			b->len += (size_t) n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 8192;
		while (cap - b->len <= (size_t) n)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (np == NULL) {
			b->err = NQ_ENOMEM;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
}

/* a label value: \ " and newline escaped (text format 0.0.4) */
static void
mb_label(struct mbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			mb_printf(b, "\\%c", *s);
		else if (*s == '\n')
			mb_printf(b, "\\n");
		else
			mb_printf(b, "%c", *s);
	}
}

static void
mb_head(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *
state_label(int st)
{
	static const char *const n[NSTATES] = {"queued", "running", "done",
	                                       "failed", "canceled"};
	return st >= 0 && st < NSTATES ? n[st] : "unknown";
}

static void
text_hist(struct mbuf *b, const char *name, const struct scan *sc, int run)
{
	for (size_t i = 0; i < sc->ntypes; i++) {
		const struct type_agg *t = &sc->types[i];
		const struct hist *h = run ? &t->run : &t->wait;
		uint64_t cum = 0;

		for (size_t k = 0; k < NBUCKETS; k++) {
			cum += h->n[k];
			mb_printf(b, "%s_bucket{type=\"", name);
			mb_label(b, t->name);
			mb_printf(b, "\",le=\"%g\"} %" PRIu64 "\n",
			          bucket_le[k], cum);
		}
		mb_printf(b, "%s_bucket{type=\"", name);
		mb_label(b, t->name);
		mb_printf(b, "\",le=\"+Inf\"} %" PRIu64 "\n", h->count);
		mb_printf(b, "%s_sum{type=\"", name);
		mb_label(b, t->name);
		mb_printf(b, "\"} %.6f\n", h->sum);
		mb_printf(b, "%s_count{type=\"", name);
		mb_label(b, t->name);
		mb_printf(b, "\"} %" PRIu64 "\n", h->count);
	}
}

static const struct device_info *
dev_info(const struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->ndevs; i++) {
		if (strcmp(d->devs[i].name, name) == 0)
			return &d->devs[i];
	}
	return NULL;
}

static void
text_devices(struct mbuf *b, const struct daemon *d)
{
	size_t n = sched_device_count(d->sched);
	static const char *const names[] = {
	        "neuroq_device_memory_total_bytes",
	        "neuroq_device_memory_capacity_bytes",
	        "neuroq_device_memory_granted_bytes",
	        "neuroq_device_slots",
	        "neuroq_device_running_jobs",
	};
	static const char *const help[] = {
	        "Device memory as the last probe reported it.",
	        "Bytes the scheduler's ledger may hand out on the device.",
	        "Bytes granted to running jobs by the ledger.",
	        "Jobs that may run at once on the device.",
	        "Jobs running on the device.",
	};

	for (size_t k = 0; k < 5; k++) {
		mb_head(b, names[k], "gauge", help[k]);
		for (size_t i = 0; i < n; i++) {
			const struct sched_device *sd =
			        sched_device_at(d->sched, i);
			const struct device_info *di = dev_info(d, sd->name);
			uint64_t v = 0;
			switch (k) {
			case 0:
				v = di != NULL ? di->mem_total : 0;
				break;
			case 1:
				v = sd->capacity;
				break;
			case 2:
				v = sd->reserved;
				break;
			case 3:
				v = (uint64_t) sd->slots;
				break;
			default:
				v = (uint64_t) sd->running;
			}
			mb_printf(b, "%s{device=\"", names[k]);
			mb_label(b, sd->name);
			mb_printf(b, "\"} %" PRIu64 "\n", v);
		}
	}
}

static uint64_t
file_size(const char *dir, const char *name)
{
	char p[4200];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0 ? (uint64_t) st.st_size : 0;
}

static void
build_text(struct mbuf *b, struct daemon *d, const struct scan *sc)
{
	const struct metrics *m = d->metrics;
	struct statvfs vfs;

	mb_head(b, "neuroq_build_info", "gauge",
	        "The daemon's version and protocol; always 1.");
	mb_printf(b, "neuroq_build_info{version=\"%s\",protocol=\"%d\"} 1\n",
	          NEUROQ_VERSION, NQ_PROTOCOL_VERSION);
	mb_head(b, "neuroq_start_time_seconds", "gauge",
	        "When the daemon started, unix seconds.");
	mb_printf(b, "neuroq_start_time_seconds %.0f\n", d->started);
	mb_head(b, "neuroq_draining", "gauge",
	        "1 while the daemon stops (no new submits or starts).");
	mb_printf(b, "neuroq_draining %d\n", d->draining ? 1 : 0);

	mb_head(b, "neuroq_jobs", "gauge",
	        "Jobs in the store by state and type.");
	for (size_t i = 0; i < sc->ntypes; i++) {
		for (int st = 0; st < NSTATES; st++) {
			mb_printf(b, "neuroq_jobs{state=\"%s\",type=\"",
			          state_label(st));
			mb_label(b, sc->types[i].name);
			mb_printf(b, "\"} %" PRIu64 "\n",
			          sc->types[i].state[st]);
		}
	}
	mb_head(b, "neuroq_jobs_submitted_total", "counter",
	        "Jobs accepted by submit (from the store: survives restarts).");
	for (size_t i = 0; i < sc->ntypes; i++) {
		mb_printf(b, "neuroq_jobs_submitted_total{type=\"");
		mb_label(b, sc->types[i].name);
		mb_printf(b, "\"} %" PRIu64 "\n", sc->types[i].submitted);
	}
	mb_head(b, "neuroq_job_errors_total", "counter",
	        "Jobs that ended with an error, by type and error code.");
	for (size_t i = 0; i < sc->ntypes; i++) {
		for (size_t c = 0; c < METRICS_CODES; c++) {
			if (sc->types[i].err[c] == 0)
				continue;
			mb_printf(b, "neuroq_job_errors_total{type=\"");
			mb_label(b, sc->types[i].name);
			mb_printf(b, "\",code=\"%s\"} %" PRIu64 "\n",
			          code_name(c), sc->types[i].err[c]);
		}
	}
	mb_head(b, "neuroq_requests_total", "counter",
	        "Requests answered since the daemon started, by op and "
	        "result code (OK or the error's name; a refused submit is "
	        "op=\"submit\" with its code).");
	for (size_t i = 0; i < METRICS_NOPS; i++) {
		for (size_t c = 0; c < METRICS_CODES; c++) {
			if (m->req[i][c] != 0)
				mb_printf(b,
				          "neuroq_requests_total{op=\"%s\","
				          "code=\"%s\"} %" PRIu64 "\n",
				          metrics_ops[i], code_name(c),
				          m->req[i][c]);
		}
	}
	mb_head(b, "neuroq_job_queue_wait_seconds", "histogram",
	        "From submit to the (latest) start, jobs that started.");
	text_hist(b, "neuroq_job_queue_wait_seconds", sc, 0);
	mb_head(b, "neuroq_job_run_seconds", "histogram",
	        "From the (latest) start to the end, jobs that ended.");
	text_hist(b, "neuroq_job_run_seconds", sc, 1);

	mb_head(b, "neuroq_user_jobs", "gauge",
	        "Queued and running jobs per owner (uid).");
	for (size_t i = 0; i < sc->nusers; i++) {
		const struct user_agg *u = &sc->users[i];
		mb_printf(b,
		          "neuroq_user_jobs{uid=\"%" PRIu32
		          "\",state=\"queued\"} %" PRIu64 "\n"
		          "neuroq_user_jobs{uid=\"%" PRIu32
		          "\",state=\"running\"} %" PRIu64 "\n",
		          u->uid, u->queued, u->uid, u->running);
	}
	mb_head(b, "neuroq_user_device_seconds_total", "counter",
	        "Run time of the owner's ended jobs on any device.");
	for (size_t i = 0; i < sc->nusers; i++)
		mb_printf(b,
		          "neuroq_user_device_seconds_total{uid=\"%" PRIu32
		          "\"} %.6f\n",
		          sc->users[i].uid, sc->users[i].device_s);

	text_devices(b, d);

	mb_head(b, "neuroq_worker_restarts_total", "counter",
	        "Jobs started again after their worker crashed, since the "
	        "daemon started.");
	mb_printf(b, "neuroq_worker_restarts_total %" PRIu64 "\n", m->restarts);
	mb_head(b, "neuroq_store_size_bytes", "gauge",
	        "The job store's database and write-ahead log.");
	mb_printf(b, "neuroq_store_size_bytes %" PRIu64 "\n",
	          file_size(d->cfg->state_dir, "neuroq.db") +
	                  file_size(d->cfg->state_dir, "neuroq.db-wal"));
	if (statvfs(d->cfg->state_dir, &vfs) == 0) {
		mb_head(b, "neuroq_state_dir_free_bytes", "gauge",
		        "Free bytes (for the service) on the state dir's file "
		        "system.");
		mb_printf(b, "neuroq_state_dir_free_bytes %" PRIu64 "\n",
		          (uint64_t) vfs.f_bavail * (uint64_t) vfs.f_frsize);
	}
	mb_head(b, "neuroq_metrics_build_seconds", "gauge",
	        "What building the previous snapshot of these metrics took.");
	mb_printf(b, "neuroq_metrics_build_seconds %.6f\n", m->last_build_s);
}

/* ---- the page's JSON ---------------------------------------------- */

static void
js_str(struct nq_json *w, const char *s)
{
	nq_json_str(w, s, strlen(s));
}

static void
json_devices(struct nq_json *w, const struct daemon *d)
{
	size_t n = sched_device_count(d->sched);

	nq_json_key(w, "devices");
	nq_json_arr_begin(w);
	for (size_t i = 0; i < n; i++) {
		const struct sched_device *sd = sched_device_at(d->sched, i);
		const struct device_info *di = dev_info(d, sd->name);

		nq_json_obj_begin(w);
		nq_json_key(w, "name");
		js_str(w, sd->name);
		nq_json_key(w, "kind");
		js_str(w, sd->kind == SCHED_CUDA ? "cuda" : "cpu");
		nq_json_key(w, "memory_total");
		nq_json_uint(w, di != NULL ? di->mem_total : 0);
		nq_json_key(w, "capacity");
		nq_json_uint(w, sd->capacity);
		nq_json_key(w, "granted");
		nq_json_uint(w, sd->reserved);
		nq_json_key(w, "slots");
		nq_json_int(w, sd->slots);
		nq_json_key(w, "running");
		nq_json_int(w, sd->running);
		nq_json_obj_end(w);
	}
	nq_json_arr_end(w);
}

static void
json_running(struct nq_json *w, const struct scan *sc, int64_t now_us)
{
	nq_json_key(w, "running");
	nq_json_arr_begin(w);
	/* oldest first: the order they started in, roughly */
	for (size_t i = sc->nrun; i-- > 0;) {
		const struct jrow *r = &sc->running[i];
		double el = r->started_us > 0 && now_us > r->started_us
		                    ? (double) (now_us - r->started_us) / 1e6
		                    : 0;

		nq_json_obj_begin(w);
		nq_json_key(w, "id");
		nq_json_int(w, r->id);
		nq_json_key(w, "type");
		js_str(w, r->type);
		nq_json_key(w, "device");
		js_str(w, r->device);
		nq_json_key(w, "progress");
		nq_json_double(w, r->progress);
		nq_json_key(w, "elapsed_s");
		nq_json_double(w, el);
		/* a straight line from the progress so far; none before 1 % */
		nq_json_key(w, "eta_s");
		if (r->progress >= 0.01 && r->progress < 1)
			nq_json_double(w, el * (1 - r->progress) / r->progress);
		else
			nq_json_null(w);
		nq_json_obj_end(w);
	}
	nq_json_arr_end(w);
}

int
metrics_queue_plan(struct daemon *d, int64_t owner, size_t max,
                   struct metrics_queued **out, size_t *n)
{
	struct sched_plan_entry *pe;
	struct metrics_queued *q;
	/* one owner's: their places in the whole queue */
	size_t want = sched_queued(d->sched), np = 0, k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (owner < 0 && want > max)
		want = max;
	pe = calloc(want ? want : 1, sizeof(*pe));
	q = calloc(want < max ? (want ? want : 1) : (max ? max : 1),
	           sizeof(*q));
	if (pe == NULL || q == NULL) {
		free(pe);
		free(q);
		return NQ_ENOMEM;
	}
	rc = sched_plan(d->sched, pe, want, &np);
	for (size_t i = 0; rc == 0 && i < np && k < max; i++) {
		const struct sched_device *sd =
		        pe[i].dev >= 0
		                ? sched_device_at(d->sched, (size_t) pe[i].dev)
		                : NULL;
		struct metrics_queued *e = &q[k];

		if (owner >= 0 && pe[i].owner != (uint32_t) owner)
			continue;
		k++;
		e->e = pe[i];
		e->position = i + 1;
		e->device = sd != NULL ? sd->name : "";
		if (d->draining)
			snprintf(e->reason, sizeof(e->reason),
			         "the daemon is stopping; runs after its "
			         "restart");
		else
			sched_wait_text(d->sched, &pe[i], e->reason,
			                sizeof(e->reason));
	}
	free(pe);
	if (rc != 0) {
		free(q);
		return rc;
	}
	*out = q;
	*n = k;
	return 0;
}

static int
json_queue(struct nq_json *w, const struct daemon *d, const struct scan *sc)
{
	struct metrics_queued *q;
	size_t n = 0;
	int rc = metrics_queue_plan((struct daemon *) d, -1, QUEUE_MAX, &q, &n);

	if (rc != 0)
		return rc;
	nq_json_key(w, "queue_total");
	nq_json_uint(w, sched_queued(d->sched));
	nq_json_key(w, "queue");
	nq_json_arr_begin(w);
	for (size_t i = 0; i < n; i++) {
		const struct jrow *r = queued_find(sc, q[i].e.id);

		nq_json_obj_begin(w);
		nq_json_key(w, "id");
		nq_json_int(w, q[i].e.id);
		nq_json_key(w, "type");
		js_str(w, r != NULL ? r->type : "?");
		nq_json_key(w, "device");
		js_str(w, q[i].device);
		nq_json_key(w, "reason");
		js_str(w, q[i].reason);
		nq_json_obj_end(w);
	}
	nq_json_arr_end(w);
	free(q);
	return 0;
}

static void
json_recent(struct nq_json *w, const struct scan *sc)
{
	nq_json_key(w, "recent");
	nq_json_arr_begin(w);
	for (size_t i = 0; i < sc->nrecent; i++) {
		const struct jrow *r = &sc->recent[i];

		nq_json_obj_begin(w);
		nq_json_key(w, "id");
		nq_json_int(w, r->id);
		nq_json_key(w, "type");
		js_str(w, r->type);
		nq_json_key(w, "state");
		js_str(w, state_label(r->state));
		nq_json_key(w, "device");
		js_str(w, r->device);
		nq_json_key(w, "finished");
		nq_json_double(w, (double) r->finished_us / 1e6);
		nq_json_key(w, "run_s");
		if (r->started_us > 0 && r->finished_us >= r->started_us)
			nq_json_double(
			        w, (double) (r->finished_us - r->started_us) /
			                   1e6);
		else
			nq_json_null(w);
		nq_json_obj_end(w);
	}
	nq_json_arr_end(w);
}

static int
build_json(struct nq_json *w, struct daemon *d, const struct scan *sc)
{
	int64_t now_us = nq_wall_us();
	int rc;

	nq_json_obj_begin(w);
	nq_json_key(w, "version");
	js_str(w, NEUROQ_VERSION);
	nq_json_key(w, "now");
	nq_json_double(w, (double) now_us / 1e6);
	nq_json_key(w, "started");
	nq_json_double(w, d->started);
	nq_json_key(w, "draining");
	nq_json_bool(w, d->draining);
	nq_json_key(w, "types");
	nq_json_arr_begin(w);
	for (size_t i = 0; i < sc->ntypes; i++) {
		nq_json_obj_begin(w);
		nq_json_key(w, "type");
		js_str(w, sc->types[i].name);
		for (int st = 0; st < NSTATES; st++) {
			nq_json_key(w, state_label(st));
			nq_json_uint(w, sc->types[i].state[st]);
		}
		nq_json_obj_end(w);
	}
	nq_json_arr_end(w);
	json_devices(w, d);
	json_running(w, sc, now_us);
	if ((rc = json_queue(w, d, sc)) != 0)
		return rc;
	json_recent(w, sc);
	nq_json_obj_end(w);
	nq_json_raw(w, "\n");
	return nq_json_finish(w);
}

int
metrics_build(struct daemon *d, struct metrics_snapshot *out)
{
	struct store_filter f = {.state = -1, .any_owner = 1};
	struct scan *sc = calloc(1, sizeof(*sc));
	struct mbuf b = {0};
	struct nq_json w;
	double t0 = nq_mono_s();
	int rc;

	memset(out, 0, sizeof(*out));
	nq_json_init_buf(&w, 0);
	if (sc == NULL)
		return NQ_ENOMEM;
	/* every job type has its series, zeros included */
	for (const struct job_type *const *jt = job_type_all(); *jt; jt++)
		type_get(sc, (*jt)->name);
	rc = store_list(d->store, &f, scan_row, sc);
	if (rc == 0)
		rc = sc->err;
	if (rc == 0)
		rc = build_json(&w, d, sc);
	if (rc == 0) {
		build_text(&b, d, sc);
		rc = b.err;
	}
	scan_free(sc);
	free(sc);
	if (rc != 0) {
		free(b.p);
		nq_json_free(&w);
		return rc;
	}
	out->text = b.p;
	out->text_len = b.len;
	out->json = w.buf;
	out->json_len = w.len;
	d->metrics->last_build_s = nq_mono_s() - t0;
	return 0;
}

void
metrics_snapshot_free(struct metrics_snapshot *s)
{
	free(s->text);
	free(s->json);
	memset(s, 0, sizeof(*s));
}
